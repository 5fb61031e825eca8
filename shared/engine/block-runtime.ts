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
import type { Dispatch, Gpu, View } from '../../kernels/context.js';
import { MatmulTuner } from '../../kernels/autotune.js';
import { type MatmulArgs, matmul } from '../../kernels/matmul.js';
import * as k from '../../kernels/ops.js';
import type { TrainState } from './checkpoint.js';
import { type BlockConfig, type Layout, boundaryWidth, constrained, initParams, layout, residualWriters } from './model.js';
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

/** Values per token at this block's boundaries: k coefficients for subspace models, else d. */

interface LayerActs {
  x: View; // layer input
  ln1: View;
  mean1: View;
  rstd1: View;
  qkv: View;
  probs: View;
  att: View;
  x1: View;
  ln2: View;
  mean2: View;
  rstd2: View;
  h: View;
  g: View;
}

interface Slot {
  tokens: View;
  targets: View;
  input: View; // layer 0 input
  output: View; // last layer output
  loss?: View;
  /** Next-token logits [batch·seq, vocab] (a block with the head). */
  logits?: View;
  forward: Dispatch[];
  /** Forward-only (inference): the forward without the loss, which would overwrite the logits. */
  infer: Dispatch[];
  backward: Dispatch[];
  pending: boolean; // forwarded, not yet backwarded
}

