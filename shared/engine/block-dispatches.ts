// The dispatches of one block, recorded once per build and encoded every step: a slot's forward
// (and its forward-only variant for inference), its backward, and the optimizer step. The math is
// GPT-2's: x1 = x + attn(ln1(x))·Wo + bo, x2 = x1 + gelu(ln2(x1)·W1 + b1)·W2 + b2; the backward
// walks it in reverse, accumulating weight gradients and carrying dX down the layers in place.
import type { Dispatch, Gpu, View } from '../../kernels/context.js';
import type { MatmulTuner } from '../../kernels/autotune.js';
import { type MatmulArgs, matmul } from '../../kernels/matmul.js';
import * as k from '../../kernels/ops.js';
import type { BlockBuffers, HeadActs, LayerActs, SlotBuffers } from './block-buffers.js';
import { type BlockConfig, type Layout, constrained, residualWriters } from './model.js';

export interface SlotDispatches {
  forward: Dispatch[];
  /** Forward-only (inference): the forward without the loss, which would overwrite the logits. */
  infer: Dispatch[];
  backward: Dispatch[];
}

export class DispatchRecorder {
  private readonly N: number;
  private readonly d: number;
  private readonly attn: k.AttnDims;

  constructor(
    private readonly gpu: Gpu,
    private readonly cfg: BlockConfig,
    private readonly layout: Layout,
    private readonly b: BlockBuffers,
    private readonly tuner: MatmulTuner,
  ) {
    this.N = cfg.batch * cfg.seq;
    this.d = cfg.dModel;
    this.attn = { B: cfg.batch, T: cfg.seq, H: cfg.nHead, d: cfg.dModel };
  }

  private view(buf: View, name: string): View {
    const s = this.layout.params.find((x) => x.name === name);
    if (!s) throw new Error(`no parameter ${name}`);
    return this.gpu.view(buf.buffer, s.offset, s.size);
  }

  /** A parameter, and its gradient. */
  private p = (name: string) => this.view(this.b.shared.params, name);
  private gr = (name: string) => this.view(this.b.shared.grads, name);

  private mm(a: MatmulArgs): Dispatch {
    return matmul(this.gpu, a, this.tuner.pick);
  }

  /** Dense boundaries are written straight into the slot's input and read straight from its output. */
  slot(s: SlotBuffers): SlotDispatches {
    const { gpu, cfg, N, d } = this;
    const { sub, shared } = this.b;
    const table = sub ? { table: sub.f, tokens: s.tokens } : {};
    const forward: Dispatch[] = [];
    const backward: Dispatch[] = [];
    if (cfg.hasEmbedding) {
      forward.push(k.embeddingForward(gpu, { wte: this.p('wte'), wpe: this.p('wpe'), tokens: s.tokens, x: s.input, N, T: cfg.seq, d, frozen: sub?.f }));
    } else if (sub) {
      forward.push(k.subspaceDecode(gpu, { c: shared.boundaryIn, u: sub.u, x: s.input, N, d, k: sub.k, ...table }));
    }
    s.layers.forEach((a, l) => forward.push(...this.layerForward(l, a, s.layers[l + 1]?.x ?? s.output)));
    let infer = forward;
    if (s.head) {
      forward.push(...this.headForward(s.output, s.head));
      infer = forward.slice();
      forward.push(k.crossEntropy(gpu, { logits: s.head.logits, targets: s.targets, losses: s.head.losses, N, V: cfg.vocab }));
      forward.push(k.reduceSum(gpu, { x: s.head.losses, out: s.head.loss, n: N, scale: 1 / N }));
      backward.push(...this.headBackward(s.output, s.head));
    } else if (sub) {
      forward.push(k.subspaceEncode(gpu, { x: s.output, u: sub.u, c: shared.boundaryOut, N, d, k: sub.k, ...table }));
      backward.push(k.subspaceDecode(gpu, { c: shared.boundaryIn, u: sub.u, x: shared.dX, N, d, k: sub.k }));
    }
    for (let l = s.layers.length - 1; l >= 0; l--) backward.push(...this.layerBackward(l, s.layers[l]));
    if (cfg.hasEmbedding) {
      backward.push(k.embeddingBackward(gpu, { dx: shared.dX, tokens: s.tokens, dwte: this.gr('wte'), dwpe: this.gr('wpe'), N, T: cfg.seq, d, V: cfg.vocab }));
    } else if (sub) {
      backward.push(k.subspaceEncode(gpu, { x: shared.dX, u: sub.u, c: shared.boundaryOut, N, d, k: sub.k }));
    }
    return { forward, infer, backward };
  }

