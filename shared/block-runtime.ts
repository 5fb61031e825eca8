// Runs one block of a GPT (some layers, optionally the embedding and/or the LM head) on a
// GPUDevice: forward, backward and an AdamW step, each recorded in one command encoder. Weights,
// gradients, optimizer moments and activations stay on the GPU; only the boundary tensor (or the
// loss) is read back. Same code in Node (Dawn), a browser tab and Electron.
import type { Dispatch, Gpu, View } from '../kernels/context.js';
import { MatmulTuner } from '../kernels/autotune.js';
import { type MatmulArgs, matmul } from '../kernels/matmul.js';
import * as k from '../kernels/ops.js';
import { type BlockConfig, type Layout, initParams, layout } from './model.js';
import type { TrainState } from './checkpoint.js';
import { type AdamW, DEFAULT_ADAMW } from './optimizer.js';

export interface BlockRuntimeOptions {
  /** Initial flat parameters (layout(cfg).total floats); otherwise seeded init. */
  init?: Float32Array;
  seed?: number;
  optimizer?: AdamW;
  /** Measure matmul variants for this block's shapes before building (slower start, faster steps). */
  autotune?: boolean;
  onTuneProgress?: (done: number, total: number) => void;
  tuner?: MatmulTuner;
}

export interface ForwardInput {
  /** Token ids [batch·seq]: the embedding's input (first stage) and, for the head, nothing else. */
  tokens?: ArrayLike<number>;
  /** Boundary activation [batch·seq·dModel] from the previous stage. */
  x?: Float32Array;
  /** Next-token targets [batch·seq], needed by a block with the head. */
  targets?: ArrayLike<number>;
}

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

export class BlockRuntime {
  readonly layout: Layout;
  readonly N: number;
  private step_ = 0;
  private forwardDispatches: Dispatch[] = [];
  private backwardDispatches: Dispatch[] = [];
  private stepDispatches: Dispatch[] = [];
  private readonly bufs: GPUBuffer[] = [];
  private allocated = 0;
  private params!: View;
  private grads!: View;
  private m!: View;
  private v!: View;
  private sumsq!: View;
  private hyper!: GPUBuffer;
  private tokens!: View;
  private targets!: View;
  private input!: View; // layer 0 input (x from the previous stage)
  private output!: View; // last layer output
  private dX!: View; // gradient w.r.t. the current layer's output, updated in place down the layers
  private loss!: View;
  private forwardDone = false;

  private constructor(
    readonly gpu: Gpu,
    readonly cfg: BlockConfig,
    readonly optimizer: AdamW,
    private readonly tuner: MatmulTuner,
  ) {
    this.layout = layout(cfg);
    this.N = cfg.batch * cfg.seq;
  }

