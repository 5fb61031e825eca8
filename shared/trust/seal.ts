// Every frame a peer sends a neighbour is sealed: the sender's session key (shared/swarm/identity.ts)
// signs what the frame is (kind, tag, microbatch, from its header), who sent it to whom, and the
// SHA-256 of its bytes. A receiver keeps the seals of what it used and reports them with its round,
// so what a peer sent is provable to anyone holding its public key: a peer cannot deny a frame, and
// a receiver cannot invent one. The coordinator checks reported seals without ever seeing a tensor.
//
//   sealed message = frame bytes ‖ 64-byte Ed25519 signature of
//   "SWSL" ‖ kind u8 ‖ tag u32le ‖ microbatch u32le ‖ sha256(frame) ‖ from ‖ 0x00 ‖ to   (ids UTF-8)
import { HEADER_BYTES } from '../wire/frame.js';
import type { KeyRing, PeerKey } from '../swarm/identity.js';
import type { Seal } from '../swarm/protocol.js';
import { fromHex, sha256Hex, toHex } from '../base/hex.js';

export const SEAL_BYTES = 64;

/** What a seal vouches for: one frame (`hash`: SHA-256 of its bytes), from one peer to another. */
export type SealFacts = Omit<Seal, 'sig'>;

/** The bytes the sender signs. */
export function sealMessage(f: SealFacts): Uint8Array {
  const ids = new TextEncoder().encode(`${f.from}\0${f.to}`);
  const out = new Uint8Array(4 + 1 + 4 + 4 + 32 + ids.length);
  const view = new DataView(out.buffer);
  out.set([0x53, 0x57, 0x53, 0x4c]);
  view.setUint8(4, f.kind);
  view.setUint32(5, f.tag, true);
  view.setUint32(9, f.microbatch, true);
  out.set(fromHex(f.hash), 13);
  out.set(ids, 45);
  return out;
}

/** Kind, tag and microbatch from a frame's header (offsets of frame.ts), or undefined for bytes too short to be a frame. */
export function frameFacts(frame: Uint8Array): { kind: number; tag: number; microbatch: number } | undefined {
  if (frame.length < HEADER_BYTES) return undefined;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  return { kind: view.getUint8(5), tag: view.getUint32(8, true), microbatch: view.getUint32(12, true) };
}

/** Seal `frame` from `from` to `to`: the frame with its signature appended, and the seal. */
export async function seal(frame: Uint8Array, key: PeerKey, from: string, to: string): Promise<{ bytes: Uint8Array; seal: Seal }> {
  const facts = frameFacts(frame);
  if (!facts) throw new Error(`a ${frame.length}-byte frame is shorter than its header`);
  const f: SealFacts = { ...facts, hash: await sha256Hex(frame), from, to };
  const sig = await key.sign(sealMessage(f));
  const bytes = new Uint8Array(frame.length + SEAL_BYTES);
  bytes.set(frame);
  bytes.set(sig, frame.length);
  return { bytes, seal: { ...f, sig: toHex(sig) } };
}

export type Opened = { ok: true; frame: Uint8Array; seal: Seal } | { ok: false; error: string };

/** Check a sealed message `from` sent `to` against the sender's key. Never throws. */
export async function unseal(bytes: Uint8Array, keys: KeyRing, senderKey: string | undefined, from: string, to: string): Promise<Opened> {
  if (senderKey === undefined) return { ok: false, error: `no key known for ${from}` };
  if (bytes.length < HEADER_BYTES + SEAL_BYTES) return { ok: false, error: `${bytes.length} bytes is too short for a sealed frame` };
  const frame = bytes.subarray(0, bytes.length - SEAL_BYTES);
  const sig = bytes.subarray(bytes.length - SEAL_BYTES);
  const f: SealFacts = { ...frameFacts(frame)!, hash: await sha256Hex(frame), from, to };
  if (!(await keys.verify(senderKey, sig, sealMessage(f)))) return { ok: false, error: `the frame's seal is not ${from}'s signature` };
  return { ok: true, frame, seal: { ...f, sig: toHex(sig) } };
}

/** Whether a reported seal is `senderKey`'s signature of its facts (the coordinator's check). */
export function verifySeal(s: Seal, keys: KeyRing, senderKey: string): Promise<boolean> {
  if (!/^[0-9a-f]{64}$/.test(s.hash) || !/^[0-9a-f]{128}$/.test(s.sig)) return Promise.resolve(false);
  return keys.verify(senderKey, fromHex(s.sig), sealMessage(s));
}
