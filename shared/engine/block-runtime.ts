// Runs one block of a GPT (some layers, optionally the embedding and/or the LM head) on a
// GPUDevice: forward, backward and an AdamW step, each recorded in one command encoder. Weights,
// gradients, optimizer moments and activations stay on the GPU; only the boundary tensor (or the
// loss) is read back. Same code in Node (Dawn), a browser tab and Electron.
//
// Activation slots let a pipeline stage keep several microbatches in flight (1F1B): each slot
// holds one microbatch's saved activations; parameters, gradients and scratch are shared.
// With `cfg.subspace`, boundaries are k coefficients c = Uᵀ(x − F[tok]) instead of d values,
// encoded and decoded on the GPU, so only k values per token are ever read back.
//
// Inference (text generation through a pipeline) reuses the same forward dispatches without the
// loss: forwardBoundary reads back only the boundary rows the next stage needs, forwardLogits only
// the one row of next-token logits.
//
// This file is the block's API (inputs checked, phases run, state saved and restored); where its
// tensors live is block-buffers.ts, and the dispatches each phase runs are block-dispatches.ts.
import type { Dispatch, Gpu } from '../../kernels/context.js';
import { MatmulTuner } from '../../kernels/autotune.js';
import { adamwStride, adamwWords } from '../../kernels/ops.js';
import { type BlockBuffers, BufferPool, type SharedBuffers, type SlotBuffers, allocBlock, allocSlot } from './block-buffers.js';
import { DispatchRecorder, type SlotDispatches } from './block-dispatches.js';
import { KvDecoder, type KvDecoderOptions } from './kv-decoder.js';
import type { TrainState } from './checkpoint.js';
import { type BlockConfig, type Layout, boundaryWidth, initParams, layout } from './model.js';
import { type AdamW, DEFAULT_ADAMW } from './optimizer.js';
import { frozenTable, orthonormalBasis } from './subspace.js';

export interface BlockRuntimeOptions {
  /** Initial flat parameters (layout(cfg).total floats); otherwise seeded init. */
  init?: Float32Array;
  seed?: number;
  optimizer?: AdamW;
  /** Microbatches that can be in flight at once (activation sets held). */
  slots?: number;
  /** Measure matmul variants for this block's shapes before building (slower start, faster steps). */
  autotune?: boolean;
  onTuneProgress?: (done: number, total: number) => void;
  tuner?: MatmulTuner;
}

export interface ForwardInput {
  /** Token ids [batch·seq]: the embedding's input, and F's index in a subspace block. */
  tokens?: ArrayLike<number>;
  /** Boundary tensor from the previous stage: [batch·seq, boundaryWidth]. */
  x?: Float32Array;
  /** Next-token targets [batch·seq], needed by a block with the head. */
  targets?: ArrayLike<number>;
}

/** A microbatch in flight: its buffers, its recorded dispatches, and whether it awaits its backward. */
type Slot = SlotBuffers &
  SlotDispatches & {
    pending: boolean; // forwarded, not yet backwarded
  };

export class BlockRuntime {
  readonly layout: Layout;
  readonly N: number;
  readonly width: number;
  private step_ = 0;
  private slots: Slot[] = [];
  private stepDispatches: Dispatch[] = [];
  private projectParams: Dispatch[] = [];
  private readonly pool: BufferPool;
  private b!: BlockBuffers;
  private hyper!: GPUBuffer;
  private subspaceWritten = false;

  private constructor(
    readonly gpu: Gpu,
    readonly cfg: BlockConfig,
    readonly optimizer: AdamW,
    private readonly tuner: MatmulTuner,
    readonly slotCount: number,
  ) {
    this.layout = layout(cfg);
    this.N = cfg.batch * cfg.seq;
    this.width = boundaryWidth(cfg);
    if (!(Number.isInteger(slotCount) && slotCount >= 1)) throw new Error(`slots must be a positive integer, got ${slotCount}`);
    this.pool = new BufferPool(gpu);
  }

  static async create(gpu: Gpu, cfg: BlockConfig, opts: BlockRuntimeOptions = {}): Promise<BlockRuntime> {
    const rt = new BlockRuntime(gpu, cfg, opts.optimizer ?? DEFAULT_ADAMW, opts.tuner ?? new MatmulTuner(), opts.slots ?? 1);
    const init = opts.init ?? initParams(cfg, opts.seed ?? 1);
    if (init.length !== rt.layout.total) throw new Error(`init holds ${init.length} floats, the layout needs ${rt.layout.total}`);
    rt.build();
    gpu.write(rt.shared.params, init);
    if (opts.autotune && rt.tuner.pending.size) {
      await rt.tuner.tunePending(gpu, opts.onTuneProgress);
      rt.build();
    }
    // A subspace block starts inside its constraint.
    if (rt.projectParams.length) gpu.run(rt.projectParams);
    return rt;
  }

