// One pipeline stage: runs its block's share of every training step in schedule order, sending
// encoded boundary tensors to its neighbours and waiting for theirs, and serves text generation
// (generate.ts) over the same links. Environment-agnostic: the runtime (GPU), the links (WebRTC or
// memory), the data and the clock are handed in.
import type { BlockRuntime } from '../engine/block-runtime.js';
import type { Dtype } from '../wire/codec.js';
import { type Frame, FrameKind, decodeFrame, encodeFrame } from '../wire/frame.js';
import { type GenerateOptions, GenerationPeer, type Sampling, type ServeOptions, isGenerationKind } from './generate.js';
import { Inbox } from './inbox.js';
import type { Link } from '../wire/link.js';
import { type Schedule, oneFOneB, slotsNeeded } from './schedule.js';

export interface Batch {
  tokens: Uint32Array;
  targets: Uint32Array;
}

export interface StageOptions {
  runtime: BlockRuntime;
  stage: number;
  stages: number;
  microbatches: number;
  /** The shared data order: every stage derives the same tokens, so no ids travel. */
  batch(step: number, microbatch: number, split: 'train' | 'val'): Batch;
  dtype: Dtype;
  prev?: Link;
  next?: Link;
  /** Defaults to 1F1B with `extraWarmup` (default 0) more forwards in flight. */
  schedule?: Schedule;
  extraWarmup?: number;
  /** Learning rate for a step (warm-up, decay). */
  lr(step: number): number;
  now(): number;
  timeoutMs?: number;
  /**
   * Activation slot generation forwards in. By default the runtime's first slot beyond the ones
   * the schedule needs, if it has one (then generation may run while a training step is under way),
   * else slot 0 (then generate between training steps: a generation forward on a slot holding a
   * microbatch in flight makes that microbatch's backward fail).
   */
  generationSlot?: number;
  /** Sees every training and evaluation boundary tensor as sent (before encoding) and as received (after decoding). */
  onBoundary?(dir: 'sent' | 'received', kind: FrameKind, step: number, microbatch: number, tensor: Float32Array): void;
}

export interface StepResult {
  step: number;
  /** Mean training loss over the step's microbatches (last stage only). */
  loss?: number;
  wallMs: number;
  busyMs: number;
}

export class PipelineStage {
  private readonly fromPrev = new Inbox();
  private readonly fromNext = new Inbox();
  // Generation frames are keyed by request id, not step: their own inboxes, their own staleness.
  private readonly genFromPrev = new Inbox();
  private readonly genFromNext = new Inbox();
  private readonly generation: GenerationPeer;
  private readonly ops;
  readonly slots: number;
  busyMs = 0;
  readonly runtime: BlockRuntime;
  /** Boundary bytes this stage sent/received, by direction, headers included. */
  readonly wire = { fwdSent: 0, bwdSent: 0, fwdTokens: 0, bwdTokens: 0 };

  constructor(private readonly o: StageOptions) {
    this.runtime = o.runtime;
    const isFirst = o.stage === 0;
    const isLast = o.stage === o.stages - 1;
    if (isFirst !== !!o.runtime.cfg.hasEmbedding) throw new Error(`stage ${o.stage}: the first stage and only it holds the embedding`);
    if (isLast !== !!o.runtime.cfg.hasHead) throw new Error(`stage ${o.stage}: the last stage and only it holds the head`);
    if (!isFirst && !o.prev) throw new Error(`stage ${o.stage} needs a link to stage ${o.stage - 1}`);
    if (!isLast && !o.next) throw new Error(`stage ${o.stage} needs a link to stage ${o.stage + 1}`);
    this.ops = o.schedule ? o.schedule(o.stage, o.stages, o.microbatches) : oneFOneB(o.stage, o.stages, o.microbatches, o.extraWarmup ?? 0);
    this.slots = slotsNeeded(this.ops);
    if (this.slots > o.runtime.slotCount) throw new Error(`stage ${o.stage} needs ${this.slots} activation slots, its runtime has ${o.runtime.slotCount}`);
    const slot = o.generationSlot ?? (o.runtime.slotCount > this.slots ? this.slots : 0);
    if (!(Number.isInteger(slot) && slot >= 0 && slot < o.runtime.slotCount)) throw new Error(`stage ${o.stage}: generation slot ${slot} does not exist (the runtime has ${o.runtime.slotCount})`);
    this.generation = new GenerationPeer({
      runtime: o.runtime,
      stage: o.stage,
      stages: o.stages,
      dtype: o.dtype,
      prev: o.prev,
      next: o.next,
      fromPrev: this.genFromPrev,
      fromNext: this.genFromNext,
      slot,
      timeoutMs: o.timeoutMs ?? 120_000,
      now: o.now,
    });
    o.prev?.onMessage((b) => PipelineStage.route(b, this.fromPrev, this.genFromPrev));
    o.next?.onMessage((b) => PipelineStage.route(b, this.fromNext, this.genFromNext));
  }

  /** Decode once, then hand the frame to the training or the generation inbox. Never throws. */
  private static route(bytes: Uint8Array, training: Inbox, generation: Inbox): void {
    let f: Frame;
    try {
      f = decodeFrame(bytes);
    } catch (e) {
      return training.reject((e as Error).message);
    }
    (isGenerationKind(f.kind) ? generation : training).pushFrame(f);
  }

