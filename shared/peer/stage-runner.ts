// One stage's share of a training round, run as its inputs arrive (SWARM-style, not a fixed
// schedule): the coordinator's routes say which microbatches pass through this peer and from and
// to whom; the runner forwards each as soon as its activation has arrived and an activation slot is
// free, and backwards each as soon as its gradient has, backward first (it frees a slot and feeds
// the stage before). Stage 0 forwards its microbatches in order, at most one per slot in flight.
// With one route per microbatch through the same peers this is exactly 1F1B; with a peer serving
// several lanes it interleaves them without a plan for it. It cannot deadlock: the last stage
// needs one slot and frees it at once, so every slot held upstream is eventually released.
// Environment-agnostic: the runtime (GPU), the mailbox, the sending and the clock are handed in.
import type { BlockRuntime } from '../engine/block-runtime.js';
import type { Dtype } from '../wire/codec.js';
import { type Frame, FrameKind, encodeFrame } from '../wire/frame.js';
import { type Inbox, InboxRefused, InboxTimeout } from '../trust/inbox.js';
import type { Mailbox } from '../trust/mailbox.js';

export interface Batch {
  tokens: Uint32Array;
  targets: Uint32Array;
}

export interface RunnerOptions {
  runtime: BlockRuntime;
  stage: number;
  stages: number;
  dtype: Dtype;
  /** The boundary quantizer's step (quantStep of the run's codec), if it has one. */
  step?: number;
  /** The shared data order: every stage derives the same tokens, so no ids travel. */
  batch(step: number, microbatch: number, split: 'train' | 'val'): Batch;
  mailbox: Mailbox;
  send(to: string, bytes: Uint8Array): void;
  /** Learning rate for a step (warm-up, decay). */
  lr(step: number): number;
  now(): number;
  /** How long to wait for a neighbour's frame before reporting it stalled. */
  timeoutMs: number;
  /** Activation slots training may use (default all the runtime has; keep one back for generation during training). */
  slots?: number;
  /** Sees every boundary tensor as sent (before encoding) and as received (after decoding). */
  onBoundary?(dir: 'sent' | 'received', kind: FrameKind, step: number, microbatch: number, tensor: Float32Array): void;
  /** Make every computation take this many times as long: a slower GPU, emulated (benchmarks of stragglers). */
  slowdown?: number;
}

/** This peer's part of a round: the microbatches routed through it, and their previous and next hops. */
export interface RoundWork {
  round: number;
  step: number;
  items: Array<{ mb: number; prev?: string; next?: string }>;
}

export interface RoundResult {
  microbatches: number;
  busyMs: number;
  /**
   * From the start of this peer's first computation in the round to the end of its last: the
   * pipeline's steady part, for this stage (the wait for its first input while the pipeline fills
   * is outside it; a stage's wait for its last gradients while the pipeline drains is inside).
   */
  spanMs: number;
  /** Sum of the microbatch losses (last stage only). */
  lossSum?: number;
}