  /** The buffers every slot shares. */
  private get shared(): SharedBuffers {
    return this.b.shared;
  }

  /** Allocate (first call) or re-bind (later calls: the same buffers, after tuning) and record every dispatch. */
  private build(): void {
    this.pool.rewind();
    this.b = allocBlock(this.pool, this.cfg, this.layout.total, this.width);
    this.hyper ??= this.gpu.uniform(new Uint32Array(12), 'adamw');
    const sub = this.b.sub;
    if (sub && !this.subspaceWritten) {
      this.gpu.write(sub.u, orthonormalBasis(this.cfg.dModel, sub.k, this.cfg.subspace!.seed));
      this.gpu.write(sub.f, frozenTable(this.cfg.vocab, this.cfg.dModel, this.cfg.subspace!.seed));
      this.subspaceWritten = true;
    }
    const rec = new DispatchRecorder(this.gpu, this.cfg, this.layout, this.b, this.tuner);
    this.slots = Array.from({ length: this.slotCount }, () => {
      const buffers = allocSlot(this.pool, this.cfg);
      return { ...buffers, ...rec.slot(buffers), pending: false };
    });
    const projectGrads = rec.project(this.shared.grads);
    this.projectParams = rec.project(this.shared.params);
    this.stepDispatches = rec.step(this.hyper, projectGrads, this.projectParams);
  }

  private checkTokens(name: string, t: ArrayLike<number> | undefined): Uint32Array {
    if (!t) throw new Error(`${name} are required by this block`);
    if (t.length !== this.N) throw new Error(`${name}: expected ${this.N} ids (batch ${this.cfg.batch} × seq ${this.cfg.seq}), got ${t.length}`);
    const out = new Uint32Array(this.N);
    for (let i = 0; i < this.N; i++) {
      const v = t[i];
      if (!Number.isInteger(v) || v < 0 || v >= this.cfg.vocab) throw new Error(`${name}[${i}] = ${v} is not a token id in [0, ${this.cfg.vocab})`);
      out[i] = v;
    }
    return out;
  }

  private checkBoundary(name: string, x: Float32Array | undefined): Float32Array {
    const n = this.N * this.width;
    if (!x) throw new Error(`${name} is required by a block without the ${name === 'x' ? 'embedding' : 'head'}`);
    if (x.length !== n) throw new Error(`${name}: expected ${n} values (${this.N} tokens × ${this.width}), got ${x.length}`);
    for (let i = 0; i < n; i++) if (!Number.isFinite(x[i])) throw new Error(`${name}[${i}] is ${x[i]}: tensors must be finite`);
    return x;
  }

  private slot(i: number): Slot {
    const s = this.slots[i];
    if (!s) throw new Error(`slot ${i} does not exist: this block holds ${this.slotCount} slot(s)`);
    return s;
  }

  /**
   * Forward one microbatch in activation slot `slot`. Returns the mean loss for a block with the
   * head, else the boundary tensor for the next stage. Inputs are validated before anything is
   * written. A forward that is never backwarded (evaluation) simply leaves the slot to be reused.
   */
  async forward(input: ForwardInput, slot = 0): Promise<{ loss?: number; x?: Float32Array }> {
    const s = this.slot(slot);
    this.load(s, input, true);
    this.gpu.run(s.forward);
    s.pending = true;
    if (s.head) return { loss: (await this.gpu.read(s.head.loss))[0] };
    return { x: await this.gpu.read(this.cfg.subspace ? this.shared.boundaryOut : s.output) };
  }

  /** Validate every input first, then write them into the slot's (and the shared) buffers. */
  private load(s: Slot, input: ForwardInput, withTargets: boolean): void {
    const needTokens = this.cfg.hasEmbedding || !!this.cfg.subspace;
    const tokens = needTokens ? this.checkTokens('tokens', input.tokens) : undefined;
    const x = this.cfg.hasEmbedding ? undefined : this.checkBoundary('x', input.x);
    const targets = withTargets && this.cfg.hasHead ? this.checkTokens('targets', input.targets) : undefined;
    if (tokens) this.gpu.write(s.tokens, tokens);
    if (x) this.gpu.write(this.cfg.subspace ? this.shared.boundaryIn : s.input, x);
    if (targets) this.gpu.write(s.targets, targets);
  }

