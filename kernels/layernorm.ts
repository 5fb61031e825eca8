// Layer norm, one invocation per row (forward, input gradient) or per column (gain and bias
// gradients): rows are short (d values), so a loop per row beats a workgroup reduction here.
import type { Dispatch, Gpu, View } from './context.js';
import { LN_EPS } from './reference.js';
import { f32, flatKernel, input, need, output, u32 } from './wgsl.js';

export function layerNormForward(gpu: Gpu, a: { x: View; g: View; b: View; y: View; mean: View; rstd: View; N: number; d: number }): Dispatch {
  const { N, d } = a;
  need('layernorm', a.x, N * d);
  need('layernorm', a.y, N * d);
  return flatKernel(gpu, 'layernorm fwd', N, {
    buffers: [input('x', a.x), input('gain', a.g), input('bias', a.b), output('y', a.y), output('mean', a.mean), output('rstd', a.rstd)],
    uniform: { d: u32(d), eps: f32(LN_EPS) },
    body: `
  let o = idx * u.d;
  var m = 0.0;
  for (var j = 0u; j < u.d; j++) { m += x[o + j]; }
  m /= f32(u.d);
  var v = 0.0;
  for (var j = 0u; j < u.d; j++) { let c = x[o + j] - m; v += c * c; }
  let r = inverseSqrt(v / f32(u.d) + u.eps);
  mean[idx] = m;
  rstd[idx] = r;
  for (var j = 0u; j < u.d; j++) { y[o + j] = (x[o + j] - m) * r * gain[j] + bias[j]; }`,
  });
}

/** dx = residual + LN'(dy); the residual gradient rides along so the add costs no extra pass. */
export function layerNormBackward(gpu: Gpu, a: { dy: View; x: View; g: View; mean: View; rstd: View; residual?: View; dx: View; N: number; d: number }): Dispatch {
  const { N, d } = a;
  need('layernorm bwd', a.dx, N * d);
  return flatKernel(gpu, 'layernorm bwd', N, {
    buffers: [input('dy', a.dy), input('x', a.x), input('gain', a.g), input('mean', a.mean), input('rstd', a.rstd), input('res', a.residual ?? a.dy), output('dx', a.dx)],
    uniform: { d: u32(d), hasResidual: u32(a.residual ? 1 : 0) },
    body: `
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
  }`,
  });
}

/** dgain[j] += Σ_n dy·x̂ and dbias[j] += Σ_n dy, one invocation per column. */
export function layerNormParamGrads(gpu: Gpu, a: { dy: View; x: View; mean: View; rstd: View; dg: View; db: View; N: number; d: number }): Dispatch {
  const { N, d } = a;
  return flatKernel(gpu, 'layernorm param grads', d, {
    buffers: [input('dy', a.dy), input('x', a.x), input('mean', a.mean), input('rstd', a.rstd), output('dg', a.dg), output('db', a.db)],
    uniform: { N: u32(N), d: u32(d) },
    body: `
  var sg = 0.0;
  var sb = 0.0;
  for (var n = 0u; n < u.N; n++) {
    let e = dy[n * u.d + idx];
    sg += e * (x[n * u.d + idx] - mean[n]) * rstd[n];
    sb += e;
  }
  dg[idx] += sg;
  db[idx] += sb;`,
  });
}