  /** The parameter names of layer `l` of this block: h{global index}.{name}. */
  private layerParam(l: number): (s: string) => string {
    return (s) => `h${(this.cfg.firstLayer ?? 0) + l}.${s}`;
  }

  private layerForward(l: number, a: LayerActs, out: View): Dispatch[] {
    const { gpu, N, d } = this;
    const n = this.layerParam(l);
    const proj = this.b.scratch.proj;
    return [
      k.layerNormForward(gpu, { x: a.x, g: this.p(n('ln1.g')), b: this.p(n('ln1.b')), y: a.ln1, mean: a.mean1, rstd: a.rstd1, N, d }),
      this.mm({ M: N, N: 3 * d, K: d, a: a.ln1, b: this.p(n('attn.wqkv')), bias: this.p(n('attn.bqkv')), c: a.qkv }),
      ...k.attentionForward(gpu, { ...this.attn, qkv: a.qkv, probs: a.probs, out: a.att }, this.tuner.pick),
      this.mm({ M: N, N: d, K: d, a: a.att, b: this.p(n('attn.wo')), bias: this.p(n('attn.bo')), c: proj }),
      k.add(gpu, { a: a.x, b: proj, out: a.x1, n: N * d }),
      k.layerNormForward(gpu, { x: a.x1, g: this.p(n('ln2.g')), b: this.p(n('ln2.b')), y: a.ln2, mean: a.mean2, rstd: a.rstd2, N, d }),
      this.mm({ M: N, N: 4 * d, K: d, a: a.ln2, b: this.p(n('mlp.w1')), bias: this.p(n('mlp.b1')), c: a.h }),
      k.gelu(gpu, { x: a.h, y: a.g, n: N * 4 * d }),
      this.mm({ M: N, N: d, K: 4 * d, a: a.g, b: this.p(n('mlp.w2')), bias: this.p(n('mlp.b2')), c: proj }),
      k.add(gpu, { a: a.x1, b: proj, out, n: N * d }),
    ];
  }

  /** Reads dX (the gradient of the layer's output) and leaves the gradient of its input there. */
  private layerBackward(l: number, a: LayerActs): Dispatch[] {
    const { gpu, N, d } = this;
    const n = this.layerParam(l);
    const dy = this.b.shared.dX;
    const { dgelu, dh, dnorm, dx1, datt, dscores, dqkv } = this.b.scratch;
    return [
      // MLP: x2 = x1 + gelu(ln2·W1 + b1)·W2 + b2
      this.mm({ M: 4 * d, N: d, K: N, a: a.g, b: dy, c: this.gr(n('mlp.w2')), transA: true, accumulate: true }),
      k.colsum(gpu, { dy, db: this.gr(n('mlp.b2')), N, C: d }),
      this.mm({ M: N, N: 4 * d, K: d, a: dy, b: this.p(n('mlp.w2')), c: dgelu, transB: true }),
      k.geluBackward(gpu, { dy: dgelu, x: a.h, dx: dh, n: N * 4 * d }),
      this.mm({ M: d, N: 4 * d, K: N, a: a.ln2, b: dh, c: this.gr(n('mlp.w1')), transA: true, accumulate: true }),
      k.colsum(gpu, { dy: dh, db: this.gr(n('mlp.b1')), N, C: 4 * d }),
      this.mm({ M: N, N: d, K: 4 * d, a: dh, b: this.p(n('mlp.w1')), c: dnorm, transB: true }),
      k.layerNormBackward(gpu, { dy: dnorm, x: a.x1, g: this.p(n('ln2.g')), mean: a.mean2, rstd: a.rstd2, residual: dy, dx: dx1, N, d }),
      k.layerNormParamGrads(gpu, { dy: dnorm, x: a.x1, mean: a.mean2, rstd: a.rstd2, dg: this.gr(n('ln2.g')), db: this.gr(n('ln2.b')), N, d }),
      // Attention: x1 = x + attn(ln1)·Wo + bo
      this.mm({ M: d, N: d, K: N, a: a.att, b: dx1, c: this.gr(n('attn.wo')), transA: true, accumulate: true }),
      k.colsum(gpu, { dy: dx1, db: this.gr(n('attn.bo')), N, C: d }),
      this.mm({ M: N, N: d, K: d, a: dx1, b: this.p(n('attn.wo')), c: datt, transB: true }),
      ...k.attentionBackward(gpu, { ...this.attn, qkv: a.qkv, probs: a.probs, dout: datt, dscores, dqkv }, this.tuner.pick),
      this.mm({ M: d, N: 3 * d, K: N, a: a.ln1, b: dqkv, c: this.gr(n('attn.wqkv')), transA: true, accumulate: true }),
      k.colsum(gpu, { dy: dqkv, db: this.gr(n('attn.bqkv')), N, C: 3 * d }),
      this.mm({ M: N, N: d, K: 3 * d, a: dqkv, b: this.p(n('attn.wqkv')), c: dnorm, transB: true }),
      k.layerNormBackward(gpu, { dy: dnorm, x: a.x, g: this.p(n('ln1.g')), mean: a.mean1, rstd: a.rstd1, residual: dx1, dx: dy, N, d }),
      k.layerNormParamGrads(gpu, { dy: dnorm, x: a.x, mean: a.mean1, rstd: a.rstd1, dg: this.gr(n('ln1.g')), db: this.gr(n('ln1.b')), N, d }),
    ];
  }