  static async create(gpu: Gpu, cfg: BlockConfig, opts: BlockRuntimeOptions = {}): Promise<BlockRuntime> {
    const rt = new BlockRuntime(gpu, cfg, opts.optimizer ?? DEFAULT_ADAMW, opts.tuner ?? new MatmulTuner());
    const init = opts.init ?? initParams(cfg, opts.seed ?? 1);
    if (init.length !== rt.layout.total) throw new Error(`init holds ${init.length} floats, the layout needs ${rt.layout.total}`);
    rt.build();
    gpu.write(rt.params, init);
    if (opts.autotune && rt.tuner.pending.size) {
      await rt.tuner.tunePending(gpu, opts.onTuneProgress);
      rt.allocated = 0;
      rt.build();
    }
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

  private p(name: string): View {
    const s = this.layout.params.find((x) => x.name === name);
    if (!s) throw new Error(`no parameter ${name}`);
    return this.gpu.view(this.params.buffer, s.offset, s.size);
  }

  private gr(name: string): View {
    const s = this.layout.params.find((x) => x.name === name)!;
    return this.gpu.view(this.grads.buffer, s.offset, s.size);
  }

  private mm(a: MatmulArgs): Dispatch {
    return matmul(this.gpu, a, this.tuner.pick);
  }

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
    this.tokens = this.alloc(N, 'tokens');
    this.targets = this.alloc(N, 'targets');

    const acts: LayerActs[] = [];
    let x = this.alloc(N * d, 'x0');
    this.input = x;
    for (let l = 0; l < cfg.nLayer; l++) {
      const a: LayerActs = {
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
      };
      acts.push(a);
      x = this.alloc(N * d, `x${l + 1}`);
    }
    this.output = x;
    // Scratch shared by all layers: transient in forward, or one layer at a time in backward.
    const proj = this.alloc(N * d, 'proj');
    const d4a = this.alloc(N * 4 * d, 'dgelu');
    const d4b = this.alloc(N * 4 * d, 'dh');
    const dN = this.alloc(N * d, 'dnorm');
    const dx1 = this.alloc(N * d, 'dx1');
    const datt = this.alloc(N * d, 'datt');
    const dS = this.alloc(B * H * T * T, 'dscores');
    const dqkv = this.alloc(N * 3 * d, 'dqkv');
    this.dX = this.alloc(N * d, 'dX');

    const fwd: Dispatch[] = [];
    const bwd: Dispatch[] = [];
    if (cfg.hasEmbedding) {
      fwd.push(k.embeddingForward(gpu, { wte: this.p('wte'), wpe: this.p('wpe'), tokens: this.tokens, x: this.input, N, T, d }));
    }
    const first = cfg.firstLayer ?? 0;
    acts.forEach((a, l) => {
      const n = (s: string) => `h${first + l}.${s}`;
      const out = l + 1 < acts.length ? acts[l + 1].x : this.output;
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

    if (cfg.hasHead) {
      const xf = this.alloc(N * d, 'lnf');
      const meanf = this.alloc(N, 'meanf');
      const rstdf = this.alloc(N, 'rstdf');
      const logits = this.alloc(N * V, 'logits');
      const losses = this.alloc(N, 'losses');
      this.loss = this.alloc(1, 'loss');
      fwd.push(
        k.layerNormForward(gpu, { x: this.output, g: this.p('lnf.g'), b: this.p('lnf.b'), y: xf, mean: meanf, rstd: rstdf, N, d }),
        this.mm({ M: N, N: V, K: d, a: xf, b: this.p('head.w'), c: logits }),
        k.crossEntropy(gpu, { logits, targets: this.targets, losses, N, V }),
        k.reduceSum(gpu, { x: losses, out: this.loss, n: N, scale: 1 / N }),
      );
      // logits now hold dloss/dlogits.
      bwd.push(
        this.mm({ M: d, N: V, K: N, a: xf, b: logits, c: this.gr('head.w'), transA: true, accumulate: true }),
        this.mm({ M: N, N: d, K: V, a: logits, b: this.p('head.w'), c: dN, transB: true }),
        k.layerNormBackward(gpu, { dy: dN, x: this.output, g: this.p('lnf.g'), mean: meanf, rstd: rstdf, dx: this.dX, N, d }),
        k.layerNormParamGrads(gpu, { dy: dN, x: this.output, mean: meanf, rstd: rstdf, dg: this.gr('lnf.g'), db: this.gr('lnf.b'), N, d }),
      );
    }

    for (let l = acts.length - 1; l >= 0; l--) {
      const a = acts[l];
      const n = (s: string) => `h${first + l}.${s}`;
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
      bwd.push(k.embeddingBackward(gpu, { dx: this.dX, tokens: this.tokens, dwte: this.gr('wte'), dwpe: this.gr('wpe'), N, T, d, V }));
    }
    this.forwardDispatches = fwd;
    this.backwardDispatches = bwd;
    this.stepDispatches = [
      k.reduceSum(gpu, { x: this.grads, out: this.sumsq, n: total, squares: true }),
      k.adamw(gpu, { p: this.params, g: this.grads, m: this.m, v: this.v, sumsq: this.sumsq, hyper: this.hyper, n: total }),
    ];
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

  private checkActivation(name: string, x: Float32Array | undefined): Float32Array {
    const n = this.N * this.cfg.dModel;
    if (!x) throw new Error(`${name} is required by a block without the embedding`);
    if (x.length !== n) throw new Error(`${name}: expected ${n} values (${this.N} tokens × ${this.cfg.dModel}), got ${x.length}`);
    for (let i = 0; i < n; i++) if (!Number.isFinite(x[i])) throw new Error(`${name}[${i}] is ${x[i]}: tensors must be finite`);
    return x;
  }

  /**
   * Forward one microbatch. Returns the mean loss for a block with the head, else the boundary
   * activation to send to the next stage. Inputs are validated before anything is written.
   */
  async forward(input: ForwardInput): Promise<{ loss?: number; x?: Float32Array }> {
    const tokens = this.cfg.hasEmbedding ? this.checkTokens('tokens', input.tokens) : undefined;
    const x = this.cfg.hasEmbedding ? undefined : this.checkActivation('x', input.x);
    const targets = this.cfg.hasHead ? this.checkTokens('targets', input.targets) : undefined;
    if (tokens) this.gpu.write(this.tokens, tokens);
    if (x) this.gpu.write(this.input, x);
    if (targets) this.gpu.write(this.targets, targets);
    this.gpu.run(this.forwardDispatches);
    this.forwardDone = true;
    if (this.cfg.hasHead) return { loss: (await this.gpu.read(this.loss))[0] };
    return { x: await this.gpu.read(this.output) };
  }

  /**
   * Backward the microbatch of the last forward, accumulating weight gradients. A block without
   * the head takes the gradient of its output; a block without the embedding returns the
   * gradient of its input for the previous stage.
   */
  async backward(gradOut?: Float32Array): Promise<Float32Array | undefined> {
    if (!this.forwardDone) throw new Error('backward needs a forward first');
    if (!this.cfg.hasHead) this.gpu.write(this.dX, this.checkActivation('gradient', gradOut));
    this.gpu.run(this.backwardDispatches);
    this.forwardDone = false;
    if (this.cfg.hasEmbedding) return undefined;
    return this.gpu.read(this.dX);
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

  /** Everything needed to resume training: the step count, parameters and Adam moments. */
  async saveState(): Promise<TrainState> {
    const [params, m, v] = await Promise.all([this.readParams(), this.gpu.read(this.m), this.gpu.read(this.v)]);
    return { step: this.step_, params, m, v };
  }

  loadState(s: TrainState): void {
    const n = this.layout.total;
    for (const [name, a] of [['params', s.params], ['m', s.m], ['v', s.v]] as const) {
      if (a.length !== n) throw new Error(`state ${name} holds ${a.length} floats, this block needs ${n}`);
    }
    if (!Number.isInteger(s.step) || s.step < 0) throw new Error(`state step ${s.step} is not a step count`);
    this.gpu.write(this.params, s.params);
    this.gpu.write(this.m, s.m);
    this.gpu.write(this.v, s.v);
    this.step_ = s.step;
  }

  readParams(): Promise<Float32Array> {
    return this.gpu.read(this.params);
  }

  readGrads(): Promise<Float32Array> {
    return this.gpu.read(this.grads);
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