  // Inference (generation). Both calls below run the training forward's dispatches (without the
  // loss) in one submit and read back only what generation needs. They overwrite the slot's saved
  // activations, so the slot is left with nothing to backward: generating on a slot that holds a
  // microbatch in flight makes that microbatch's backward fail loudly instead of silently using
  // the wrong activations. Every call writes, runs and queues its read-back before yielding, so
  // calls on one slot may interleave freely with each other and with training on other slots.

  /**
   * Forward-only through a block without the head: the first `rows` token rows of the output
   * boundary ([batch·seq, width] row-major, so rows ≤ seq are sequence 0's first positions).
   * Targets are ignored. Reads back rows × width floats.
   */
  async forwardBoundary(input: ForwardInput, slot: number, rows: number): Promise<Float32Array> {
    if (this.cfg.hasHead) throw new Error('forwardBoundary: this block holds the head; use forwardLogits');
    if (!(Number.isInteger(rows) && rows >= 1 && rows <= this.N)) throw new Error(`forwardBoundary: rows must be an integer in [1, ${this.N}], got ${rows}`);
    const s = this.slot(slot);
    this.load(s, input, false);
    this.gpu.run(s.infer);
    s.pending = false;
    return this.gpu.read(this.cfg.subspace ? this.shared.boundaryOut : s.output, rows * this.width);
  }

  /**
   * Forward-only through a block with the head: the next-token logits (vocab floats) of
   * sequence `row` at position `pos`, i.e. the prediction for position pos + 1. Targets are not
   * needed (no loss is computed). Reads back only those vocab floats.
   */
  async forwardLogits(input: ForwardInput, slot: number, row: number, pos: number): Promise<Float32Array> {
    const { batch, seq, vocab } = this.cfg;
    if (!this.cfg.hasHead) throw new Error('forwardLogits: only the block with the head computes logits');
    if (!(Number.isInteger(row) && row >= 0 && row < batch)) throw new Error(`forwardLogits: row must be an integer in [0, ${batch}), got ${row}`);
    if (!(Number.isInteger(pos) && pos >= 0 && pos < seq)) throw new Error(`forwardLogits: pos must be an integer in [0, ${seq}), got ${pos}`);
    const s = this.slot(slot);
    this.load(s, input, false);
    this.gpu.run(s.infer);
    s.pending = false;
    // A view for the copy only: copies need 4-byte alignment, not the binding alignment of View.
    const logits = s.head!.logits;
    return this.gpu.read({ buffer: logits.buffer, offset: logits.offset + (row * seq + pos) * vocab, length: vocab });
  }

  /**
   * Backward the microbatch last forwarded in `slot`, accumulating weight gradients. A block
   * without the head takes the gradient of its output boundary; a block without the embedding
   * returns the gradient of its input boundary for the previous stage.
   */
  async backward(gradOut?: Float32Array, slot = 0): Promise<Float32Array | undefined> {
    const s = this.slot(slot);
    if (!s.pending) throw new Error(`backward needs a forward first (slot ${slot})`);
    if (!this.cfg.hasHead) this.gpu.write(this.cfg.subspace ? this.shared.boundaryIn : this.shared.dX, this.checkBoundary('gradient', gradOut));
    this.gpu.run(s.backward);
    s.pending = false;
    if (this.cfg.hasEmbedding) return undefined;
    return this.gpu.read(this.cfg.subspace ? this.shared.boundaryOut : this.shared.dX);
  }

  /**
   * Run one forward and backward on whatever the buffers hold and discard the gradients: on CPU
   * adapters the first run of each shader compiles it, which can take minutes on a cold cache, and
   * a pipeline peer should pay that before it tells the swarm it is ready, not mid-step.
   */
  async warmUp(): Promise<void> {
    const s = this.slot(0);
    const encoder = this.gpu.device.createCommandEncoder();
    this.gpu.encode(encoder, [...s.forward, ...s.backward]);
    encoder.clearBuffer(this.shared.grads.buffer);
    this.gpu.device.queue.submit([encoder.finish()]);
    await this.gpu.finish();
  }