  private headForward(x: View, h: HeadActs): Dispatch[] {
    const { gpu, N, d } = this;
    return [
      k.layerNormForward(gpu, { x, g: this.p('lnf.g'), b: this.p('lnf.b'), y: h.xf, mean: h.meanf, rstd: h.rstdf, N, d }),
      this.mm({ M: N, N: this.cfg.vocab, K: d, a: h.xf, b: this.p('head.w'), c: h.logits }),
    ];
  }

  /** After the loss the logits hold dloss/dlogits. */
  private headBackward(x: View, h: HeadActs): Dispatch[] {
    const { gpu, N, d } = this;
    const V = this.cfg.vocab;
    const dN = this.b.scratch.dnorm;
    return [
      this.mm({ M: d, N: V, K: N, a: h.xf, b: h.logits, c: this.gr('head.w'), transA: true, accumulate: true }),
      this.mm({ M: N, N: d, K: V, a: h.logits, b: this.p('head.w'), c: dN, transB: true }),
      k.layerNormBackward(gpu, { dy: dN, x, g: this.p('lnf.g'), mean: h.meanf, rstd: h.rstdf, dx: this.b.shared.dX, N, d }),
      k.layerNormParamGrads(gpu, { dy: dN, x, mean: h.meanf, rstd: h.rstdf, dg: this.gr('lnf.g'), db: this.gr('lnf.b'), N, d }),
    ];
  }

  /**
   * A constrained block keeps its residual writers (and their gradients) in span(U): projecting
   * the gradient first makes the update independent of the gradient's off-subspace part, which
   * is exactly the part a compressed boundary does not carry.
   */
  project(buf: View): Dispatch[] {
    const sub = this.b.sub;
    if (!sub || !constrained(this.cfg)) return [];
    return residualWriters(this.cfg).flatMap((name) => {
      const w = this.view(buf, name);
      return k.subspaceProject(this.gpu, { w, u: sub.u, tmp: sub.tmp, R: w.length / this.d, d: this.d, k: sub.k });
    });
  }

  /** AdamW on the gradients clipped to their global norm, inside the subspace for a constrained block. */
  step(hyper: GPUBuffer, projectGrads: Dispatch[], projectParams: Dispatch[]): Dispatch[] {
    const { params, grads, m, v, sumsq } = this.b.shared;
    const n = this.layout.total;
    return [
      ...projectGrads,
      k.reduceSum(this.gpu, { x: grads, out: sumsq, n, squares: true }),
      k.adamw(this.gpu, { p: params, g: grads, m, v, sumsq, hyper, n }),
      ...projectParams,
    ];
  }
}
