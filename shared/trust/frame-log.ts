// What this peer received and sent in its recent rounds, sealed (seal.ts): the seals
// of its inputs go with its round report (the coordinator checks it computed from what its routes
// say), and the sealed bytes stay for an audit of the round. Two different frames sealed by one
// sender for the same slot (round, kind, microbatch) are proof that the sender equivocated. The
// seals of replicas' weights (averaging) are kept apart, without their bytes: each replica reports
// them after averaging, and two receivers holding different weights one member sealed for the
// same averaging prove it equivocated (coordinator/claims.ts).
//
// Frames can come before this peer hears of their round (a data channel beats the coordinator's
// socket), so any round is taken; what bounds memory is a cap per peer on the frames kept for it,
// the oldest going first, so a neighbour flooding future rounds only ever evicts its own frames.
import type { Seal } from '../swarm/protocol.js';
import { FrameKind, HEADER_BYTES, isTrainingKind } from '../wire/frame.js';

/** Rounds kept behind the newest one begun (an audit follows the report of the round before it). */
const ROUNDS_BEHIND = 1;
/** Frames kept per neighbour, over both directions (a round routes at most a few per microbatch). */
const PER_PEER = 1024;
/** Different frames kept per slot: the first, and one more as proof of equivocation. */
const PER_SLOT = 2;
/** Weight seals kept (members × recent averagings; the oldest go first). */
const WEIGHT_SEALS = 1024;

interface Record {
  round: number;
  seal: Seal;
  bytes: Uint8Array;
}

export class FrameLog {
  /** slot key → records, per neighbour. */
  private readonly peers = new Map<string, Map<string, Record[]>>();
  private oldest = 0;
  /** `${from}:${step}` → the seal of the first weights frame that member sent this peer for that averaging. */
  private readonly weights = new Map<string, Seal>();

  /** A sealed training frame received or sent; returns whether it is kept. */
  record(dir: 'in' | 'out', seal: Seal, bytes: Uint8Array): boolean {
    if (dir === 'in' && seal.kind === FrameKind.ReplicaWeights) return this.recordWeights(seal);
    if (!isTrainingKind(seal.kind) || seal.tag < this.oldest) return false;
    const peer = dir === 'in' ? seal.from : seal.to;
    let slots = this.peers.get(peer);
    if (!slots) this.peers.set(peer, (slots = new Map()));
    const key = slotKey(dir, seal.tag, seal.kind, seal.microbatch);
    const list = slots.get(key) ?? [];
    if (list.length >= PER_SLOT || list.some((r) => r.seal.hash === seal.hash)) return false;
    list.push({ round: seal.tag, seal, bytes });
    slots.set(key, list);
    evictOldest(slots, PER_PEER);
    return true;
  }

  /** The seals of the weights frames `peers` sent this peer for the averaging after `step`. */
  weightSeals(step: number, peers: readonly string[]): Seal[] {
    return peers.flatMap((p) => this.weights.get(`${p}:${step}`) ?? []);
  }

  private recordWeights(seal: Seal): boolean {
    const key = `${seal.from}:${seal.tag}`;
    if (this.weights.has(key)) return false;
    this.weights.set(key, seal);
    if (this.weights.size > WEIGHT_SEALS) this.weights.delete(this.weights.keys().next().value!);
    return true;
  }

  /** Round `round` begins: rounds more than ROUNDS_BEHIND before it are forgotten. */
  begin(round: number): void {
    this.oldest = Math.max(this.oldest, round - ROUNDS_BEHIND);
    for (const slots of this.peers.values()) for (const [k, l] of slots) if (l[0].round < this.oldest) slots.delete(k);
  }

  /**
   * The seals of the inputs the routes gave this peer in `round` (each slot's first frame), for
   * `expected` slots only: a neighbour sending frames nobody asked for cannot put them in our report.
   */
  inputs(round: number, expected: ReadonlyArray<{ kind: number; microbatch: number; from: string }>): Seal[] {
    return expected.flatMap((e) => this.peers.get(e.from)?.get(slotKey('in', round, e.kind, e.microbatch))?.[0]?.seal ?? []);
  }

  /** Pairs of different frames one sender sealed for the same slot of `round`. */
  equivocations(round: number): Array<[Seal, Seal]> {
    const out: Array<[Seal, Seal]> = [];
    for (const slots of this.peers.values()) for (const [k, l] of slots) if (k.startsWith(`in:${round}:`) && l.length > 1) out.push([l[0].seal, l[1].seal]);
    return out;
  }

  /** The bytes of a frame of `round` (for an audit), the first of its slot; `peer` sent it (in) or got it (out). */
  frame(dir: 'in' | 'out', round: number, kind: number, microbatch: number, peer: string): Uint8Array | undefined {
    return this.sealed(dir, round, kind, microbatch, peer)?.bytes;
  }

  /**
   * A frame of `round` with its seal (to show it as evidence): the one whose bytes are `bytes`, or
   * whose payload (all but the header) is `payloadOf`'s, or else the first of its slot. A sender
   * may have sealed several different frames for one slot.
   */
  sealed(
    dir: 'in' | 'out',
    round: number,
    kind: number,
    microbatch: number,
    peer: string,
    match: { bytes?: Uint8Array; payloadOf?: Uint8Array } = {},
  ): { seal: Seal; bytes: Uint8Array } | undefined {
    const slot = this.peers.get(peer)?.get(slotKey(dir, round, kind, microbatch));
    const { bytes, payloadOf } = match;
    if (bytes) return slot?.find((r) => sameBytes(r.bytes, bytes));
    if (payloadOf) return slot?.find((r) => r.bytes.length === payloadOf.length && sameBytes(r.bytes.subarray(HEADER_BYTES), payloadOf.subarray(HEADER_BYTES)));
    return slot?.[0];
  }
}

function slotKey(dir: 'in' | 'out', round: number, kind: number, microbatch: number): string {
  return `${dir}:${round}:${kind}:${microbatch}`;
}

/** Drop whole slots, oldest round first, until at most `cap` frames are kept. */
function evictOldest(slots: Map<string, Record[]>, cap: number): void {
  let n = 0;
  for (const l of slots.values()) n += l.length;
  if (n <= cap) return;
  const byAge = [...slots].sort(([, a], [, b]) => a[0].round - b[0].round);
  for (const [k, l] of byAge) {
    if (n <= cap) return;
    slots.delete(k);
    n -= l.length;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
