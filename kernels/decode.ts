// The kernels of cached decoding: each request in flight forwards one new position per token, its
// attention reading the keys and values its earlier positions left in a KV cache instead of
// recomputing them. A cache holds `entries` requests × seq positions × d values per layer (K and V
// apart); a row of a decode step names its entry and position, so requests of any lengths share
// one batched step (continuous batching).
import type { Dispatch, Gpu, View } from './context.js';
import { f32, flatKernel, input, need, output, u32 } from './wgsl.js';

/** Where each row of a step goes: its cache entry and its position (u32 each, one per row). */
export interface RowPlaces {
  entry: View;
  pos: View;
}

/** x[r] = wte[tok[r]] + wpe[pos[r]] (+ F[tok[r]] for a subspace model): the embedding of one position per row. */
export function embedRows(gpu: Gpu, a: RowPlaces & { wte: View; wpe: View; tokens: View; x: View; R: number; d: number; frozen?: View }): Dispatch {
  const { R, d } = a;
  need('embed rows', a.x, R * d);
  return flatKernel(gpu, 'embed rows', R * d, {
    buffers: [input('wte', a.wte), input('wpe', a.wpe), input('tok', a.tokens, 'u32'), input('pos', a.pos, 'u32'), input('F', a.frozen ?? a.wte), output('x', a.x)],
    uniform: { d: u32(d), hasFrozen: u32(a.frozen ? 1 : 0) },
    body: `
  let r = idx / u.d;
  let j = idx % u.d;
  let e = tok[r] * u.d + j;
  x[idx] = wte[e] + wpe[pos[r] * u.d + j] + select(0.0, F[e], u.hasFrozen != 0u);`,
  });
}

/** K[entry[r], pos[r]] = k of qkv row r, and V likewise: the new positions' keys and values, into the cache. */
export function kvAppend(gpu: Gpu, a: RowPlaces & { qkv: View; k: View; v: View; R: number; d: number; seq: number }): Dispatch {
  const { R, d } = a;
  need('kv append', a.qkv, R * 3 * d);
  return flatKernel(gpu, 'kv append', R * d, {
    buffers: [input('qkv', a.qkv), input('entry', a.entry, 'u32'), input('pos', a.pos, 'u32'), output('K', a.k), output('V', a.v)],
    uniform: { d: u32(d), seq: u32(a.seq) },
    body: `
  let r = idx / u.d;
  let j = idx % u.d;
  let at = (entry[r] * u.seq + pos[r]) * u.d + j;
  K[at] = qkv[r * 3u * u.d + u.d + j];
  V[at] = qkv[r * 3u * u.d + 2u * u.d + j];`,
  });
}

/**
 * out[r] = softmax(q_r·Kᵀ/√hd over positions 0..pos[r] of its entry)·V, per head: causal attention
 * of one new position against its cached past. One invocation per (row, head) in a single pass
 * (the running max and sum of an online softmax), the head's output accumulated in registers.
 */
export function decodeAttention(gpu: Gpu, a: RowPlaces & { qkv: View; k: View; v: View; out: View; R: number; H: number; d: number; seq: number }): Dispatch {
  const { R, H, d } = a;
  if (d % H !== 0) throw new Error(`decode attention: d ${d} not divisible by heads ${H}`);
  const hd = d / H;
  need('decode attention', a.out, R * d);
  return flatKernel(gpu, 'decode attention', R * H, {
    buffers: [input('qkv', a.qkv), input('K', a.k), input('V', a.v), input('entry', a.entry, 'u32'), input('pos', a.pos, 'u32'), output('out', a.out)],
    uniform: { H: u32(H), d: u32(d), seq: u32(a.seq), scale: f32(1 / Math.sqrt(hd)) },
    body: `
  let r = idx / u.H;
  let h = idx % u.H;
  let q = r * 3u * u.d + h * ${hd}u;
  let base = entry[r] * u.seq * u.d + h * ${hd}u;
  var acc: array<f32, ${hd}>;
  var mx = -3.4e38;
  var sum = 0.0;
  for (var j = 0u; j <= pos[r]; j++) {
    let kj = base + j * u.d;
    var s = 0.0;
    for (var e = 0u; e < ${hd}u; e++) { s += qkv[q + e] * K[kj + e]; }
    s *= u.scale;
    let m = max(mx, s);
    let keep = exp(mx - m);
    let p = exp(s - m);
    sum = sum * keep + p;
    for (var e = 0u; e < ${hd}u; e++) { acc[e] = acc[e] * keep + p * V[kj + e]; }
    mx = m;
  }
  let o = r * u.d + h * ${hd}u;
  for (var e = 0u; e < ${hd}u; e++) { out[o + e] = acc[e] / sum; }`,
  });
}
