// Replays: a neighbour resending a boundary tensor it sent before as a different microbatch (old
// content under a new round or index) would feed a stage stale data that passes every other check.
// Honest peers never do that: every microbatch of every training step is fresh data (its own
// sampled tokens through the weights of that step), so equal payloads mean the same (step,
// microbatch) computed again. That happens honestly in exactly one way: a discarded round's step is
// routed again under a new round number, with the same weights (the discarded round left no trace)
// and the same data, so its frames repeat bit for bit. A payload is therefore remembered with what
// it was (kind, microbatch and, once known, the training step of its round) and a repeat is a
// replay only when that differs. Evaluation reuses the same validation batches, so an evaluation
// frame is identified by its batch alone. Generation frames are not checked: two requests with the
// same context window honestly produce the same rows, and a bad one only spoils its own request.
import type { FrameKind } from '../wire/frame.js';

/** What a payload was sent as. `step` is the training step of the frame's round, when known; `round` the round its header named. */
export interface PayloadUse {
  kind: FrameKind;
  mb: number;
  step?: number;
  round?: number;
}

/**
 * A 53-bit hash of a tensor's float bits (cyrb53). Not cryptographic: it only has to tell honest
 * payloads apart (≈ 2⁻⁵³ per pair), and an attacker gains nothing from a collision but having its
 * own frame refused.
 */
export function tensorHash(x: Float32Array): number {
  const w = new Uint32Array(x.buffer, x.byteOffset, x.length);
  let h1 = 0xdeadbeef ^ w.length;
  let h2 = 0x41c6ce57 ^ w.length;
  for (let i = 0; i < w.length; i++) {
    h1 = Math.imul(h1 ^ w[i], 2654435761);
    h2 = Math.imul(h2 ^ w[i], 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

const sameUse = (a: PayloadUse, b: PayloadUse) => a.kind === b.kind && a.mb === b.mb && (a.step === undefined || b.step === undefined || a.step === b.step);

/** The payload hashes one sender sent recently (the newest `capacity`), with what each was sent as. */
export class RecentPayloads {
  private readonly uses = new Map<number, PayloadUse>();

  constructor(private readonly capacity = 256) {}

  /** What the payload hashed `h` was sent as before, if sending it as `use` now replays it. */
  replayOf(h: number, use: PayloadUse): PayloadUse | undefined {
    const before = this.uses.get(h);
    return before && !sameUse(before, use) ? before : undefined;
  }

  remember(h: number, use: PayloadUse): void {
    this.uses.delete(h);
    this.uses.set(h, use);
    if (this.uses.size > this.capacity) this.uses.delete(this.uses.keys().next().value!);
  }
}
