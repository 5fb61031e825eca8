// The same block as BlockRuntime in float64 on the CPU, built from the reference kernels: the
// ground truth for end-to-end tests. Same flat parameter layout, same AdamW, same API shape.
import * as r from '../../kernels/reference.js';
import { type BlockConfig, type Layout, constrained, layout, residualWriters } from './model.js';
import { frozenTable, orthonormalBasis } from './subspace.js';
import { type AdamW, DEFAULT_ADAMW } from './optimizer.js';

type Vec = Float64Array;

interface Saved {
  x: Vec;
  ln1: ReturnType<typeof r.layerNormForward>;
  qkv: Vec;
  probs: Vec;
  att: Vec;
  x1: Vec;
  ln2: ReturnType<typeof r.layerNormForward>;
  h: Vec;
  g: Vec;
}

export class ReferenceBlock {
  readonly layout: Layout;
  readonly params: Vec;
  readonly grads: Vec;
  private readonly m: Vec;
  private readonly v: Vec;
  private t = 0;
  private readonly sub?: { u: Vec; f: Vec; k: number };
  private saved: { tokens?: ArrayLike<number>; layers: Saved[]; out: Vec; lnf?: ReturnType<typeof r.layerNormForward>; logits?: Vec; dlogits?: Vec } | undefined;

  constructor(
    readonly cfg: BlockConfig,
    init: ArrayLike<number>,
    readonly optimizer: AdamW = DEFAULT_ADAMW,
  ) {
    this.layout = layout(cfg);
    this.params = r.f64(init);
    this.grads = new Float64Array(this.layout.total);
    this.m = new Float64Array(this.layout.total);
    this.v = new Float64Array(this.layout.total);
    if (cfg.subspace) {
      const { k, seed } = cfg.subspace;
      this.sub = { u: r.f64(orthonormalBasis(cfg.dModel, k, seed)), f: r.f64(frozenTable(cfg.vocab, cfg.dModel, seed)), k };
      this.project(this.params);
    }
  }

  /** Rows of every residual writer onto span(U), in place (a constrained subspace block only). */
  private project(buf: Vec): void {
    if (!this.sub || !constrained(this.cfg)) return;
    const d = this.cfg.dModel;
    for (const name of residualWriters(this.cfg)) {
      const s = this.layout.params.find((x) => x.name === name)!;
      buf.set(r.subspaceProject(buf.subarray(s.offset, s.offset + s.size), this.sub.u, s.size / d, d, this.sub.k), s.offset);
    }
  }

  /** The full residual stream at the block's output after the last forward (for tests). */
  get output(): Vec | undefined {
    return this.saved?.out;
  }

  /** Logits [batch·seq, vocab] of the last forward (a block with the head). */
  get logits(): Vec | undefined {
    return this.saved?.logits;
  }

  private p(name: string): Vec {
    const s = this.layout.params.find((x) => x.name === name)!;
    return this.params.subarray(s.offset, s.offset + s.size);
  }

  private accumulate(name: string, g: Vec): void {
    const s = this.layout.params.find((x) => x.name === name)!;
    for (let i = 0; i < s.size; i++) this.grads[s.offset + i] += g[i];
  }

  /** With the head and no targets, computes the logits only (inference; no backward can follow). */
  forward(input: { tokens?: ArrayLike<number>; x?: ArrayLike<number>; targets?: ArrayLike<number> }): { loss?: number; x?: Vec } {
    const c = this.cfg;
    const N = c.batch * c.seq;
    const d = c.dModel;
    const sub = this.sub;
    const table = sub && { table: sub.f, tokens: input.tokens! };
    let x: Vec;
    if (c.hasEmbedding) {
      x = r.embeddingForward(this.p('wte'), this.p('wpe'), input.tokens!, c.seq, d);
      if (table) x = r.add(x, r.subspaceDecode(new Float64Array(N * sub.k), sub.u, N, d, sub.k, table));
    } else {
      x = sub ? r.subspaceDecode(r.f64(input.x!), sub.u, N, d, sub.k, table) : r.f64(input.x!);
    }
    const layers: Saved[] = [];
    const first = c.firstLayer ?? 0;
    for (let l = first; l < first + c.nLayer; l++) {
      const n = (s: string) => this.p(`h${l}.${s}`);
      const ln1 = r.layerNormForward(x, n('ln1.g'), n('ln1.b'), N, d);
      const qkv = r.matmul(ln1.y, n('attn.wqkv'), N, 3 * d, d, false, false, n('attn.bqkv'));
      const { out: att, probs } = r.attentionForward(qkv, c.batch, c.seq, c.nHead, d);
      const x1 = r.add(x, r.matmul(att, n('attn.wo'), N, d, d, false, false, n('attn.bo')));
      const ln2 = r.layerNormForward(x1, n('ln2.g'), n('ln2.b'), N, d);
      const h = r.matmul(ln2.y, n('mlp.w1'), N, 4 * d, d, false, false, n('mlp.b1'));
      const g = r.gelu(h);
      const x2 = r.add(x1, r.matmul(g, n('mlp.w2'), N, d, 4 * d, false, false, n('mlp.b2')));
      layers.push({ x, ln1, qkv, probs, att, x1, ln2, h, g });
      x = x2;
    }
    this.saved = { tokens: input.tokens, layers, out: x };
    if (!c.hasHead) return { x: sub ? r.subspaceEncode(x, sub.u, N, d, sub.k, table) : x };
    const lnf = r.layerNormForward(x, this.p('lnf.g'), this.p('lnf.b'), N, d);
    const logits = r.matmul(lnf.y, this.p('head.w'), N, c.vocab, d);
    this.saved.logits = logits;
    if (!input.targets) return {};
    const { loss, dlogits } = r.crossEntropy(logits, input.targets, N, c.vocab);
    this.saved.lnf = lnf;
    this.saved.dlogits = dlogits;
    return { loss };
  }

