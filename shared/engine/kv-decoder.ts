// Cached decoding for one block: a KV cache of `entries` requests, and a step that forwards up to
// `maxRows` positions at once, each reading its request's earlier positions' keys and values from
// the cache instead of recomputing them. A row is one position of one request: a request's new
// token is one row, its prefill (a whole window) is one row per position, all in the same step
// (each row's keys and values are appended before any row attends, so a later position of the same
// request sees the earlier ones). Prefills and decodes of different requests share steps.
//
// Steps are recorded once per row bucket (1, 2, 4, … maxRows) and encoded as they are; a step of n
// rows runs the smallest bucket ≥ n, its spare rows writing into a scratch entry nobody reads.
import type { MatmulTuner } from '../../kernels/autotune.js';
import type { Dispatch, Gpu, View } from '../../kernels/context.js';
import { matmul } from '../../kernels/matmul.js';
import * as k from '../../kernels/ops.js';
import type { SubspaceBuffers } from './block-buffers.js';
import { type BlockConfig, type Layout, boundaryWidth } from './model.js';

export interface KvDecoderOptions {
  /** Requests whose keys and values are kept at once. */
  entries: number;
  /** Most positions one step forwards (a whole window fits when it is ≥ seq). */
  maxRows: number;
}

/** One position of a request in a step: its cache entry, its position, and its input. */
export interface DecodeRow {
  entry: number;
  pos: number;
  /** The token at `pos` (a block with the embedding, or a subspace block: F's index). */
  token?: number;
  /** The boundary row from the previous stage (a block without the embedding): width floats. */
  x?: Float32Array;
}

/** What the decoder needs of its block: where its weights are. */
export interface DecoderBlock {
  gpu: Gpu;
  cfg: BlockConfig;
  layout: Layout;
  params: View;
  sub?: SubspaceBuffers;
  tuner: MatmulTuner;
}

/** Floats a step of R rows keeps besides the cache (allocRows). */
function rowFloats(cfg: BlockConfig, R: number): number {
  const d = cfg.dModel;
  const width = boundaryWidth(cfg);
  return R * (5 + 2 * width + 17 * d) + (cfg.hasHead ? R * cfg.vocab : 1);
}

/** Bytes of GPU memory a decoder of `o` holds for a block of `cfg`: its cache (one scratch entry included) and one step's rows. */
export function kvDecoderBytes(cfg: BlockConfig, o: KvDecoderOptions): number {
  return 4 * (2 * cfg.nLayer * (o.entries + 1) * cfg.seq * cfg.dModel + rowFloats(cfg, o.maxRows));
}

/** The most cache entries (up to `cap`) whose decoder fits in `budgetBytes`; 0 when not even one does. */
export function kvEntriesWithin(cfg: BlockConfig, budgetBytes: number, maxRows: number, cap: number): number {
  const fixed = kvDecoderBytes(cfg, { entries: 0, maxRows });
  const perEntry = kvDecoderBytes(cfg, { entries: 1, maxRows }) - fixed;
  return Math.max(0, Math.min(cap, Math.floor((budgetBytes - fixed) / perEntry)));
}

/**
 * Throws unless every row can go into a step of a block of `cfg` with `entries` cache entries: an
 * entry and position in range, each (entry, position) once, a token where the block needs one, and
 * a finite boundary row of the block's width where it takes one. A request's rows are checked
 * before they join others' in a step, so one request's bad row never fails the rest.
 */
export function checkDecodeRows(cfg: BlockConfig, entries: number, rows: readonly DecodeRow[]): void {
  const width = boundaryWidth(cfg);
  const needToken = cfg.hasEmbedding || !!cfg.subspace;
  const seen = new Set<number>();
  rows.forEach((row, i) => {
    if (!(Number.isInteger(row.entry) && row.entry >= 0 && row.entry < entries)) throw new Error(`entry must be an integer in [0, ${entries}), got ${row.entry}`);
    if (!(Number.isInteger(row.pos) && row.pos >= 0 && row.pos < cfg.seq)) throw new Error(`row ${i}: pos must be an integer in [0, seq=${cfg.seq}), got ${row.pos}`);
    const at = row.entry * cfg.seq + row.pos;
    if (seen.has(at)) throw new Error(`entry ${row.entry} position ${row.pos} appears twice in one step`);
    seen.add(at);
    const t = row.token;
    if (needToken && !(t !== undefined && Number.isInteger(t) && t >= 0 && t < cfg.vocab)) throw new Error(`row ${i}: token ${t} is not a token id in [0, ${cfg.vocab})`);
    if (cfg.hasEmbedding) return;
    if (row.x?.length !== width) throw new Error(`row ${i}: x must hold ${width} floats, got ${row.x?.length}`);
    for (let j = 0; j < width; j++) if (!Number.isFinite(row.x[j])) throw new Error(`row ${i}: x[${j}] is ${row.x[j]}: tensors must be finite`);
  });
}

