// Kernels that map each element on its own: the MLP's GELU (tanh approximation, as in GPT-2) and
// its gradient, and the residual add.
import type { Dispatch, Gpu, View } from './context.js';
import { flatKernel, input, output } from './wgsl.js';

/**
 * From `v`, e = exp(2t) with t = √(2/π)(v + 0.044715v³), so tanh(t) = (e − 1)/(e + 1): tanh()
 * itself is NaN for large |t| on some backends, hence the clamp (tanh(±15) is ±1 in f32).
 */
const TANH_EXP = `
  let t = clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -15.0, 15.0);
  let e = exp(2.0 * t);`;

export function gelu(gpu: Gpu, a: { x: View; y: View; n: number }): Dispatch {
  return flatKernel(gpu, 'gelu', a.n, {
    buffers: [input('x', a.x), output('y', a.y)],
    body: `
  let v = x[idx];${TANH_EXP}
  y[idx] = 0.5 * v * (1.0 + (e - 1.0) / (e + 1.0));`,
  });
}

export function geluBackward(gpu: Gpu, a: { dy: View; x: View; dx: View; n: number }): Dispatch {
  return flatKernel(gpu, 'gelu bwd', a.n, {
    buffers: [input('dy', a.dy), input('x', a.x), output('dx', a.dx)],
    body: `
  let v = x[idx];${TANH_EXP}
  let th = (e - 1.0) / (e + 1.0);
  let du = 0.7978845608028654 * (1.0 + 0.134145 * v * v);
  dx[idx] = dy[idx] * (0.5 * (1.0 + th) + 0.5 * v * (1.0 - th * th) * du);`,
  });
}

/** out = a + b (out may alias neither input). */
export function add(gpu: Gpu, a: { a: View; b: View; out: View; n: number }): Dispatch {
  return flatKernel(gpu, 'add', a.n, {
    buffers: [input('a', a.a), input('b', a.b), output('o', a.out)],
    body: `
  o[idx] = a[idx] + b[idx];`,
  });
}