export class BlockRuntime {
  readonly layout: Layout;
  readonly N: number;
  readonly width: number;
  private step_ = 0;
  private slots: Slot[] = [];
  private stepDispatches: Dispatch[] = [];
  private readonly bufs: GPUBuffer[] = [];
  private allocated = 0;
  private params!: View;
  private grads!: View;
  private m!: View;
  private v!: View;
  private sumsq!: View;
  private hyper!: GPUBuffer;
  private boundaryIn!: View; // received boundary tensor (activation or gradient), [N, width]
  private boundaryOut!: View; // boundary tensor to send, [N, width]
  private dX!: View; // gradient w.r.t. the current layer's output, updated in place down the layers

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
  }

  static async create(gpu: Gpu, cfg: BlockConfig, opts: BlockRuntimeOptions = {}): Promise<BlockRuntime> {
    const rt = new BlockRuntime(gpu, cfg, opts.optimizer ?? DEFAULT_ADAMW, opts.tuner ?? new MatmulTuner(), opts.slots ?? 1);
    const init = opts.init ?? initParams(cfg, opts.seed ?? 1);
    if (init.length !== rt.layout.total) throw new Error(`init holds ${init.length} floats, the layout needs ${rt.layout.total}`);
    rt.build();
    gpu.write(rt.params, init);
    if (opts.autotune && rt.tuner.pending.size) {
      await rt.tuner.tunePending(gpu, opts.onTuneProgress);
      rt.allocated = 0;
      rt.build();
    }
    // A subspace block starts inside its constraint.
    if (rt.projectParams.length) gpu.run(rt.projectParams);
    return rt;
  }

  /** Buffers are allocated in a fixed order, so a rebuild (after tuning) gets the same ones back. */
  private alloc(n: number, label: string): View {
    let b = this.bufs[this.allocated];
    if (!b) {
      b = this.gpu.buffer(n, label);
      this.bufs.push(b);
    }
    this.allocated++;
    return this.gpu.view(b, 0, n);
  }

  private spec(name: string) {
    const s = this.layout.params.find((x) => x.name === name);
    if (!s) throw new Error(`no parameter ${name}`);
    return s;
  }

  private p(name: string): View {
    const s = this.spec(name);
    return this.gpu.view(this.params.buffer, s.offset, s.size);
  }

  private gr(name: string): View {
    const s = this.spec(name);
    return this.gpu.view(this.grads.buffer, s.offset, s.size);
  }

  private mm(a: MatmulArgs): Dispatch {
    return matmul(this.gpu, a, this.tuner.pick);
  }

  private projectGrads: Dispatch[] = [];
  private projectParams: Dispatch[] = [];

  /** Allocate (first call) or re-bind (later calls) the buffers and record every dispatch. */
  private build(): void {
    const { gpu, cfg, N } = this;
    const d = cfg.dModel;
    const { B, T, H, V } = { B: cfg.batch, T: cfg.seq, H: cfg.nHead, V: cfg.vocab };
    const total = this.layout.total;
    this.params = this.alloc(total, 'params');
    this.grads = this.alloc(total, 'grads');
    this.m = this.alloc(total, 'adam m');
    this.v = this.alloc(total, 'adam v');
    this.sumsq = this.alloc(1, 'grad sumsq');
    this.hyper ??= gpu.uniform(new Uint32Array(12), 'adamw');
    this.boundaryIn = this.alloc(N * this.width, 'boundary in');
    this.boundaryOut = this.alloc(N * this.width, 'boundary out');
    this.dX = this.alloc(N * d, 'dX');
    // Scratch shared by all layers and slots: each phase is one submit, so they never overlap.
    const proj = this.alloc(N * d, 'proj');
    const d4a = this.alloc(N * 4 * d, 'dgelu');
    const d4b = this.alloc(N * 4 * d, 'dh');
    const dN = this.alloc(N * d, 'dnorm');
    const dx1 = this.alloc(N * d, 'dx1');
    const datt = this.alloc(N * d, 'datt');
    const dS = this.alloc(B * H * T * T, 'dscores');
    const dqkv = this.alloc(N * 3 * d, 'dqkv');
    const sub = cfg.subspace && {
      u: this.alloc(d * cfg.subspace.k, 'subspace U'),
      f: this.alloc(V * d, 'frozen table F'),
      tmp: this.alloc(Math.max(V, T, 4 * d) * cfg.subspace.k, 'projection tmp'),
      k: cfg.subspace.k,
    };
    if (sub && !this.subspaceWritten) {
      gpu.write(sub.u, orthonormalBasis(d, sub.k, cfg.subspace!.seed));
      gpu.write(sub.f, frozenTable(V, d, cfg.subspace!.seed));
      this.subspaceWritten = true;
    }
    const first = cfg.firstLayer ?? 0;
    const name = (l: number, s: string) => `h${first + l}.${s}`;

    this.slots = [];
    for (let s = 0; s < this.slotCount; s++) {
      const tokens = this.alloc(N, 'tokens');
      const targets = this.alloc(N, 'targets');
      const acts: LayerActs[] = [];
      let x = this.alloc(N * d, 'x0');
      const input = x;
      for (let l = 0; l < cfg.nLayer; l++) {
        acts.push({
          x,
          ln1: this.alloc(N * d, 'ln1'),
          mean1: this.alloc(N, 'mean1'),
          rstd1: this.alloc(N, 'rstd1'),
          qkv: this.alloc(N * 3 * d, 'qkv'),
          probs: this.alloc(B * H * T * T, 'probs'),
          att: this.alloc(N * d, 'att'),
          x1: this.alloc(N * d, 'x1'),
          ln2: this.alloc(N * d, 'ln2'),
          mean2: this.alloc(N, 'mean2'),
          rstd2: this.alloc(N, 'rstd2'),
          h: this.alloc(N * 4 * d, 'h'),
          g: this.alloc(N * 4 * d, 'gelu'),
        });
        x = this.alloc(N * d, `x${l + 1}`);
      }
      const output = x;
      const fwd: Dispatch[] = [];
      const bwd: Dispatch[] = [];
      const table = sub ? { table: sub.f, tokens } : {};

      // Dense boundaries are written straight into `input` and read straight from `output`.
      if (cfg.hasEmbedding) {
        fwd.push(k.embeddingForward(gpu, { wte: this.p('wte'), wpe: this.p('wpe'), tokens, x: input, N, T, d, frozen: sub?.f }));
      } else if (sub) {
        fwd.push(k.subspaceDecode(gpu, { c: this.boundaryIn, u: sub.u, x: input, N, d, k: sub.k, ...table }));
      }
      acts.forEach((a, l) => {
        const n = (s: string) => name(l, s);
        const out = l + 1 < acts.length ? acts[l + 1].x : output;
        fwd.push(
          k.layerNormForward(gpu, { x: a.x, g: this.p(n('ln1.g')), b: this.p(n('ln1.b')), y: a.ln1, mean: a.mean1, rstd: a.rstd1, N, d }),
          this.mm({ M: N, N: 3 * d, K: d, a: a.ln1, b: this.p(n('attn.wqkv')), bias: this.p(n('attn.bqkv')), c: a.qkv }),
          ...k.attentionForward(gpu, { B, T, H, d, qkv: a.qkv, probs: a.probs, out: a.att }, this.tuner.pick),
          this.mm({ M: N, N: d, K: d, a: a.att, b: this.p(n('attn.wo')), bias: this.p(n('attn.bo')), c: proj }),
          k.add(gpu, { a: a.x, b: proj, out: a.x1, n: N * d }),
          k.layerNormForward(gpu, { x: a.x1, g: this.p(n('ln2.g')), b: this.p(n('ln2.b')), y: a.ln2, mean: a.mean2, rstd: a.rstd2, N, d }),
          this.mm({ M: N, N: 4 * d, K: d, a: a.ln2, b: this.p(n('mlp.w1')), bias: this.p(n('mlp.b1')), c: a.h }),
          k.gelu(gpu, { x: a.h, y: a.g, n: N * 4 * d }),
          this.mm({ M: N, N: d, K: 4 * d, a: a.g, b: this.p(n('mlp.w2')), bias: this.p(n('mlp.b2')), c: proj }),
          k.add(gpu, { a: a.x1, b: proj, out, n: N * d }),
        );
      });

      let loss: View | undefined;
      let logitsView: View | undefined;
      let infer = fwd;
      if (cfg.hasHead) {
        const xf = this.alloc(N * d, 'lnf');
        const meanf = this.alloc(N, 'meanf');
        const rstdf = this.alloc(N, 'rstdf');
        const logits = this.alloc(N * V, 'logits');
        const losses = this.alloc(N, 'losses');
        loss = this.alloc(1, 'loss');
        logitsView = logits;
        fwd.push(
          k.layerNormForward(gpu, { x: output, g: this.p('lnf.g'), b: this.p('lnf.b'), y: xf, mean: meanf, rstd: rstdf, N, d }),
          this.mm({ M: N, N: V, K: d, a: xf, b: this.p('head.w'), c: logits }),
        );
        infer = fwd.slice();
        fwd.push(k.crossEntropy(gpu, { logits, targets, losses, N, V }), k.reduceSum(gpu, { x: losses, out: loss, n: N, scale: 1 / N }));
        // logits now hold dloss/dlogits.
        bwd.push(
          this.mm({ M: d, N: V, K: N, a: xf, b: logits, c: this.gr('head.w'), transA: true, accumulate: true }),
          this.mm({ M: N, N: d, K: V, a: logits, b: this.p('head.w'), c: dN, transB: true }),
          k.layerNormBackward(gpu, { dy: dN, x: output, g: this.p('lnf.g'), mean: meanf, rstd: rstdf, dx: this.dX, N, d }),
          k.layerNormParamGrads(gpu, { dy: dN, x: output, mean: meanf, rstd: rstdf, dg: this.gr('lnf.g'), db: this.gr('lnf.b'), N, d }),
        );
      } else if (sub) {
        fwd.push(k.subspaceEncode(gpu, { x: output, u: sub.u, c: this.boundaryOut, N, d, k: sub.k, ...table }));
        bwd.push(k.subspaceDecode(gpu, { c: this.boundaryIn, u: sub.u, x: this.dX, N, d, k: sub.k }));
      }

      for (let l = acts.length - 1; l >= 0; l--) {
        const a = acts[l];
        const n = (s: string) => name(l, s);
        const dy = this.dX;
        bwd.push(
          // MLP: x2 = x1 + gelu(ln2·W1 + b1)·W2 + b2
          this.mm({ M: 4 * d, N: d, K: N, a: a.g, b: dy, c: this.gr(n('mlp.w2')), transA: true, accumulate: true }),
          k.colsum(gpu, { dy, db: this.gr(n('mlp.b2')), N, C: d }),
          this.mm({ M: N, N: 4 * d, K: d, a: dy, b: this.p(n('mlp.w2')), c: d4a, transB: true }),
          k.geluBackward(gpu, { dy: d4a, x: a.h, dx: d4b, n: N * 4 * d }),
          this.mm({ M: d, N: 4 * d, K: N, a: a.ln2, b: d4b, c: this.gr(n('mlp.w1')), transA: true, accumulate: true }),
          k.colsum(gpu, { dy: d4b, db: this.gr(n('mlp.b1')), N, C: 4 * d }),
          this.mm({ M: N, N: d, K: 4 * d, a: d4b, b: this.p(n('mlp.w1')), c: dN, transB: true }),
          k.layerNormBackward(gpu, { dy: dN, x: a.x1, g: this.p(n('ln2.g')), mean: a.mean2, rstd: a.rstd2, residual: dy, dx: dx1, N, d }),
          k.layerNormParamGrads(gpu, { dy: dN, x: a.x1, mean: a.mean2, rstd: a.rstd2, dg: this.gr(n('ln2.g')), db: this.gr(n('ln2.b')), N, d }),
          // Attention: x1 = x + attn(ln1)·Wo + bo
          this.mm({ M: d, N: d, K: N, a: a.att, b: dx1, c: this.gr(n('attn.wo')), transA: true, accumulate: true }),
          k.colsum(gpu, { dy: dx1, db: this.gr(n('attn.bo')), N, C: d }),
          this.mm({ M: N, N: d, K: d, a: dx1, b: this.p(n('attn.wo')), c: datt, transB: true }),
          ...k.attentionBackward(gpu, { B, T, H, d, qkv: a.qkv, probs: a.probs, dout: datt, dscores: dS, dqkv }, this.tuner.pick),
          this.mm({ M: d, N: 3 * d, K: N, a: a.ln1, b: dqkv, c: this.gr(n('attn.wqkv')), transA: true, accumulate: true }),
          k.colsum(gpu, { dy: dqkv, db: this.gr(n('attn.bqkv')), N, C: 3 * d }),
          this.mm({ M: N, N: d, K: 3 * d, a: dqkv, b: this.p(n('attn.wqkv')), c: dN, transB: true }),
          k.layerNormBackward(gpu, { dy: dN, x: a.x, g: this.p(n('ln1.g')), mean: a.mean1, rstd: a.rstd1, residual: dx1, dx: this.dX, N, d }),
          k.layerNormParamGrads(gpu, { dy: dN, x: a.x, mean: a.mean1, rstd: a.rstd1, dg: this.gr(n('ln1.g')), db: this.gr(n('ln1.b')), N, d }),
        );
      }
      if (cfg.hasEmbedding) {
        bwd.push(k.embeddingBackward(gpu, { dx: this.dX, tokens, dwte: this.gr('wte'), dwpe: this.gr('wpe'), N, T, d, V }));
      } else if (sub) {
        bwd.push(k.subspaceEncode(gpu, { x: this.dX, u: sub.u, c: this.boundaryOut, N, d, k: sub.k }));
      }
      this.slots.push({ tokens, targets, input, output, loss, logits: logitsView, forward: fwd, infer, backward: bwd, pending: false });
    }

    // A constrained block keeps its residual writers (and their gradients) in span(U): projecting
    // the gradient first makes the update independent of the gradient's off-subspace part, which
    // is exactly the part a compressed boundary does not carry.
    const project = (buf: View) =>
      sub && constrained(cfg)
        ? residualWriters(cfg).flatMap((pname) => {
            const s = this.spec(pname);
            const w = this.gpu.view(buf.buffer, s.offset, s.size);
            return k.subspaceProject(gpu, { w, u: sub.u, tmp: sub.tmp, R: s.size / d, d, k: sub.k });
          })
        : [];
    this.projectGrads = project(this.grads);
    this.projectParams = project(this.params);
    this.stepDispatches = [
      ...this.projectGrads,
      k.reduceSum(gpu, { x: this.grads, out: this.sumsq, n: total, squares: true }),
      k.adamw(gpu, { p: this.params, g: this.grads, m: this.m, v: this.v, sumsq: this.sumsq, hyper: this.hyper, n: total }),
      ...this.projectParams,
    ];
  }

  private subspaceWritten = false;

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
    if (s.loss) return { loss: (await this.gpu.read(s.loss))[0] };
    return { x: await this.gpu.read(this.cfg.subspace ? this.boundaryOut : s.output) };
  }

  /** Validate every input first, then write them into the slot's (and the shared) buffers. */
  private load(s: Slot, input: ForwardInput, withTargets: boolean): void {
    const needTokens = this.cfg.hasEmbedding || !!this.cfg.subspace;
    const tokens = needTokens ? this.checkTokens('tokens', input.tokens) : undefined;
    const x = this.cfg.hasEmbedding ? undefined : this.checkBoundary('x', input.x);
    const targets = withTargets && this.cfg.hasHead ? this.checkTokens('targets', input.targets) : undefined;
    if (tokens) this.gpu.write(s.tokens, tokens);
    if (x) this.gpu.write(this.cfg.subspace ? this.boundaryIn : s.input, x);
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
    return this.gpu.read(this.cfg.subspace ? this.boundaryOut : s.output, rows * this.width);
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
    const logits = s.logits!;
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
    if (!this.cfg.hasHead) this.gpu.write(this.cfg.subspace ? this.boundaryIn : this.dX, this.checkBoundary('gradient', gradOut));
    this.gpu.run(s.backward);
    s.pending = false;
    if (this.cfg.hasEmbedding) return undefined;
    return this.gpu.read(this.cfg.subspace ? this.boundaryOut : this.dX);
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
    encoder.clearBuffer(this.grads.buffer);
    this.gpu.device.queue.submit([encoder.finish()]);
    await this.gpu.finish();
  }

  /** AdamW on the accumulated gradients (clipped to the global norm), then zero them. */
  step(lr = this.optimizer.lr): void {
    this.step_++;
    const words = k.adamwWords({ ...this.optimizer, lr, t: this.step_ }, this.layout.total, this.layout.decayEnd, k.adamwStride(this.layout.total));
    this.gpu.device.queue.writeBuffer(this.hyper, 0, words);
    const encoder = this.gpu.device.createCommandEncoder();
    this.gpu.encode(encoder, this.stepDispatches);
    encoder.clearBuffer(this.grads.buffer);
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
    encoder.clearBuffer(this.grads.buffer);
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
    const [params, m, v] = await Promise.all([this.readParams(), this.gpu.read(this.m), this.gpu.read(this.v)]);
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
    this.gpu.write(this.params, s.params);
    this.gpu.write(this.m, s.m);
    this.gpu.write(this.v, s.v);
    this.step_ = s.step;
  }

  /** Replace the parameters (replica averaging), keeping optimizer state. */
  writeParams(p: Float32Array): void {
    if (p.length !== this.layout.total) throw new Error(`params hold ${p.length} floats, this block needs ${this.layout.total}`);
    for (let i = 0; i < p.length; i++) if (!Number.isFinite(p[i])) throw new Error(`params[${i}] is ${p[i]}: parameters must be finite`);
    this.gpu.write(this.params, p);
  }

  readParams(): Promise<Float32Array> {
    return this.gpu.read(this.params);
  }

  readGrads(): Promise<Float32Array> {
    return this.gpu.read(this.grads);
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
      this.gpu.write(this.params, own);
      this.gpu.write(this.grads, grads);
      this.slot(0).pending = false;
    }
  }

  /** Bytes of GPU memory this block holds. */
  get gpuBytes(): number {
    return this.bufs.reduce((s, b) => s + b.size, 0);
  }

  destroy(): void {
    this.hyper.destroy();
    for (const b of this.bufs) b.destroy();
    this.bufs.length = 0;
  }
}