/** A neighbour's frame did not come in time (or came bad: HostileFrameError). */
export class StallError extends Error {
  override name = 'StallError';
  constructor(
    readonly from: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The neighbour's frame came and was refused as its fault (see Mailbox), or it sent bytes that were
 * not a frame at all: the round cannot go on with it, and there is no point waiting any longer.
 */
export class HostileFrameError extends StallError {
  override name = 'HostileFrameError';
}

interface Item {
  mb: number;
  prev?: string;
  next?: string;
  x?: Float32Array;
  g?: Float32Array;
  slot?: number;
}

/** The routes of a round as this peer's work: the microbatches whose path passes through it. */
export function roundWorkOf(round: number, step: number, routes: string[][], self: string): RoundWork {
  const items: RoundWork['items'] = [];
  routes.forEach((path, mb) => {
    const s = path.indexOf(self);
    if (s >= 0) items.push({ mb, prev: path[s - 1], next: path[s + 1] });
  });
  return { round, step, items };
}

export class StageRunner {
  /** Boundary bytes this stage sent, by direction, headers included, and the tokens they carried. */
  readonly wire = { fwdSent: 0, bwdSent: 0, fwdTokens: 0, bwdTokens: 0 };
  busyMs = 0;
  /** First start and last end of a computation in the round being run. */
  private span?: { start: number; end: number };
  /** The frames being waited for, oldest first. */
  private readonly awaited = new Set<{ round: number; what: string; from: string }>();

  constructor(private readonly o: RunnerOptions) {
    if ((o.stage === 0) !== !!o.runtime.cfg.hasEmbedding) throw new Error(`stage ${o.stage}: the first stage and only it holds the embedding`);
    if ((o.stage === o.stages - 1) !== !!o.runtime.cfg.hasHead) throw new Error(`stage ${o.stage}: the last stage and only it holds the head`);
  }

  get runtime(): BlockRuntime {
    return this.o.runtime;
  }

  /** Whether a training round is being run now (serving then takes only its share: serve-share.ts). */
  get training(): boolean {
    return this.span !== undefined;
  }

  /** Compute this peer's share of a round, keeping the gradients until apply() or discard(). */
  async runRound(w: RoundWork, signal: AbortSignal): Promise<RoundResult> {
    const { stage, stages } = this.o;
    const first = stage === 0;
    const last = stage === stages - 1;
    const busy0 = this.busyMs;
    this.span = { start: Number.POSITIVE_INFINITY, end: Number.NEGATIVE_INFINITY };
    const free = [...Array(this.o.slots ?? this.o.runtime.slotCount).keys()];
    const items: Item[] = w.items.map((i) => ({ ...i }));
    const readyF: Item[] = first ? [...items] : [];
    const readyB: Item[] = [];
    let failure: unknown;
    let wake = () => {};
    const woken = () => new Promise<void>((r) => (wake = r));
    const onAbort = () => wake();
    signal.addEventListener('abort', onAbort);
    const arrive = (it: Item, kind: FrameKind, from: string, into: Item[]) =>
      this.take(this.o.mailbox.from(from).train, kind, w.round, it.mb, from, signal).then(
        (f) => {
          if (kind === FrameKind.Activation) it.x = f.tensor;
          else it.g = f.tensor;
          into.push(it);
          wake();
        },
        (e) => {
          failure ??= e;
          wake();
        },
      );
    if (!first) for (const it of items) void arrive(it, FrameKind.Activation, it.prev!, readyF);
    let lossSum = 0;
    let done = 0;
    try {
      while (done < items.length) {
        if (signal.aborted) throw signal.reason;
        if (failure) throw failure;
        const wait = woken();
        if (readyB.length) {
          await this.backward(w, readyB.shift()!, free);
          done++;
        } else if (readyF.length && free.length) {
          const it = readyF.shift()!;
          const loss = await this.forward(w, it, free.shift()!);
          if (last) {
            lossSum += loss!;
            readyB.push(it);
          } else void arrive(it, FrameKind.Gradient, it.next!, readyB);
        } else await wait;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    const spanMs = Math.max(0, this.span.end - this.span.start);
    this.span = undefined;
    return { microbatches: items.length, busyMs: this.busyMs - busy0, spanMs, ...(last && { lossSum }) };
  }

  private async forward(w: RoundWork, it: Item, slot: number): Promise<number | undefined> {
    it.slot = slot;
    const data = this.o.batch(w.step, it.mb, 'train');
    const out = await this.timed(() => this.o.runtime.forward({ ...data, x: it.x }, slot));
    it.x = undefined;
    if (it.next === undefined) return out.loss;
    this.wire.fwdSent += this.sendTensor(it.next, FrameKind.Activation, w.round, it.mb, out.x!);
    this.wire.fwdTokens += this.o.runtime.N;
    return undefined;
  }

  private async backward(w: RoundWork, it: Item, free: number[]): Promise<void> {
    const dx = await this.timed(() => this.o.runtime.backward(it.g, it.slot));
    it.g = undefined;
    free.push(it.slot!);
    if (it.prev === undefined) return;
    this.wire.bwdSent += this.sendTensor(it.prev, FrameKind.Gradient, w.round, it.mb, dx!);
    this.wire.bwdTokens += this.o.runtime.N;
  }

  /** The optimizer step of global step `step` on the gradients of the round just computed. */
  async apply(step: number): Promise<void> {
    await this.timed(async () => {
      this.o.runtime.step(this.o.lr(step));
      await this.o.runtime.gpu.finish();
    });
  }

  /** Forget a round that will not be applied. */
  discard(): void {
    this.o.runtime.discardGradients();
  }

  /**
   * Forward-only pass of `batches` validation microbatches along one path, its frames tagged with
   * `round`. The last stage returns the mean validation loss.
   */
  async evaluate(round: number, batches: number, hops: { prev?: string; next?: string }, signal: AbortSignal): Promise<number | undefined> {
    const rt = this.o.runtime;
    let sum = 0;
    for (let i = 0; i < batches; i++) {
      const data = this.o.batch(0, i, 'val');
      const x = hops.prev === undefined ? undefined : (await this.take(this.o.mailbox.from(hops.prev).train, FrameKind.EvalActivation, round, i, hops.prev, signal)).tensor;
      const out = await this.timed(() => rt.forward({ ...data, x }, 0));
      if (hops.next !== undefined) this.sendTensor(hops.next, FrameKind.EvalActivation, round, i, out.x!);
      else sum += out.loss!;
    }
    return hops.next === undefined ? sum / batches : undefined;
  }

  /** The oldest frame of round `round` still waited for: from whom, and a phrase saying which. */
  awaiting(round: number): { from: string; what: string } | undefined {
    return [...this.awaited].find((a) => a.round === round);
  }

  private async take(inbox: Inbox, kind: FrameKind, round: number, mb: number, from: string, signal: AbortSignal): Promise<Frame> {
    const awaited = { round, from, what: `${from}'s ${kindName(kind)} frame for round ${round} microbatch ${mb}` };
    this.awaited.add(awaited);
    try {
      const f = await inbox.take(kind, round, mb, this.o.timeoutMs, signal);
      this.o.onBoundary?.('received', kind, round, mb, f.tensor);
      return f;
    } catch (e) {
      if (e instanceof InboxTimeout) throw new StallError(from, `${from} sent no ${kindName(kind)} frame for round ${round} microbatch ${mb} within ${this.o.timeoutMs} ms`);
      if (e instanceof InboxRefused) throw new HostileFrameError(from, `${from}'s ${kindName(kind)} frame for round ${round} microbatch ${mb}: ${e.message}`);
      throw e;
    } finally {
      this.awaited.delete(awaited);
    }
  }

  private sendTensor(to: string, kind: FrameKind, round: number, mb: number, tensor: Float32Array): number {
    const rows = this.o.runtime.N;
    this.o.onBoundary?.('sent', kind, round, mb, tensor);
    // Integer payloads are entropy-coded whenever that is smaller (encodeFrame falls back to raw).
    const bytes = encodeFrame({ kind, tag: round, microbatch: mb, rows, cols: tensor.length / rows, dtype: this.o.dtype, tensor }, undefined, {
      entropy: true,
      step: this.o.step,
    });
    this.o.send(to, bytes);
    return bytes.length;
  }

  private async timed<T>(f: () => Promise<T>): Promise<T> {
    const t0 = this.o.now();
    try {
      const out = await f();
      const extra = ((this.o.slowdown ?? 1) - 1) * (this.o.now() - t0);
      if (extra > 0) await new Promise((r) => setTimeout(r, extra));
      return out;
    } finally {
      const t1 = this.o.now();
      this.busyMs += t1 - t0;
      if (this.span) {
        this.span.start = Math.min(this.span.start, t0);
        this.span.end = t1;
      }
    }
  }
}

function kindName(kind: FrameKind): keyof typeof FrameKind {
  return (Object.keys(FrameKind) as (keyof typeof FrameKind)[]).find((k) => FrameKind[k] === kind)!;
}
