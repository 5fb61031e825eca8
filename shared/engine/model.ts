// The model spec: what a block of a GPT-style transformer holds, where each parameter lives in
// the block's one flat parameter buffer, how it is initialised, and what a step costs in FLOPs.
// Pure: no GPU, no I/O. The GPU runtime and the float64 reference both read this layout.
import { gaussian, rng } from '../base/random.js';
import { ALIGN_FLOATS, alignFloats } from '../../kernels/context.js';

export interface BlockConfig {
  vocab: number;
  dModel: number;
  nHead: number;
  /** Transformer layers held by this block. */
  nLayer: number;
  /** Global index of this block's first layer in the whole model (for seeded init). */
  firstLayer?: number;
  /** Layers in the whole model (scales the residual-projection init). */
  modelLayers?: number;
  seq: number;
  /** Sequences per microbatch. */
  batch: number;
  /** The block owns the token + position embedding (it is the first stage). */
  hasEmbedding: boolean;
  /** The block owns the final norm, the LM head and the loss (it is the last stage). */
  hasHead: boolean;
  /**
   * Subspace compression (ARCHITECTURE §4): the embedding adds a frozen table F, and every write
   * into the residual stream of a block that sends its output on is kept in span(U), so boundaries
   * travel as k coefficients. U and F come from `seed`.
   */
  subspace?: { k: number; seed: number };
}

/** Does this block keep its residual writes in span(U)? Only if its output crosses a boundary. */
export const constrained = (c: BlockConfig) => !!c.subspace && !c.hasHead;

/** Parameters that write into the residual stream: the ones a subspace block keeps in span(U). */
export function residualWriters(c: BlockConfig): string[] {
  const out = c.hasEmbedding ? ['wte', 'wpe'] : [];
  const first = c.firstLayer ?? 0;
  for (let l = first; l < first + c.nLayer; l++) out.push(`h${l}.attn.wo`, `h${l}.attn.bo`, `h${l}.mlp.w2`, `h${l}.mlp.b2`);
  return out;
}

export type Init = { kind: 'normal'; std: number } | { kind: 'const'; value: number };

export interface ParamSpec {
  name: string;
  shape: number[];
  size: number;
  /** Offset in floats inside the flat parameter buffer; a multiple of ALIGN_FLOATS. */
  offset: number;
  decay: boolean;
  init: Init;
}

export interface Layout {
  params: ParamSpec[];
  /** Floats in the flat buffer (with alignment padding). */
  total: number;
  /** Decayed parameters come first: [0, decayEnd) gets weight decay. */
  decayEnd: number;
  /** Real parameters, padding excluded. */
  count: number;
}

export function validateConfig(c: BlockConfig): void {
  const ints: (keyof BlockConfig)[] = ['vocab', 'dModel', 'nHead', 'nLayer', 'seq', 'batch'];
  for (const k of ints) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < (k === 'nLayer' ? 0 : 1)) {
      throw new Error(`block config: ${k} must be a positive integer, got ${String(v)}`);
    }
  }
  if (c.dModel % c.nHead !== 0) throw new Error(`block config: dModel ${c.dModel} is not divisible by nHead ${c.nHead}`);
  if (!c.hasEmbedding && !c.hasHead && c.nLayer === 0) throw new Error('block config: an empty block holds nothing');
  if (c.subspace && !(Number.isInteger(c.subspace.k) && c.subspace.k >= 1 && c.subspace.k <= c.dModel)) {
    throw new Error(`block config: subspace k must be an integer in [1, dModel=${c.dModel}], got ${c.subspace.k}`);
  }
}

