// Sums: a bias gradient (one column sum per output feature) and a whole buffer reduced to one
// number (the mean loss, the gradient norm), each in a fixed order so results are deterministic.
import { type Dispatch, type Gpu, type View, f32bits } from './context.js';
import { WG, declare, flatKernel, input, need, output, u32 } from './wgsl.js';

/** db[j] += Σ_n dy[n,j]: the bias gradient. */
export function colsum(gpu: Gpu, a: { dy: View; db: View; N: number; C: number }): Dispatch {
  need('colsum', a.db, a.C);
  return flatKernel(gpu, 'colsum', a.C, {
    buffers: [input('dy', a.dy), output('db', a.db)],
    uniform: { N: u32(a.N) },
    body: `
  var s = 0.0;
  for (var n = 0u; n < u.N; n++) { s += dy[n * u.total + idx]; }
  db[idx] += s;`,
  });
}

/**
 * out[0] = scale · Σ x[i]² (squares) or scale · Σ x[i], reduced by one workgroup, in a fixed
 * order so the result is deterministic. Used for the mean loss and the gradient norm.
 */
export function reduceSum(gpu: Gpu, a: { x: View; out: View; n: number; squares?: boolean; scale?: number }): Dispatch {
  const code = `
struct U { n: u32, squares: u32, scale: f32 }
${declare([input('x', a.x), output('o', a.out)])}
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
