// The GPU side of a subspace model (ARCHITECTURE §4, shared/engine/subspace.ts): boundaries travel
// as k coefficients c = Uᵀ(x − F[tok]) instead of d values, so a block encodes what it sends,
// decodes what it receives, and keeps the weights that write the residual stream in span(U).
import type { Dispatch, Gpu, View } from './context.js';
import { matmul } from './matmul.js';
import { flatKernel, input, need, output, u32 } from './wgsl.js';

interface SubspaceArgs {
  u: View;
  N: number;
  d: number;
  k: number;
  /** The frozen token table F[V,d] and the token ids, for activations; absent for gradients. */
  table?: View;
  tokens?: View;
  /** Values [N, d] and their coefficients [N, k]. */
  x: View;
  c: View;
}

/** One invocation per coefficient (encode) or per value (decode). */
const BODY = {
  /** c[n,a] = Σ_j (x[n,j] − F[tok[n],j])·U[j,a]; without a table, the plain Uᵀx (gradients). */
  encode: `
  let n = idx / u.k;
  let a = idx % u.k;
  var s = 0.0;
  for (var j = 0u; j < u.d; j++) {
    let f = select(0.0, F[tok[n] * u.d + j], u.hasTable != 0u);
    s += (x[n * u.d + j] - f) * basis[j * u.k + a];
  }
  c[idx] = s;`,
  /** x[n,j] = Σ_a c[n,a]·U[j,a] + F[tok[n],j] */
  decode: `
  let n = idx / u.d;
  let j = idx % u.d;
  var s = 0.0;
  for (var a = 0u; a < u.k; a++) { s += c[n * u.k + a] * basis[j * u.k + a]; }
  if (u.hasTable != 0u) { s += F[tok[n] * u.d + j]; }
  x[idx] = s;`,
};

function subspaceOp(gpu: Gpu, way: 'encode' | 'decode', a: SubspaceArgs): Dispatch {
  const label = `subspace ${way}`;
  need(label, a.x, a.N * a.d);
  need(label, a.c, a.N * a.k);
  need(label, a.u, a.d * a.k);
  if (!!a.table !== !!a.tokens) throw new Error(`${label}: a token table needs token ids`);
  const [src, dst, total] = way === 'encode' ? [input('x', a.x), output('c', a.c), a.N * a.k] : [input('c', a.c), output('x', a.x), a.N * a.d];
  return flatKernel(gpu, label, total, {
    buffers: [src, input('basis', a.u), input('F', a.table ?? a.u), input('tok', a.tokens ?? a.u, 'u32'), dst],
    uniform: { d: u32(a.d), k: u32(a.k), hasTable: u32(a.table ? 1 : 0) },
    body: BODY[way],
  });
}

/** c = Uᵀ(x − F[tok]): the k coefficients a boundary carries (of a gradient, without the table). */
export const subspaceEncode = (gpu: Gpu, a: SubspaceArgs): Dispatch => subspaceOp(gpu, 'encode', a);
/** x = U·c + F[tok]: a boundary's values back from its coefficients. */
export const subspaceDecode = (gpu: Gpu, a: SubspaceArgs): Dispatch => subspaceOp(gpu, 'decode', a);

/** W[R,d] ← W·U·Uᵀ (rows of W onto span(U)) as two matmuls through tmp[R,k]. */
export function subspaceProject(gpu: Gpu, a: { w: View; u: View; tmp: View; R: number; d: number; k: number }): Dispatch[] {
  const { R, d, k } = a;
  return [matmul(gpu, { M: R, N: k, K: d, a: a.w, b: a.u, c: a.tmp }), matmul(gpu, { M: R, N: d, K: k, a: a.tmp, b: a.u, c: a.w, transB: true })];
}
