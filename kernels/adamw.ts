// The optimizer step on the GPU: AdamW over the flat parameter buffer, clipped to the global
// gradient norm. Its scalars change every step (learning rate, bias corrections), so they live in
// a uniform buffer the runtime rewrites per step instead of in a rebuilt dispatch.
import { type Dispatch, type Gpu, type View, f32bits } from './context.js';
import type { AdamW } from './reference.js';
import { flat, flatKernel, input, output } from './wgsl.js';

/** Per-step optimizer scalars (t counts from 1), rewritten each step into a small uniform buffer. */
export type AdamWState = AdamW & { t: number };

/** The words of the `hyper` buffer, in the order of ADAMW_FIELDS after the grid's stride and total. */
export function adamwWords(s: AdamWState, n: number, decayEnd: number, stride: number): Uint32Array<ArrayBuffer> {
  const bc1 = 1 - s.beta1 ** s.t;
  const bc2 = 1 - s.beta2 ** s.t;
  return new Uint32Array([stride, n, decayEnd, 0, ...[s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, s.clip, bc1, bc2].map(f32bits)]);
}

const ADAMW_FIELDS = 'decayEnd: u32, pad: u32, lr: f32, b1: f32, b2: f32, eps: f32, wd: f32, clip: f32, bc1: f32, bc2: f32';

/**
 * AdamW over the flat parameter buffer with global-norm clipping: `sumsq` holds Σ g² from
 * reduceSum, so the clip scale is computed on the GPU and nothing is read back.
 */
export function adamw(gpu: Gpu, a: { p: View; g: View; m: View; v: View; sumsq: View; hyper: GPUBuffer; n: number }): Dispatch {
  return flatKernel(gpu, 'adamw', a.n, {
    buffers: [output('p', a.p), input('g', a.g), output('m', a.m), output('v', a.v), input('sumsq', a.sumsq)],
    uniform: { fields: ADAMW_FIELDS, buffer: a.hyper },
    body: `
  let norm = sqrt(sumsq[0]);
  let s = select(1.0, u.clip / norm, norm > u.clip);
  let gi = g[idx] * s;
  let mi = u.b1 * m[idx] + (1.0 - u.b1) * gi;
  let vi = u.b2 * v[idx] + (1.0 - u.b2) * gi * gi;
  m[idx] = mi;
  v[idx] = vi;
  let wd = select(0.0, u.wd, idx < u.decayEnd);
  p[idx] -= u.lr * ((mi / u.bc1) / (sqrt(vi / u.bc2) + u.eps) + wd * p[idx]);`,
  });
}

export const adamwStride = (n: number) => flat(n).stride;
