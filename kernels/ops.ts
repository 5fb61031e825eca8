// WGSL kernels for everything in a GPT block except matmul (see matmul.ts). Each function
// validates sizes and returns a Dispatch bound to its buffers; nothing runs until encoded.
// Gradients of parameters are accumulated (+=) so microbatches can add up before a step.
import { type Dispatch, type Gpu, type View, f32bits, groups } from './context.js';
import { type Batch, type MatmulShape, type MatmulVariant, matmul } from './matmul.js';
import { type AdamW, LN_EPS } from './reference.js';

const WG = 256;

/** A 2-D grid of 256-wide workgroups covering `total` invocations, and the row stride. */
function flat(total: number): { wg: [number, number, number]; stride: number } {
  const n = groups(total, WG);
  const x = Math.min(n, 65535);
  return { wg: [x, groups(n, x), 1], stride: x * WG };
}

function need(label: string, v: View, n: number): void {
  if (v.length < n) throw new Error(`${label}: buffer holds ${v.length} values, needs ${n}`);
}

const IDX = `let idx = gid.y * u.stride + gid.x; if (idx >= u.total) { return; }`;

// ---------------------------------------------------------------- embedding

/** x[n] = wte[tok[n]] + wpe[n mod T] (+ F[tok[n]], the frozen table of a subspace model). */
export function embeddingForward(gpu: Gpu, a: { wte: View; wpe: View; tokens: View; x: View; N: number; T: number; d: number; frozen?: View }): Dispatch {
  const { N, T, d } = a;
  need('embedding', a.x, N * d);
  need('embedding', a.tokens, N);
  const g = flat(N * d);
  const code = `
struct U { stride: u32, total: u32, T: u32, d: u32, hasFrozen: u32 }
@group(0) @binding(0) var<storage, read> wte: array<f32>;
@group(0) @binding(1) var<storage, read> wpe: array<f32>;
@group(0) @binding(2) var<storage, read> tok: array<u32>;
@group(0) @binding(3) var<storage, read> F: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  let n = idx / u.d;
  let j = idx % u.d;
  let e = tok[n] * u.d + j;
  x[idx] = wte[e] + wpe[(n % u.T) * u.d + j] + select(0.0, F[e], u.hasFrozen != 0u);
}`;
  const words = [g.stride, N * d, T, d, a.frozen ? 1 : 0];
  return gpu.dispatch('embedding fwd', code, [a.wte, a.wpe, a.tokens, a.frozen ?? a.wte, a.x, gpu.uniform(words)], g.wg);
}

/**
 * dwte[v,j] += Σ_{n: tok[n]=v} dx[n,j] and dwpe[t,j] += Σ_b dx[b·T+t, j]. One invocation owns
 * each output element and loops over the tokens: a scatter without float atomics.
 */
export function embeddingBackward(gpu: Gpu, a: { dx: View; tokens: View; dwte: View; dwpe: View; N: number; T: number; d: number; V: number }): Dispatch {
  const { N, T, d, V } = a;
  need('embedding bwd', a.dwte, V * d);
  need('embedding bwd', a.dwpe, T * d);
  const g = flat((V + T) * d);
  const code = `
struct U { stride: u32, total: u32, N: u32, T: u32, d: u32, V: u32 }
@group(0) @binding(0) var<storage, read> dx: array<f32>;
@group(0) @binding(1) var<storage, read> tok: array<u32>;
@group(0) @binding(2) var<storage, read_write> dwte: array<f32>;
@group(0) @binding(3) var<storage, read_write> dwpe: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  let row = idx / u.d;
  let j = idx % u.d;
  var s = 0.0;
  if (row < u.V) {
    for (var n = 0u; n < u.N; n++) {
      if (tok[n] == row) { s += dx[n * u.d + j]; }
    }
    dwte[idx] += s;
  } else {
    let t = row - u.V;
    for (var n = t; n < u.N; n += u.T) { s += dx[n * u.d + j]; }
    dwpe[t * u.d + j] += s;
  }
}`;
  return gpu.dispatch('embedding bwd', code, [a.dx, a.tokens, a.dwte, a.dwpe, gpu.uniform([g.stride, (V + T) * d, N, T, d, V])], g.wg);
}

