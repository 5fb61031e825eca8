// Everything a peer sends a neighbour over a data channel is one envelope: a tag byte that says
// what it is, then its bytes. The receiver sorts by tag in one place (shared/trust/gate.ts) and
// hands each kind straight to where it is used, instead of guessing from the bytes.
//
//   envelope = tag u8 ‖ body
//   tag 1: a boundary-tensor frame (frame.ts), sealed by its sender (trust/seal.ts)
//       2: a stage's training state, asked for or sent (peer/state-sync.ts)
//       3: an audited peer's weights and frames for its witness (trust/audit.ts)

export const Envelope = { Frame: 1, State: 2, AuditBundle: 3 } as const;
export type EnvelopeTag = (typeof Envelope)[keyof typeof Envelope];

const TAGS: ReadonlySet<number> = new Set(Object.values(Envelope));

export function wrap(tag: EnvelopeTag, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(1 + body.length);
  out[0] = tag;
  out.set(body, 1);
  return out;
}

/** The tag and body of an envelope, or why the bytes are none. Never throws. */
export function unwrap(bytes: Uint8Array): { ok: true; tag: EnvelopeTag; body: Uint8Array } | { ok: false; error: string } {
  if (bytes.length === 0) return { ok: false, error: 'an empty message' };
  if (!TAGS.has(bytes[0])) return { ok: false, error: `a message of unknown tag ${bytes[0]}` };
  return { ok: true, tag: bytes[0] as EnvelopeTag, body: bytes.subarray(1) };
}
