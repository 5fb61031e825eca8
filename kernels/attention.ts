// Causal multi-head self-attention as batched matmuls straight on the packed qkv tensor, with a
// row softmax (and its gradient) in between: no per-head copies of q, k or v are ever made.
import type { Dispatch, Gpu, View } from './context.js';
import { type Batch, type MatmulShape, type MatmulVariant, matmul } from './matmul.js';
import { f32, flatKernel, input, need, output, u32 } from './wgsl.js';

export interface AttnDims {
  B: number;
  T: number;
  H: number;
  d: number;
}

type Pick = (s: MatmulShape) => MatmulVariant;

/**
 * Per-head products as batched matmuls straight on the packed qkv[B·T, 3d] (q | k | v, head h in
 * columns h·hd..): matrix z = (b, h) of X starts at b·T·ld + h·hd + part·d.
 */
function heads(a: AttnDims, ld: number, part: number): { base: number; strides: [number, number] } {
  const hd = a.d / a.H;
  return { base: part * a.d, strides: [a.T * ld, hd] };
}

function attnBatch(a: AttnDims, A: { strides: [number, number] }, B: { strides: [number, number] }, C: { strides: [number, number] }): Batch {
  return { outer: a.B, inner: a.H, a: A.strides, b: B.strides, c: C.strides };
}

const scoresOf = (a: AttnDims) => ({ base: 0, strides: [a.H * a.T * a.T, a.T * a.T] as [number, number] });

function checkAttn(label: string, a: AttnDims & { qkv: View; probs: View }): void {
  if (a.d % a.H !== 0) throw new Error(`${label}: d ${a.d} not divisible by heads ${a.H}`);
  need(label, a.qkv, a.B * a.T * 3 * a.d);
  need(label, a.probs, a.B * a.H * a.T * a.T);
}

/** One invocation per row of scores, which are scaled by 1/√hd inside the softmax. */
const rows = (a: AttnDims) => a.B * a.H * a.T;
const rowUniform = (a: AttnDims) => ({ T: u32(a.T), scale: f32(1 / Math.sqrt(a.d / a.H)) });

/** Row-wise causal softmax of scores·scale in place (stable: max subtracted), zero above the diagonal. */
function causalSoftmax(gpu: Gpu, a: AttnDims & { probs: View }): Dispatch {
  return flatKernel(gpu, 'causal softmax', rows(a), {
    buffers: [output('P', a.probs)],
    uniform: rowUniform(a),
    body: `
  let i = idx % u.T;
  let row = idx * u.T;
  var mx = -3.4e38;
  for (var j = 0u; j <= i; j++) { mx = max(mx, P[row + j] * u.scale); }
  var sum = 0.0;
  for (var j = 0u; j <= i; j++) { let p = exp(P[row + j] * u.scale - mx); P[row + j] = p; sum += p; }
  let inv = 1.0 / sum;
  for (var j = 0u; j <= i; j++) { P[row + j] *= inv; }
  for (var j = i + 1u; j < u.T; j++) { P[row + j] = 0.0; }`,
  });
}

/** dS = P·(dP − Σ_j P·dP)·scale in place over dP: the softmax backward. */
function causalSoftmaxBackward(gpu: Gpu, a: AttnDims & { probs: View; dscores: View }): Dispatch {
  return flatKernel(gpu, 'causal softmax bwd', rows(a), {
    buffers: [input('P', a.probs), output('dS', a.dscores)],
    uniform: rowUniform(a),
    body: `
  let i = idx % u.T;
  let row = idx * u.T;
  var dot = 0.0;
  for (var j = 0u; j <= i; j++) { dot += P[row + j] * dS[row + j]; }
  for (var j = 0u; j < u.T; j++) { dS[row + j] = select(0.0, P[row + j] * (dS[row + j] - dot) * u.scale, j <= i); }`,
  });
}

/**
 * Causal multi-head self-attention: probs = softmax(q·kᵀ/√hd) masked to j ≤ i (kept for
 * backward), out[B·T, d] = probs·v. Three dispatches: two batched matmuls and a row softmax.
 */
export function attentionForward(gpu: Gpu, a: AttnDims & { qkv: View; probs: View; out: View }, pick?: Pick): Dispatch[] {
  checkAttn('attention', a);
  need('attention', a.out, a.B * a.T * a.d);
  const { T, d } = a;
  const hd = d / a.H;
  const [q, k, v, o, s] = [heads(a, 3 * d, 0), heads(a, 3 * d, 1), heads(a, 3 * d, 2), heads(a, d, 0), scoresOf(a)];
  return [
    matmul(gpu, { M: T, N: T, K: hd, a: a.qkv, b: a.qkv, c: a.probs, transB: true, lda: 3 * d, ldb: 3 * d, ldc: T, base: [q.base, k.base, 0], batch: attnBatch(a, q, k, s) }, pick),
    causalSoftmax(gpu, a),
    matmul(gpu, { M: T, N: hd, K: T, a: a.probs, b: a.qkv, c: a.out, lda: T, ldb: 3 * d, ldc: d, base: [0, v.base, 0], batch: attnBatch(a, s, v, o) }, pick),
  ];
}

/** dqkv[B·T, 3d] from dout = ∂L/∂out: dP = dout·vᵀ, dS = softmax′, dq = dS·k, dk = dSᵀ·q, dv = Pᵀ·dout. */
export function attentionBackward(gpu: Gpu, a: AttnDims & { qkv: View; probs: View; dout: View; dscores: View; dqkv: View }, pick?: Pick): Dispatch[] {
  checkAttn('attention bwd', a);
  need('attention bwd', a.dscores, a.B * a.H * a.T * a.T);
  need('attention bwd', a.dqkv, a.B * a.T * 3 * a.d);
  const { T, d } = a;
  const hd = d / a.H;
  const [q, k, v, o, s] = [heads(a, 3 * d, 0), heads(a, 3 * d, 1), heads(a, 3 * d, 2), heads(a, d, 0), scoresOf(a)];
  const ld = { q: 3 * d, o: d, s: T };
  return [
    matmul(gpu, { M: T, N: T, K: hd, a: a.dout, b: a.qkv, c: a.dscores, transB: true, lda: ld.o, ldb: ld.q, ldc: ld.s, base: [0, v.base, 0], batch: attnBatch(a, o, v, s) }, pick),
    causalSoftmaxBackward(gpu, a),
    matmul(gpu, { M: T, N: hd, K: T, a: a.dscores, b: a.qkv, c: a.dqkv, lda: ld.s, ldb: ld.q, ldc: ld.q, base: [0, k.base, q.base], batch: attnBatch(a, s, k, q) }, pick),
    matmul(
      gpu,
      { M: T, N: hd, K: T, a: a.dscores, b: a.qkv, c: a.dqkv, transA: true, lda: ld.s, ldb: ld.q, ldc: ld.q, base: [0, q.base, k.base], batch: attnBatch(a, s, q, k) },
      pick,
    ),
    matmul(gpu, { M: T, N: hd, K: T, a: a.probs, b: a.dout, c: a.dqkv, transA: true, lda: ld.s, ldb: ld.o, ldc: ld.q, base: [0, 0, v.base], batch: attnBatch(a, s, o, v) }, pick),
  ];
}