// ---------------------------------------------------------------- layer norm

export function layerNormForward(gpu: Gpu, a: { x: View; g: View; b: View; y: View; mean: View; rstd: View; N: number; d: number }): Dispatch {
  const { N, d } = a;
  need('layernorm', a.x, N * d);
  need('layernorm', a.y, N * d);
  const g = flat(N);
  const code = `
struct U { stride: u32, total: u32, d: u32, eps: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gain: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(6) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  let o = idx * u.d;
  var m = 0.0;
  for (var j = 0u; j < u.d; j++) { m += x[o + j]; }
  m /= f32(u.d);
  var v = 0.0;
  for (var j = 0u; j < u.d; j++) { let c = x[o + j] - m; v += c * c; }
  let r = inverseSqrt(v / f32(u.d) + u.eps);
  mean[idx] = m;
  rstd[idx] = r;
  for (var j = 0u; j < u.d; j++) { y[o + j] = (x[o + j] - m) * r * gain[j] + bias[j]; }
}`;
  return gpu.dispatch('layernorm fwd', code, [a.x, a.g, a.b, a.y, a.mean, a.rstd, gpu.uniform([g.stride, N, d, f32bits(LN_EPS)])], g.wg);
}

/** dx = residual + LN'(dy); the residual gradient rides along so the add costs no extra pass. */
export function layerNormBackward(gpu: Gpu, a: { dy: View; x: View; g: View; mean: View; rstd: View; residual?: View; dx: View; N: number; d: number }): Dispatch {
  const { N, d } = a;
  need('layernorm bwd', a.dx, N * d);
  const g = flat(N);
  const code = `
struct U { stride: u32, total: u32, d: u32, hasResidual: u32 }
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gain: array<f32>;
@group(0) @binding(3) var<storage, read> mean: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  let o = idx * u.d;
  let m = mean[idx];
  let r = rstd[idx];
  var sumDh = 0.0;
  var sumDhXh = 0.0;
  for (var j = 0u; j < u.d; j++) {
    let dh = dy[o + j] * gain[j];
    sumDh += dh;
    sumDhXh += dh * (x[o + j] - m) * r;
  }
  let inv = 1.0 / f32(u.d);
  for (var j = 0u; j < u.d; j++) {
    let xh = (x[o + j] - m) * r;
    var v = r * (dy[o + j] * gain[j] - sumDh * inv - xh * sumDhXh * inv);
    if (u.hasResidual != 0u) { v += res[o + j]; }
    dx[o + j] = v;
  }
}`;
  const res = a.residual ?? a.dy;
  return gpu.dispatch('layernorm bwd', code, [a.dy, a.x, a.g, a.mean, a.rstd, res, a.dx, gpu.uniform([g.stride, N, d, a.residual ? 1 : 0])], g.wg);
}

/** dgain[j] += Σ_n dy·x̂ and dbias[j] += Σ_n dy, one invocation per column. */
export function layerNormParamGrads(gpu: Gpu, a: { dy: View; x: View; mean: View; rstd: View; dg: View; db: View; N: number; d: number }): Dispatch {
  const { N, d } = a;
  const g = flat(d);
  const code = `
struct U { stride: u32, total: u32, N: u32, d: u32 }
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dg: array<f32>;
@group(0) @binding(5) var<storage, read_write> db: array<f32>;
@group(0) @binding(6) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  var sg = 0.0;
  var sb = 0.0;
  for (var n = 0u; n < u.N; n++) {
    let e = dy[n * u.d + idx];
    sg += e * (x[n * u.d + idx] - mean[n]) * rstd[n];
    sb += e;
  }
  dg[idx] += sg;
  db[idx] += sb;
}`;
  return gpu.dispatch('layernorm param grads', code, [a.dy, a.x, a.mean, a.rstd, a.dg, a.db, gpu.uniform([g.stride, d, N, d])], g.wg);
}

// ---------------------------------------------------------------- elementwise