  backward(gradOut?: ArrayLike<number>): Vec | undefined {
    const s = this.saved;
    if (!s) throw new Error('backward needs a forward first');
    const c = this.cfg;
    const N = c.batch * c.seq;
    const d = c.dModel;
    let dy: Vec;
    if (c.hasHead) {
      if (!s.dlogits) throw new Error('backward needs a forward with targets (a logits-only forward has no loss)');
      const { lnf, dlogits } = s as Required<typeof s>;
      this.accumulate('head.w', r.matmul(lnf.y, dlogits, d, c.vocab, N, true));
      const dxf = r.matmul(dlogits, this.p('head.w'), N, d, c.vocab, false, true);
      const b = r.layerNormBackward(dxf, s.out, this.p('lnf.g'), lnf.mean, lnf.rstd, N, d);
      this.accumulate('lnf.g', b.dg);
      this.accumulate('lnf.b', b.db);
      dy = b.dx;
    } else {
      dy = this.sub ? r.subspaceDecode(r.f64(gradOut!), this.sub.u, N, d, this.sub.k) : r.f64(gradOut!);
    }
    const first = c.firstLayer ?? 0;
    for (let i = s.layers.length - 1; i >= 0; i--) {
      const a = s.layers[i];
      const name = (x: string) => `h${first + i}.${x}`;
      const n = (x: string) => this.p(name(x));
      this.accumulate(name('mlp.w2'), r.matmul(a.g, dy, 4 * d, d, N, true));
      this.accumulate(name('mlp.b2'), r.colsum(dy, N, d));
      const dh = r.geluBackward(r.matmul(dy, n('mlp.w2'), N, 4 * d, d, false, true), a.h);
      this.accumulate(name('mlp.w1'), r.matmul(a.ln2.y, dh, d, 4 * d, N, true));
      this.accumulate(name('mlp.b1'), r.colsum(dh, N, 4 * d));
      const ln2 = r.layerNormBackward(r.matmul(dh, n('mlp.w1'), N, d, 4 * d, false, true), a.x1, n('ln2.g'), a.ln2.mean, a.ln2.rstd, N, d);
      this.accumulate(name('ln2.g'), ln2.dg);
      this.accumulate(name('ln2.b'), ln2.db);
      const dx1 = r.add(dy, ln2.dx);
      this.accumulate(name('attn.wo'), r.matmul(a.att, dx1, d, d, N, true));
      this.accumulate(name('attn.bo'), r.colsum(dx1, N, d));
      const datt = r.matmul(dx1, n('attn.wo'), N, d, d, false, true);
      const dqkv = r.attentionBackward(datt, a.qkv, a.probs, c.batch, c.seq, c.nHead, d);
      this.accumulate(name('attn.wqkv'), r.matmul(a.ln1.y, dqkv, d, 3 * d, N, true));
      this.accumulate(name('attn.bqkv'), r.colsum(dqkv, N, 3 * d));
      const ln1 = r.layerNormBackward(r.matmul(dqkv, n('attn.wqkv'), N, d, 3 * d, false, true), a.x, n('ln1.g'), a.ln1.mean, a.ln1.rstd, N, d);
      this.accumulate(name('ln1.g'), ln1.dg);
      this.accumulate(name('ln1.b'), ln1.db);
      dy = r.add(dx1, ln1.dx);
    }
    this.saved = undefined;
    if (!c.hasEmbedding) return this.sub ? r.subspaceEncode(dy, this.sub.u, N, d, this.sub.k) : dy;
    const e = r.embeddingBackward(dy, s.tokens!, c.vocab, c.seq, d);
    this.accumulate('wte', e.dwte);
    this.accumulate('wpe', e.dwpe);
    return undefined;
  }

  /** AdamW step, then zero the gradients. Returns the gradient norm before clipping. */
  step(): number {
    this.t++;
    this.project(this.grads);
    const norm = r.adamwStep(this.params, this.grads, this.m, this.v, this.t, this.optimizer, this.layout.decayEnd);
    this.project(this.params);
    this.grads.fill(0);
    return norm;
  }
}
