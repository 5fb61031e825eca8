// Replicas of one stage train on different microbatches (each replica is a lane of the pipeline)
// and average their weights every H steps, like DiLoCo's outer step with plain averaging. Every
// replica sums the same weights in the same (replica-index) order, so all end bit-identical.
import type { BlockRuntime } from '../engine/block-runtime.js';
import { FrameKind, encodeFrame } from '../wire/frame.js';
import { Inbox } from './inbox.js';
import type { Link } from '../wire/link.js';

const COLS = 64; // the flat parameter buffer is a multiple of 64 floats (binding alignment)

export class ReplicaAverager {
  private readonly inboxes = new Map<number, Inbox>();
  bytesSent = 0;

  constructor(
    private readonly runtime: BlockRuntime,
    private readonly replica: number,
    private readonly peers: { replica: number; link: Link }[],
    private readonly timeoutMs = 120_000,
  ) {
    for (const p of peers) {
      if (p.replica === replica) throw new Error(`replica ${replica} cannot average with itself`);
      const inbox = new Inbox({ maxCols: COLS });
      p.link.onMessage((b) => inbox.push(b));
      this.inboxes.set(p.replica, inbox);
    }
  }

  /** Exchange weights with every other replica and replace ours by the mean. */
  async average(step: number): Promise<void> {
    if (!this.peers.length) return;
    const mine = await this.runtime.readParams();
    const rows = mine.length / COLS;
    const frame = encodeFrame({ kind: FrameKind.ReplicaWeights, step, microbatch: this.replica, rows, cols: COLS, dtype: 'fp32', tensor: mine });
    for (const p of this.peers) {
      p.link.send(frame);
      this.bytesSent += frame.length;
    }
    const all = new Map<number, Float32Array>([[this.replica, mine]]);
    for (const p of this.peers) {
      const f = await this.inboxes.get(p.replica)!.take(FrameKind.ReplicaWeights, step, p.replica, this.timeoutMs);
      if (f.rows !== rows || f.cols !== COLS) throw new Error(`replica ${p.replica} sent ${f.rows}×${f.cols} weights, this stage holds ${rows}×${COLS}`);
      all.set(p.replica, f.tensor);
    }
    const order = [...all.keys()].sort((a, b) => a - b);
    const mean = new Float32Array(mine.length);
    for (const r of order) {
      const w = all.get(r)!;
      for (let i = 0; i < mean.length; i++) mean[i] += w[i];
    }
    for (let i = 0; i < mean.length; i++) mean[i] /= order.length;
    this.runtime.writeParams(mean);
    for (const inbox of this.inboxes.values()) inbox.forgetBefore(step);
  }
}