export function gelu(gpu: Gpu, a: { x: View; y: View; n: number }): Dispatch {
  const g = flat(a.n);
  const code = `
struct U { stride: u32, total: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  let v = x[idx];
  // tanh written via exp of a clamped argument: tanh() of large |u| is NaN on some backends.
  let t = clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -15.0, 15.0);
  let e = exp(2.0 * t);
  y[idx] = 0.5 * v * (1.0 + (e - 1.0) / (e + 1.0));
}`;
  return gpu.dispatch('gelu', code, [a.x, a.y, gpu.uniform([g.stride, a.n])], g.wg);
}

export function geluBackward(gpu: Gpu, a: { dy: View; x: View; dx: View; n: number }): Dispatch {
  const g = flat(a.n);
  const code = `
struct U { stride: u32, total: u32 }
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  let v = x[idx];
  let t = clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -15.0, 15.0);
  let e = exp(2.0 * t);
  let th = (e - 1.0) / (e + 1.0);
  let du = 0.7978845608028654 * (1.0 + 0.134145 * v * v);
  dx[idx] = dy[idx] * (0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * du);
}`;
  return gpu.dispatch('gelu bwd', code, [a.dy, a.x, a.dx, gpu.uniform([g.stride, a.n])], g.wg);
}

/** out = a + b (out may alias neither input). */
export function add(gpu: Gpu, a: { a: View; b: View; out: View; n: number }): Dispatch {
  const g = flat(a.n);
  const code = `
struct U { stride: u32, total: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  o[idx] = a[idx] + b[idx];
}`;
  return gpu.dispatch('add', code, [a.a, a.b, a.out, gpu.uniform([g.stride, a.n])], g.wg);
}

/** db[j] += Σ_n dy[n,j]: the bias gradient. */
export function colsum(gpu: Gpu, a: { dy: View; db: View; N: number; C: number }): Dispatch {
  need('colsum', a.db, a.C);
  const g = flat(a.C);
  const code = `
struct U { stride: u32, total: u32, N: u32 }
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> db: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  var s = 0.0;
  for (var n = 0u; n < u.N; n++) { s += dy[n * u.total + idx]; }
  db[idx] += s;
}`;
  return gpu.dispatch('colsum', code, [a.dy, a.db, gpu.uniform([g.stride, a.C, a.N])], g.wg);
}

// ---------------------------------------------------------------- attention

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

/** Row-wise causal softmax of scores·scale in place (stable: max subtracted), zero above the diagonal. */
function causalSoftmax(gpu: Gpu, a: AttnDims & { probs: View }): Dispatch {
  const rows = a.B * a.H * a.T;
  const g = flat(rows);
  const code = `
struct U { stride: u32, total: u32, T: u32, scale: f32 }
@group(0) @binding(0) var<storage, read_write> P: array<f32>;
@group(0) @binding(1) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  let i = idx % u.T;
  let row = idx * u.T;
  var mx = -3.4e38;
  for (var j = 0u; j <= i; j++) { mx = max(mx, P[row + j] * u.scale); }
  var sum = 0.0;
  for (var j = 0u; j <= i; j++) { let p = exp(P[row + j] * u.scale - mx); P[row + j] = p; sum += p; }
  let inv = 1.0 / sum;
  for (var j = 0u; j <= i; j++) { P[row + j] *= inv; }
  for (var j = i + 1u; j < u.T; j++) { P[row + j] = 0.0; }
}`;
  return gpu.dispatch('causal softmax', code, [a.probs, gpu.uniform([g.stride, rows, a.T, f32bits(1 / Math.sqrt(a.d / a.H))])], g.wg);
}

