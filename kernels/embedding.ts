// The token and position embedding of the first block (plus the frozen table F of a subspace
// model, which the first block adds so that boundaries carry only what F does not).
import type { Dispatch, Gpu, View } from './context.js';
import { flatKernel, input, need, output, u32 } from './wgsl.js';

/** x[n] = wte[tok[n]] + wpe[n mod T] (+ F[tok[n]], the frozen table of a subspace model). */
export function embeddingForward(gpu: Gpu, a: { wte: View; wpe: View; tokens: View; x: View; N: number; T: number; d: number; frozen?: View }): Dispatch {
  const { N, T, d } = a;
  need('embedding', a.x, N * d);
  need('embedding', a.tokens, N);
  return flatKernel(gpu, 'embedding fwd', N * d, {
    buffers: [input('wte', a.wte), input('wpe', a.wpe), input('tok', a.tokens, 'u32'), input('F', a.frozen ?? a.wte), output('x', a.x)],
    uniform: { T: u32(T), d: u32(d), hasFrozen: u32(a.frozen ? 1 : 0) },
    body: `
  let n = idx / u.d;
  let j = idx % u.d;
  let e = tok[n] * u.d + j;
  x[idx] = wte[e] + wpe[(n % u.T) * u.d + j] + select(0.0, F[e], u.hasFrozen != 0u);`,
  });
}

/**
 * dwte[v,j] += Σ_{n: tok[n]=v} dx[n,j] and dwpe[t,j] += Σ_b dx[b·T+t, j]. One invocation owns
 * each output element and loops over the tokens: a scatter without float atomics.
 */
export function embeddingBackward(gpu: Gpu, a: { dx: View; tokens: View; dwte: View; dwpe: View; N: number; T: number; d: number; V: number }): Dispatch {
  const { N, T, d, V } = a;
  need('embedding bwd', a.dwte, V * d);
  need('embedding bwd', a.dwpe, T * d);
  return flatKernel(gpu, 'embedding bwd', (V + T) * d, {
    buffers: [input('dx', a.dx), input('tok', a.tokens, 'u32'), output('dwte', a.dwte), output('dwpe', a.dwpe)],
    uniform: { N: u32(N), T: u32(T), d: u32(d), V: u32(V) },
    body: `
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
  }`,
  });
}