const buckets = (maxRows: number) => [...new Set([...Array.from({ length: Math.floor(Math.log2(maxRows)) + 1 }, (_, i) => 2 ** i), maxRows])];

export class KvDecoder {
  readonly width: number;
  private readonly caches: { k: View; v: View }[];
  private readonly rows: ReturnType<KvDecoder['allocRows']>;
  private readonly steps = new Map<number, Dispatch[]>();
  private readonly buffers: GPUBuffer[] = [];

  constructor(
    private readonly b: DecoderBlock,
    readonly o: KvDecoderOptions,
  ) {
    const { cfg } = b;
    if (!(Number.isInteger(o.entries) && o.entries >= 1)) throw new Error(`KV cache entries must be a positive integer, got ${o.entries}`);
    if (!(Number.isInteger(o.maxRows) && o.maxRows >= 1)) throw new Error(`maxRows must be a positive integer, got ${o.maxRows}`);
    this.width = boundaryWidth(cfg);
    const cacheLen = (o.entries + 1) * cfg.seq * cfg.dModel;
    this.caches = Array.from({ length: cfg.nLayer }, () => ({ k: this.alloc(cacheLen, 'kv cache K'), v: this.alloc(cacheLen, 'kv cache V') }));
    this.rows = this.allocRows(o.maxRows);
    for (const R of buckets(o.maxRows)) this.steps.set(R, this.record(R));
  }

  private alloc(n: number, label: string): View {
    const buffer = this.b.gpu.buffer(n, label);
    this.buffers.push(buffer);
    return this.b.gpu.view(buffer, 0, n);
  }

  private allocRows(R: number) {
    const { dModel: d, vocab } = this.b.cfg;
    const a = (n: number, label: string) => this.alloc(n, label);
    return {
      entry: a(R, 'rows entry'),
      pos: a(R, 'rows pos'),
      tokens: a(R, 'rows tokens'),
      boundaryIn: a(R * this.width, 'rows boundary in'),
      boundaryOut: a(R * this.width, 'rows boundary out'),
      xs: [a(R * d, 'rows x even'), a(R * d, 'rows x odd')],
      ln: a(R * d, 'rows ln'),
      mean: a(R, 'rows mean'),
      rstd: a(R, 'rows rstd'),
      qkv: a(R * 3 * d, 'rows qkv'),
      att: a(R * d, 'rows att'),
      proj: a(R * d, 'rows proj'),
      x1: a(R * d, 'rows x1'),
      h: a(R * 4 * d, 'rows h'),
      g: a(R * 4 * d, 'rows gelu'),
      logits: a(this.b.cfg.hasHead ? R * vocab : 1, 'rows logits'),
    };
  }

  /** The first `n` values of a view (a bucket's rows). */
  private head = (v: View, n: number): View => this.b.gpu.view(v.buffer, v.offset, n);

  private p(name: string): View {
    const s = this.b.layout.params.find((x) => x.name === name);
    if (!s) throw new Error(`no parameter ${name}`);
    return this.b.gpu.view(this.b.params.buffer, s.offset, s.size);
  }