export function layout(c: BlockConfig): Layout {
  validateConfig(c);
  const d = c.dModel;
  const std = 0.02;
  const projStd = std / Math.sqrt(2 * (c.modelLayers ?? c.nLayer));
  const first = c.firstLayer ?? 0;
  const specs: Omit<ParamSpec, 'offset'>[] = [];
  const p = (name: string, shape: number[], decay: boolean, init: Init) => specs.push({ name, shape, size: shape.reduce((a, b) => a * b, 1), decay, init });
  const zeros: Init = { kind: 'const', value: 0 };
  const ones: Init = { kind: 'const', value: 1 };
  if (c.hasEmbedding) {
    p('wte', [c.vocab, d], true, { kind: 'normal', std });
    p('wpe', [c.seq, d], true, { kind: 'normal', std });
  }
  for (let l = first; l < first + c.nLayer; l++) {
    p(`h${l}.ln1.g`, [d], false, ones);
    p(`h${l}.ln1.b`, [d], false, zeros);
    p(`h${l}.attn.wqkv`, [d, 3 * d], true, { kind: 'normal', std });
    p(`h${l}.attn.bqkv`, [3 * d], false, zeros);
    p(`h${l}.attn.wo`, [d, d], true, { kind: 'normal', std: projStd });
    p(`h${l}.attn.bo`, [d], false, zeros);
    p(`h${l}.ln2.g`, [d], false, ones);
    p(`h${l}.ln2.b`, [d], false, zeros);
    p(`h${l}.mlp.w1`, [d, 4 * d], true, { kind: 'normal', std });
    p(`h${l}.mlp.b1`, [4 * d], false, zeros);
    p(`h${l}.mlp.w2`, [4 * d, d], true, { kind: 'normal', std: projStd });
    p(`h${l}.mlp.b2`, [d], false, zeros);
  }
  if (c.hasHead) {
    p('lnf.g', [d], false, ones);
    p('lnf.b', [d], false, zeros);
    p('head.w', [d, c.vocab], true, { kind: 'normal', std });
  }
  const ordered = [...specs.filter((s) => s.decay), ...specs.filter((s) => !s.decay)];
  let offset = 0;
  let decayEnd = 0;
  const params: ParamSpec[] = [];
  for (const s of ordered) {
    params.push({ ...s, offset });
    offset += alignFloats(s.size);
    if (s.decay) decayEnd = offset;
  }
  return { params, total: Math.max(offset, ALIGN_FLOATS), decayEnd, count: specs.reduce((a, s) => a + s.size, 0) };
}

export function param(l: Layout, name: string): ParamSpec {
  const p = l.params.find((x) => x.name === name);
  if (!p) throw new Error(`no parameter named ${name}`);
  return p;
}

/** FNV-1a, to derive an independent seed for every named parameter. */
function hash(s: string, seed: number): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/**
 * Initial parameters, flat. Each parameter's values depend only on (seed, its name), so a
 * layer gets the same init whichever stage of whichever partition holds it.
 */
export function initParams(c: BlockConfig, seed: number): Float32Array {
  const l = layout(c);
  const out = new Float32Array(l.total);
  for (const p of l.params) {
    if (p.init.kind === 'const') {
      out.fill(p.init.value, p.offset, p.offset + p.size);
    } else {
      const g = gaussian(rng(hash(p.name, seed)));
      for (let i = 0; i < p.size; i++) out[p.offset + i] = g() * p.init.std;
    }
  }
  return out;
}

export interface StepFlops {
  forward: number;
  backward: number;
  total: number;
}

/** FLOPs of one microbatch through this block, from the spec alone (never from a peer's claim). */
export function blockFlops(c: BlockConfig): StepFlops {
  const n = c.batch * c.seq;
  const d = c.dModel;
  const perLayerMatmul = 2 * n * 12 * d * d;
  // Causal attention: QKᵀ and P·V over the lower triangle, T(T+1)/2 pairs per sequence.
  const perLayerAttn = 2 * 2 * c.batch * ((c.seq * (c.seq + 1)) / 2) * d;
  const head = c.hasHead ? 2 * n * d * c.vocab : 0;
  const forward = c.nLayer * (perLayerMatmul + perLayerAttn) + head;
  return { forward, backward: 2 * forward, total: 3 * forward };
}

/** Floats of activations saved per layer for backward, for the memory budget. */
export function activationFloatsPerLayer(c: BlockConfig): number {
  const n = c.batch * c.seq;
  const d = c.dModel;
  // x, ln1 out, qkv (3d), attention probs (H·T per token), attn out, x1, ln2 out, h (4d), gelu (4d),
  // plus 4 norm statistics.
  return n * (d + d + 3 * d + c.nHead * c.seq + d + d + d + 4 * d + 4 * d + 4);
}

/** Floats per token a block sends on: the subspace coefficients, or the whole residual stream. */
export const boundaryWidth = (c: BlockConfig) => c.subspace?.k ?? c.dModel;