  /** AdamW on the accumulated gradients (clipped to the global norm), then zero them. */
  step(lr = this.optimizer.lr): void {
    this.step_++;
    const words = adamwWords({ ...this.optimizer, lr, t: this.step_ }, this.layout.total, this.layout.decayEnd, adamwStride(this.layout.total));
    this.gpu.device.queue.writeBuffer(this.hyper, 0, words);
    const encoder = this.gpu.device.createCommandEncoder();
    this.gpu.encode(encoder, this.stepDispatches);
    encoder.clearBuffer(this.shared.grads.buffer);
    this.gpu.device.queue.submit([encoder.finish()]);
  }

  get stepCount(): number {
    return this.step_;
  }

  /**
   * Drop the gradients accumulated since the last step and forget every microbatch in flight: a
   * pipeline round that was discarded (a peer on it failed) must leave no trace in the next one.
   */
  discardGradients(): void {
    const encoder = this.gpu.device.createCommandEncoder();
    encoder.clearBuffer(this.shared.grads.buffer);
    this.gpu.device.queue.submit([encoder.finish()]);
    for (const s of this.slots) s.pending = false;
  }

  /** Adopt the swarm's optimizer step count (a joiner that caught up at an averaging point). */
  setStepCount(step: number): void {
    if (!Number.isInteger(step) || step < 0) throw new Error(`step count ${step} is not a non-negative integer`);
    this.step_ = step;
  }

  /** Everything needed to resume training: the step count, parameters and Adam moments. */
  async saveState(): Promise<TrainState> {
    const [params, m, v] = await Promise.all([this.readParams(), this.gpu.read(this.shared.m), this.gpu.read(this.shared.v)]);
    return { step: this.step_, params, m, v };
  }

  loadState(s: TrainState): void {
    const n = this.layout.total;
    for (const [name, a] of [
      ['params', s.params],
      ['m', s.m],
      ['v', s.v],
    ] as const) {
      if (a.length !== n) throw new Error(`state ${name} holds ${a.length} floats, this block needs ${n}`);
    }
    if (!Number.isInteger(s.step) || s.step < 0) throw new Error(`state step ${s.step} is not a step count`);
    this.gpu.write(this.shared.params, s.params);
    this.gpu.write(this.shared.m, s.m);
    this.gpu.write(this.shared.v, s.v);
    this.step_ = s.step;
  }

  /** Replace the parameters (replica averaging), keeping optimizer state. */
  writeParams(p: Float32Array): void {
    if (p.length !== this.layout.total) throw new Error(`params hold ${p.length} floats, this block needs ${this.layout.total}`);
    for (let i = 0; i < p.length; i++) if (!Number.isFinite(p[i])) throw new Error(`params[${i}] is ${p[i]}: parameters must be finite`);
    this.gpu.write(this.shared.params, p);
  }

  readParams(): Promise<Float32Array> {
    return this.gpu.read(this.shared.params);
  }

  readGrads(): Promise<Float32Array> {
    return this.gpu.read(this.shared.grads);
  }

  /**
   * One microbatch through this block with someone else's parameters (an audit of a replica's
   * work): forward, and backward when there is a gradient to take (or the head's loss), on slot 0.
   * This block's own parameters and accumulated gradients are put back afterwards, so a round
   * waiting for its commit is untouched. Needs slot 0 free (no microbatch of its own in flight).
   */
  async recompute(params: Float32Array, input: ForwardInput, gradOut?: Float32Array): Promise<{ loss?: number; x?: Float32Array; dx?: Float32Array }> {
    const [own, grads] = await Promise.all([this.readParams(), this.readGrads()]);
    this.writeParams(params);
    try {
      const out = await this.forward(input, 0);
      const dx = this.cfg.hasHead || gradOut ? await this.backward(gradOut, 0) : undefined;
      return { ...out, ...(dx && { dx }) };
    } finally {
      this.gpu.write(this.shared.params, own);
      this.gpu.write(this.shared.grads, grads);
      this.slot(0).pending = false;
    }
  }

  /** A KV-cache decoder of this block (kv-decoder.ts), on its parameters. */
  kvDecoder(o: KvDecoderOptions): KvDecoder {
    return new KvDecoder({ gpu: this.gpu, cfg: this.cfg, layout: this.layout, params: this.shared.params, sub: this.b.sub, tuner: this.tuner }, o);
  }

  /** Bytes of GPU memory this block holds. */
  get gpuBytes(): number {
    return this.pool.bytes;
  }

  destroy(): void {
    this.hyper.destroy();
    this.pool.destroy();
  }
}
