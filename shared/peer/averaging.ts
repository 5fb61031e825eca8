// Replicas of a stage train on different microbatches and average their weights every H steps,
// like DiLoCo's outer step. Members (the stage's active replicas) send their weights to each other
// and to listeners (joiners catching up, who only receive); everyone takes the robust mean
// (trust/robust-mean.ts: moves from the last averaged weights, outliers left out, the rest clipped)
// in peer-id order, so everyone who received the same weights ends bit-identical.
// A member lost mid-exchange, or with no channel open to this replica, is not waited for: averaging
// goes on with the replicas that are left (the stage's hash check has a replica that ends apart load again).
import type { BlockRuntime } from '../engine/block-runtime.js';
import { FrameKind, encodeFrame } from '../wire/frame.js';
import { InboxTimeout } from '../trust/inbox.js';
import { type Mailbox, REPLICA_COLS } from '../trust/mailbox.js';
import { type Anchor, robustMean } from '../trust/robust-mean.js';

export interface AveragerOptions {
  runtime: BlockRuntime;
  self: string;
  mailbox: Mailbox;
  send(to: string, bytes: Uint8Array): void;
  /** Whether a data channel to a peer is open now: weights cannot come from a member without one. */
  linked(peerId: string): boolean;
  timeoutMs: number;
  log(line: string): void;
  /** The stage's weights at its last averaging (every replica's starting point since), and the run's peak learning rate. */
  anchor(): Anchor | undefined;
  lr: number;
}

/** What an averaging did: how many replicas' weights went into the mean, and whose were left out as no replica's. */
export interface Averaged {
  n: number;
  outliers: string[];
}

export class ReplicaAverager {
  bytesSent = 0;
  private readonly waits = new Map<string, AbortController>();
  /** Peers known to be gone (ids are never reused): not waited for, even if the news came before the exchange. */
  private readonly gone = new Set<string>();

  constructor(private readonly o: AveragerOptions) {}

  /** A peer is gone: stop waiting for its weights. */
  forget(peerId: string): void {
    this.gone.add(peerId);
    this.waits.get(peerId)?.abort(new Error(`${peerId} is gone`));
  }

  /**
   * The exchange after step `step`. Returns how many replicas' weights went into the mean (0 for a
   * listener that got none: it keeps its own state), and the outliers left out.
   */
  async average(step: number, members: string[], listeners: string[]): Promise<Averaged> {
    const { runtime, self } = this.o;
    const member = members.includes(self);
    const mine = member ? await runtime.readParams() : undefined;
    if (mine) {
      const frame = encodeFrame({ kind: FrameKind.ReplicaWeights, tag: step, microbatch: 0, rows: mine.length / REPLICA_COLS, cols: REPLICA_COLS, dtype: 'fp32', tensor: mine });
      for (const p of [...members, ...listeners]) {
        // Nothing to a peer with no open channel: it would be dropped, and that peer goes on without ours.
        if (p === self || !this.o.linked(p)) continue;
        this.o.send(p, frame);
        this.bytesSent += frame.length;
      }
    }
    const got = new Map<string, Float32Array>(mine ? [[self, mine]] : []);
    await Promise.all(
      members
        .filter((p) => p !== self)
        .map(async (p) => {
          const w = await this.receive(p, step);
          if (w) got.set(p, w);
        }),
    );
    if (got.size === 0) return { n: 0, outliers: [] };
    const contributions = [...got.keys()].sort().map((peer) => ({ peer, params: got.get(peer)! }));
    const { mean, outliers, clipped } = robustMean(contributions, this.o.anchor(), step, this.o.lr);
    for (const x of outliers)
      this.o.log(`averaging at step ${step} leaves out ${x.peer}: its weights moved ${x.moved.toFixed(3)} from the stage's last average (limit ${x.limit.toFixed(3)})`);
    if (clipped.length) this.o.log(`averaging at step ${step} clipped the move of ${clipped.join(', ')} to twice the median move`);
    runtime.writeParams(mean);
    // Every replica now holds the stage's state at the swarm's step, though a member routed nothing in
    // some rounds applied fewer steps: its step count (and the snapshot a joiner is given) must say so.
    runtime.setStepCount(step);
    for (const p of members) this.o.mailbox.from(p).avg.forgetBefore(step + 1);
    return { n: got.size - outliers.length, outliers: outliers.map((x) => x.peer) };
  }

  private async receive(peer: string, step: number): Promise<Float32Array | undefined> {
    if (this.gone.has(peer) || !this.o.linked(peer)) {
      this.o.log(`averaging at step ${step} goes on without ${peer}: ${this.gone.has(peer) ? 'it is gone' : 'no channel to it is open'}`);
      return undefined;
    }
    const ctl = new AbortController();
    this.waits.set(peer, ctl);
    try {
      // The mailbox took only weights of this stage's exact size, finite and within MAX_ABS (so the sum cannot overflow).
      return (await this.o.mailbox.from(peer).avg.take(FrameKind.ReplicaWeights, step, 0, this.o.timeoutMs, ctl.signal)).tensor;
    } catch (e) {
      this.o.log(`averaging at step ${step} goes on without ${peer}: ${e instanceof InboxTimeout ? 'its weights did not come in time' : (e as Error).message}`);
      return undefined;
    } finally {
      this.waits.delete(peer);
    }
  }
}