  /** Frames a neighbour sent that failed validation (malformed, replayed, stale). */
  get rejected(): number {
    return [this.fromPrev, this.fromNext, this.genFromPrev, this.genFromNext].reduce((n, i) => n + i.rejectedCount, 0);
  }

  /**
   * Stage 0: generate up to `maxTokens` tokens after `prompt` through the whole pipeline and
   * return them (not the prompt). Temperature 0 is greedy; otherwise sampling is seeded and
   * reproducible. Invalid inputs throw before anything is sent. Every later stage must call
   * serveGeneration with the same request id (a u32, unique on this stage).
   */
  generate(requestId: number, prompt: ArrayLike<number>, maxTokens: number, sampling: Sampling, opts?: GenerateOptions): Promise<Uint32Array> {
    return this.generation.generate(requestId, prompt, maxTokens, sampling, opts);
  }

  /**
   * Stages after 0: serve one request of stage 0's (its parameters arrive in-band). The last
   * stage samples each token and sends it back; middle stages relay. Resolves with the tokens.
   */
  serveGeneration(requestId: number, opts?: ServeOptions): Promise<Uint32Array> {
    return this.generation.serve(requestId, opts);
  }

  /** Generation requests, tokens, bytes sent and GPU milliseconds on this stage (not in `wire`/`busyMs`). */
  get generationStats(): Readonly<GenerationPeer['stats']> {
    return this.generation.stats;
  }

  private async timed<T>(f: () => Promise<T>): Promise<T> {
    const t0 = this.o.now();
    try {
      return await f();
    } finally {
      this.busyMs += this.o.now() - t0;
    }
  }

  private send(link: Link | undefined, kind: FrameKind, step: number, mb: number, tensor: Float32Array): number {
    const rows = this.o.runtime.N;
    this.o.onBoundary?.('sent', kind, step, mb, tensor);
    // Integer payloads are entropy-coded whenever that is smaller (encodeFrame falls back to raw).
    const bytes = encodeFrame({ kind, step, microbatch: mb, rows, cols: tensor.length / rows, dtype: this.o.dtype, tensor }, undefined, { entropy: true });
    link!.send(bytes);
    return bytes.length;
  }

  private async receive(inbox: Inbox, kind: FrameKind, step: number, mb: number): Promise<Frame> {
    const f = await inbox.take(kind, step, mb, this.o.timeoutMs ?? 120_000);
    this.o.onBoundary?.('received', kind, step, mb, f.tensor);
    return f;
  }

  /** Run this stage's part of training step `step` (from 1), then its optimizer step. */
  async trainStep(step: number): Promise<StepResult> {
    const { runtime: rt, stage, stages } = this.o;
    const t0 = this.o.now();
    const busy0 = this.busyMs;
    let lossSum = 0;
    for (const op of this.ops) {
      const slot = op.mb % this.slots;
      const data = this.o.batch(step, op.mb, 'train');
      if (op.kind === 'F') {
        const x = stage > 0 ? (await this.receive(this.fromPrev, FrameKind.Activation, step, op.mb)).tensor : undefined;
        const out = await this.timed(() => rt.forward({ ...data, x }, slot));
        if (stage < stages - 1) {
          this.wire.fwdSent += this.send(this.o.next, FrameKind.Activation, step, op.mb, out.x!);
          this.wire.fwdTokens += rt.N;
        } else {
          lossSum += out.loss!;
        }
      } else {
        const g = stage < stages - 1 ? (await this.receive(this.fromNext, FrameKind.Gradient, step, op.mb)).tensor : undefined;
        const dx = await this.timed(() => rt.backward(g, slot));
        if (stage > 0) {
          this.wire.bwdSent += this.send(this.o.prev, FrameKind.Gradient, step, op.mb, dx!);
          this.wire.bwdTokens += rt.N;
        }
      }
    }
    await this.timed(async () => {
      rt.step(this.o.lr(step));
      await rt.gpu.finish();
    });
    this.fromPrev.forgetBefore(step);
    this.fromNext.forgetBefore(step);
    const loss = stage === stages - 1 ? lossSum / this.o.microbatches : undefined;
    return { step, loss, wallMs: this.o.now() - t0, busyMs: this.busyMs - busy0 };
  }

  /**
   * Forward-only pass of `batches` validation microbatches through the pipeline, tagged with the
   * step they follow. The last stage returns the mean validation loss.
   */
  async evaluate(step: number, batches: number): Promise<number | undefined> {
    const { runtime: rt, stage, stages } = this.o;
    let sum = 0;
    for (let i = 0; i < batches; i++) {
      const data = this.o.batch(step, i, 'val');
      const x = stage > 0 ? (await this.receive(this.fromPrev, FrameKind.EvalActivation, step, i)).tensor : undefined;
      const out = await this.timed(() => rt.forward({ ...data, x }, 0));
      if (stage < stages - 1) this.send(this.o.next, FrameKind.EvalActivation, step, i, out.x!);
      else sum += out.loss!;
    }
    return stage === stages - 1 ? sum / batches : undefined;
  }
}