/** dS = P·(dP − Σ_j P·dP)·scale in place over dP: the softmax backward. */
function causalSoftmaxBackward(gpu: Gpu, a: AttnDims & { probs: View; dscores: View }): Dispatch {
  const rows = a.B * a.H * a.T;
  const g = flat(rows);
  const code = `
struct U { stride: u32, total: u32, T: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> P: array<f32>;
@group(0) @binding(1) var<storage, read_write> dS: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  let i = idx % u.T;
  let row = idx * u.T;
  var dot = 0.0;
  for (var j = 0u; j <= i; j++) { dot += P[row + j] * dS[row + j]; }
  for (var j = 0u; j < u.T; j++) { dS[row + j] = select(0.0, P[row + j] * (dS[row + j] - dot) * u.scale, j <= i); }
}`;
  return gpu.dispatch('causal softmax bwd', code, [a.probs, a.dscores, gpu.uniform([g.stride, rows, a.T, f32bits(1 / Math.sqrt(a.d / a.H))])], g.wg);
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

// ---------------------------------------------------------------- loss

/**
 * Fused softmax + cross-entropy per row: losses[n] = logsumexp − logit[target], and the logits
 * are overwritten by their gradient (softmax − onehot)/N.
 */
export function crossEntropy(gpu: Gpu, a: { logits: View; targets: View; losses: View; N: number; V: number }): Dispatch {
  const { N, V } = a;
  need('cross-entropy', a.logits, N * V);
  need('cross-entropy', a.losses, N);
  const g = flat(N);
  const code = `
struct U { stride: u32, total: u32, V: u32 }
@group(0) @binding(0) var<storage, read_write> z: array<f32>;
@group(0) @binding(1) var<storage, read> tgt: array<u32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  let o = idx * u.V;
  var mx = -3.4e38;
  for (var v = 0u; v < u.V; v++) { mx = max(mx, z[o + v]); }
  var sum = 0.0;
  for (var v = 0u; v < u.V; v++) { sum += exp(z[o + v] - mx); }
  let lse = mx + log(sum);
  let t = tgt[idx];
  losses[idx] = lse - z[o + t];
  let invN = 1.0 / f32(u.total);
  for (var v = 0u; v < u.V; v++) {
    z[o + v] = (exp(z[o + v] - lse) - select(0.0, 1.0, v == t)) * invN;
  }
}`;
  return gpu.dispatch('cross-entropy', code, [a.logits, a.targets, a.losses, gpu.uniform([g.stride, N, V])], g.wg);
}

/**
 * out[0] = scale · Σ x[i]² (squares) or scale · Σ x[i], reduced by one workgroup, in a fixed
 * order so the result is deterministic. Used for the mean loss and the gradient norm.
 */
export function reduceSum(gpu: Gpu, a: { x: View; out: View; n: number; squares?: boolean; scale?: number }): Dispatch {
  const code = `
struct U { n: u32, squares: u32, scale: f32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
var<workgroup> part: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var s = 0.0;
  for (var i = lid.x; i < u.n; i += ${WG}u) {
    let v = x[i];
    s += select(v, v * v, u.squares != 0u);
  }
  part[lid.x] = s;
  workgroupBarrier();
  for (var w = ${WG / 2}u; w > 0u; w >>= 1u) {
    if (lid.x < w) { part[lid.x] += part[lid.x + w]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { o[0] = part[0] * u.scale; }
}`;
  return gpu.dispatch(a.squares ? 'sum of squares' : 'sum', code, [a.x, a.out, gpu.uniform([a.n, a.squares ? 1 : 0, f32bits(a.scale ?? 1)])], [1, 1, 1]);
}

// ---------------------------------------------------------------- optimizer

/** Per-step optimizer scalars (t counts from 1), rewritten each step into a small uniform buffer. */
export type AdamWState = AdamW & { t: number };

export function adamwWords(s: AdamWState, n: number, decayEnd: number, stride: number): Uint32Array<ArrayBuffer> {
  const bc1 = 1 - s.beta1 ** s.t;
  const bc2 = 1 - s.beta2 ** s.t;
  return new Uint32Array([stride, n, decayEnd, 0, ...[s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, s.clip, bc1, bc2].map(f32bits)]);
}

/**
 * AdamW over the flat parameter buffer with global-norm clipping: `sumsq` holds Σ g² from
 * reduceSum, so the clip scale is computed on the GPU and nothing is read back.
 */
export function adamw(gpu: Gpu, a: { p: View; g: View; m: View; v: View; sumsq: View; hyper: GPUBuffer; n: number }): Dispatch {
  const gr = flat(a.n);
  const code = `
struct U { stride: u32, total: u32, decayEnd: u32, pad: u32, lr: f32, b1: f32, b2: f32, eps: f32, wd: f32, clip: f32, bc1: f32, bc2: f32 }
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> sumsq: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
  let norm = sqrt(sumsq[0]);
  let s = select(1.0, u.clip / norm, norm > u.clip);
  let gi = g[idx] * s;
  let mi = u.b1 * m[idx] + (1.0 - u.b1) * gi;
  let vi = u.b2 * v[idx] + (1.0 - u.b2) * gi * gi;
  m[idx] = mi;
  v[idx] = vi;
  let wd = select(0.0, u.wd, idx < u.decayEnd);
  p[idx] -= u.lr * ((mi / u.bc1) / (sqrt(vi / u.bc2) + u.eps) + wd * p[idx]);
}`;
  return gpu.dispatch('adamw', code, [a.p, a.g, a.m, a.v, a.sumsq, a.hyper], gr.wg);
}

export const adamwStride = (n: number) => flat(n).stride;

// ---------------------------------------------------------------- subspace (ARCHITECTURE §4)

interface SubspaceArgs {
  u: View;
  N: number;
  d: number;
  k: number;
  /** The frozen token table F[V,d] and the token ids, for activations; absent for gradients. */
  table?: View;
  tokens?: View;
}

function subspaceOp(gpu: Gpu, label: string, a: SubspaceArgs, src: [string, View], dst: [string, View], total: number, body: string): Dispatch {
  need(label, a.u, a.d * a.k);
  if (!!a.table !== !!a.tokens) throw new Error(`${label}: a token table needs token ids`);
  const g = flat(total);
  const code = `
struct U { stride: u32, total: u32, d: u32, k: u32, hasTable: u32 }
@group(0) @binding(0) var<storage, read> ${src[0]}: array<f32>;
@group(0) @binding(1) var<storage, read> basis: array<f32>;
@group(0) @binding(2) var<storage, read> F: array<f32>;
@group(0) @binding(3) var<storage, read> tok: array<u32>;
@group(0) @binding(4) var<storage, read_write> ${dst[0]}: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  ${IDX}
${body}
}`;
  const words = [g.stride, total, a.d, a.k, a.table ? 1 : 0];
  return gpu.dispatch(label, code, [src[1], a.u, a.table ?? a.u, a.tokens ?? a.u, dst[1], gpu.uniform(words)], g.wg);
}

/** c[n,a] = Σ_j (x[n,j] − F[tok[n],j])·U[j,a]; without a table, the plain Uᵀx (gradients). */
export function subspaceEncode(gpu: Gpu, a: SubspaceArgs & { x: View; c: View }): Dispatch {
  need('subspace encode', a.x, a.N * a.d);
  need('subspace encode', a.c, a.N * a.k);
  return subspaceOp(
    gpu,
    'subspace encode',
    a,
    ['x', a.x],
    ['c', a.c],
    a.N * a.k,
    `
  let n = idx / u.k;
  let a = idx % u.k;
  var s = 0.0;
  for (var j = 0u; j < u.d; j++) {
    let f = select(0.0, F[tok[n] * u.d + j], u.hasTable != 0u);
    s += (x[n * u.d + j] - f) * basis[j * u.k + a];
  }
  c[idx] = s;`,
  );
}

/** x[n,j] = Σ_a c[n,a]·U[j,a] + F[tok[n],j] */
export function subspaceDecode(gpu: Gpu, a: SubspaceArgs & { c: View; x: View }): Dispatch {
  need('subspace decode', a.x, a.N * a.d);
  need('subspace decode', a.c, a.N * a.k);
  return subspaceOp(
    gpu,
    'subspace decode',
    a,
    ['c', a.c],
    ['x', a.x],
    a.N * a.d,
    `
  let n = idx / u.d;
  let j = idx % u.d;
  var s = 0.0;
  for (var a = 0u; a < u.k; a++) { s += c[n * u.k + a] * basis[j * u.k + a]; }
  if (u.hasTable != 0u) { s += F[tok[n] * u.d + j]; }
  x[idx] = s;`,
  );
}

/** W[R,d] ← W·U·Uᵀ (rows of W onto span(U)) as two matmuls through tmp[R,k]. */
export function subspaceProject(gpu: Gpu, a: { w: View; u: View; tmp: View; R: number; d: number; k: number }): Dispatch[] {
  const { R, d, k } = a;
  return [matmul(gpu, { M: R, N: k, K: d, a: a.w, b: a.u, c: a.tmp }), matmul(gpu, { M: R, N: d, K: k, a: a.tmp, b: a.u, c: a.w, transB: true })];
}
