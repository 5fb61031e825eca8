// Everything neighbours send a peer lands here, sorted by sender and by what it is for: training
// frames (activations, gradients, evaluation), generation frames and replica weights each get an
// inbox per sender. Keeping senders apart means a frame is only ever taken from the peer the plan
// says it comes from: anything else a peer sends is never used, and is dropped with its round.
// Frames are decoded against the shapes this stage expects, so a peer cannot make us allocate more
// than a frame of the right shape could need.
import { type Frame, FrameKind, type FrameLimits, HEADER_BYTES, decodeFrame } from '../wire/frame.js';
import { isGenerationKind } from './generate.js';
import { Inbox } from './inbox.js';

export interface Inboxes {
  train: Inbox;
  gen: Inbox;
  avg: Inbox;
}

export interface MailboxLimits {
  /** Boundary tensors (training and generation): rows = tokens of a microbatch, cols = boundary width. */
  boundary: FrameLimits;
  /** Replica weights: the stage's parameters as rows of REPLICA_COLS. */
  weights: FrameLimits;
}

/** Replica weights travel as rows of this many floats (the flat parameter buffer is a multiple of 64). */
export const REPLICA_COLS = 64;

export class Mailbox {
  private readonly boxes = new Map<string, Inboxes>();
  /** Frames that failed to decode, by sender. */
  readonly undecodable = new Map<string, number>();

  constructor(private readonly limits: MailboxLimits) {}

  /** The inboxes of frames from `peerId`. */
  from(peerId: string): Inboxes {
    let b = this.boxes.get(peerId);
    if (!b) {
      b = { train: new Inbox(), gen: new Inbox(), avg: new Inbox() };
      this.boxes.set(peerId, b);
    }
    return b;
  }

  /** Decode a frame `from` sent and file it. Never throws: a bad frame is counted against its sender. */
  deliver(from: string, bytes: Uint8Array): void {
    const kind = bytes.length >= HEADER_BYTES ? bytes[5] : 0;
    const weights = kind === FrameKind.ReplicaWeights;
    let f: Frame;
    try {
      f = decodeFrame(bytes, weights ? this.limits.weights : this.limits.boundary);
    } catch (e) {
      this.undecodable.set(from, (this.undecodable.get(from) ?? 0) + 1);
      this.from(from).train.reject(`from ${from}: ${(e as Error).message}`);
      return;
    }
    const b = this.from(from);
    (weights ? b.avg : isGenerationKind(f.kind) ? b.gen : b.train).pushFrame(f);
  }

  /** Training frames of rounds before `round` will never be taken: drop them and refuse their late copies. */
  forgetRoundsBefore(round: number): void {
    for (const b of this.boxes.values()) b.train.forgetBefore(round);
  }

  /** A neighbour is gone: drop what it sent. */
  drop(peerId: string): void {
    this.boxes.delete(peerId);
  }

  /** Frames rejected so far (undecodable, duplicate, stale), over every sender and inbox. */
  get rejected(): number {
    let n = 0;
    for (const b of this.boxes.values()) n += b.train.rejectedCount + b.gen.rejectedCount + b.avg.rejectedCount;
    return n;
  }
}