  /** The dispatches of one step of R rows: input, every layer (cached attention), and the output. */
  private record(R: number): Dispatch[] {
    const { gpu, cfg, sub, tuner } = this.b;
    const d = cfg.dModel;
    const r = this.rows;
    const v = (view: View, per: number) => this.head(view, R * per);
    const places = { entry: v(r.entry, 1), pos: v(r.pos, 1) };
    const table = sub ? { table: sub.f, tokens: v(r.tokens, 1) } : {};
    const mm = (a: View, w: string, c: View, N: number, K: number, bias?: string) =>
      matmul(gpu, { M: R, N, K, a, b: this.p(w), c, ...(bias && { bias: this.p(bias) }) }, tuner.pick);
    const out: Dispatch[] = [];
    const x0 = v(r.xs[0], d);
    if (cfg.hasEmbedding) out.push(k.embedRows(gpu, { wte: this.p('wte'), wpe: this.p('wpe'), tokens: v(r.tokens, 1), ...places, x: x0, R, d, frozen: sub?.f }));
    else if (sub) out.push(k.subspaceDecode(gpu, { c: v(r.boundaryIn, this.width), u: sub.u, x: x0, N: R, d, k: sub.k, ...table }));
    for (let l = 0; l < cfg.nLayer; l++) {
      const n = (s: string) => `h${(cfg.firstLayer ?? 0) + l}.${s}`;
      const [x, next] = [v(r.xs[l % 2], d), v(r.xs[(l + 1) % 2], d)];
      const [ln, qkv, att, proj, x1, h, g] = [v(r.ln, d), v(r.qkv, 3 * d), v(r.att, d), v(r.proj, d), v(r.x1, d), v(r.h, 4 * d), v(r.g, 4 * d)];
      const norm = (input: View, which: string) =>
        k.layerNormForward(gpu, { x: input, g: this.p(n(`${which}.g`)), b: this.p(n(`${which}.b`)), y: ln, mean: v(r.mean, 1), rstd: v(r.rstd, 1), N: R, d });
      out.push(
        norm(x, 'ln1'),
        mm(ln, n('attn.wqkv'), qkv, 3 * d, d, n('attn.bqkv')),
        k.kvAppend(gpu, { qkv, ...this.caches[l], ...places, R, d, seq: cfg.seq }),
        k.decodeAttention(gpu, { qkv, ...this.caches[l], ...places, out: att, R, H: cfg.nHead, d, seq: cfg.seq }),
        mm(att, n('attn.wo'), proj, d, d, n('attn.bo')),
        k.add(gpu, { a: x, b: proj, out: x1, n: R * d }),
        norm(x1, 'ln2'),
        mm(ln, n('mlp.w1'), h, 4 * d, d, n('mlp.b1')),
        k.gelu(gpu, { x: h, y: g, n: R * 4 * d }),
        mm(g, n('mlp.w2'), proj, d, 4 * d, n('mlp.b2')),
        k.add(gpu, { a: x1, b: proj, out: next, n: R * d }),
      );
    }
    const last = v(r.xs[cfg.nLayer % 2], d);
    if (cfg.hasHead) {
      out.push(k.layerNormForward(gpu, { x: last, g: this.p('lnf.g'), b: this.p('lnf.b'), y: v(r.ln, d), mean: v(r.mean, 1), rstd: v(r.rstd, 1), N: R, d }));
      out.push(mm(v(r.ln, d), 'head.w', v(r.logits, cfg.vocab), cfg.vocab, d));
    } else if (sub) {
      out.push(k.subspaceEncode(gpu, { x: last, u: sub.u, c: v(r.boundaryOut, this.width), N: R, d, k: sub.k, ...table }));
    }
    return out;
  }

  /**
   * Forward each row's position (at most maxRows; a request's rows at distinct positions) and return,
   * per row in order, the next-token logits (a block with the head: vocab floats) or the boundary
   * row for the next stage (width floats). Every input is checked before anything is written.
   */
  async step(rows: readonly DecodeRow[]): Promise<Float32Array> {
    const n = rows.length;
    if (n < 1 || n > this.o.maxRows) throw new Error(`a decode step takes 1 to ${this.o.maxRows} rows, got ${n}`);
    const R = [...this.steps.keys()].find((b) => b >= n)!;
    const inputs = this.inputs(rows, R);
    const { gpu, cfg } = this.b;
    const r = this.rows;
    gpu.write(r.entry, inputs.entry);
    gpu.write(r.pos, inputs.pos);
    gpu.write(r.tokens, inputs.tokens);
    if (inputs.x) gpu.write(cfg.subspace ? r.boundaryIn : r.xs[0], inputs.x);
    gpu.run(this.steps.get(R)!);
    if (cfg.hasHead) return gpu.read(r.logits, n * cfg.vocab);
    return gpu.read(cfg.subspace ? r.boundaryOut : r.xs[cfg.nLayer % 2], n * this.width);
  }

  /** The step's per-row arrays for bucket R (spare rows: the scratch entry, position 0, token 0, zeros). */
  private inputs(rows: readonly DecodeRow[], R: number): { entry: Uint32Array; pos: Uint32Array; tokens: Uint32Array; x?: Float32Array } {
    const { cfg } = this.b;
    checkDecodeRows(cfg, this.o.entries, rows);
    const entry = new Uint32Array(R).fill(this.o.entries);
    const pos = new Uint32Array(R);
    const tokens = new Uint32Array(R);
    const x = cfg.hasEmbedding ? undefined : new Float32Array(R * this.width);
    rows.forEach((row, i) => {
      [entry[i], pos[i], tokens[i]] = [row.entry, row.pos, row.token ?? 0];
      if (x) x.set(row.x!, i * this.width);
    });
    return { entry, pos, tokens, x };
  }

  /** GPU memory held (kvDecoderBytes says it before allocating). */
  get bytes(): number {
    return this.buffers.reduce((n, b) => n + b.size, 0);
  }

  destroy(): void {
    for (const b of this.buffers) b.destroy();
  }
}
