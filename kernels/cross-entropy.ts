// The loss of the block with the head: softmax and cross-entropy fused per row, leaving the
// logits' gradient in place of the logits so the backward needs no extra buffer.
import type { Dispatch, Gpu, View } from './context.js';
import { flatKernel, input, need, output, u32 } from './wgsl.js';

/**
 * Fused softmax + cross-entropy per row: losses[n] = logsumexp − logit[target], and the logits
 * are overwritten by their gradient (softmax − onehot)/N.
 */
export function crossEntropy(gpu: Gpu, a: { logits: View; targets: View; losses: View; N: number; V: number }): Dispatch {
  const { N, V } = a;
  need('cross-entropy', a.logits, N * V);
  need('cross-entropy', a.losses, N);
  return flatKernel(gpu, 'cross-entropy', N, {
    buffers: [output('z', a.logits), input('tgt', a.targets, 'u32'), output('losses', a.losses)],
    uniform: { V: u32(V) },
    body: `
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
  }`,
  });
}
