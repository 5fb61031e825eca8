// C[M,N] (+)= op(A)·op(B) (+ bias[N]), op = identity or transpose, row-major storage.
// Each invocation computes a TM×TN register block of C. Two families:
//  - 'direct': every invocation streams its rows of A and columns of B straight from memory.
//    On CPU adapters (lavapipe, SwiftShader) memory is cached anyway, so skipping workgroup
//    memory and barriers wins.
//  - 'shared': the workgroup stages BK-deep tiles of A and B in workgroup memory first, the
//    classic GPU tiling that cuts global-memory traffic on discrete GPUs.
// The best variant for a shape is picked by measurement (see autotune.ts).
import { type Dispatch, type Gpu, type View, groups } from './context.js';

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  transA?: boolean; // A stored as [K, M]
  transB?: boolean; // B stored as [N, K]
}

export interface MatmulVariant {
  kind: 'direct' | 'shared' | 'vec4';
  wx: number; // workgroup width (columns of register blocks)
  wy: number; // workgroup height
  tm: number; // rows per invocation
  tn: number; // columns per invocation
  bk: number; // K-tile depth ('shared' only)
  /** 'direct' only: an invocation's columns are WX apart, so neighbouring invocations (SIMD
   * lanes on CPU adapters) read neighbouring addresses of B. */
  strided?: boolean;
}

export interface MatmulArgs extends MatmulShape {
  a: View;
  b: View;
  c: View;
  bias?: View;
  accumulate?: boolean; // C += A·B instead of C = A·B
  variant?: MatmulVariant;
}

export const DEFAULT_VARIANT: MatmulVariant = { kind: 'direct', wx: 8, wy: 8, tm: 4, tn: 4, bk: 8 };

/** The autotuning space: small on purpose, since every candidate costs a shader compile. */
export const VARIANTS: MatmulVariant[] = [
  DEFAULT_VARIANT,
  { kind: 'direct', wx: 8, wy: 8, tm: 8, tn: 8, bk: 8, strided: true },
  { kind: 'shared', wx: 16, wy: 16, tm: 4, tn: 4, bk: 8 },
  { kind: 'vec4', wx: 8, wy: 8, tm: 4, tn: 4, bk: 4 },
  { kind: 'vec4', wx: 8, wy: 8, tm: 8, tn: 8, bk: 4, strided: true },
  { kind: 'vec4', wx: 8, wy: 4, tm: 16, tn: 8, bk: 4, strided: true },
  { kind: 'vec4', wx: 8, wy: 2, tm: 16, tn: 8, bk: 4, strided: true },
  { kind: 'vec4', wx: 8, wy: 4, tm: 8, tn: 16, bk: 4, strided: true },
];

const aIndex = (transA: boolean, r: string, k: string) => (transA ? `${k} * d.M + ${r}` : `${r} * d.K + ${k}`);
const bIndex = (transB: boolean, k: string, c: string) => (transB ? `${c} * d.K + ${k}` : `${k} * d.N + ${c}`);

const header = `
struct Dims { M: u32, N: u32, K: u32, flags: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> d: Dims;
`;

function epilogue(v: MatmulVariant, col = (j: number) => `col0 + ${j}u`): string {
  const lines: string[] = [];
  for (let i = 0; i < v.tm; i++) {
    lines.push(`  if (row0 + ${i}u < d.M) {`);
    for (let j = 0; j < v.tn; j++) {
      lines.push(`    if (${col(j)} < d.N) { store(row0 + ${i}u, ${col(j)}, acc${i}_${j}); }`);
    }
    lines.push('  }');
  }
  return lines.join('\n');
}

const storeFn = `
fn store(r: u32, c: u32, v: f32) {
  var x = v;
  if ((d.flags & 2u) != 0u) { x += bias[c]; }
  let i = r * d.N + c;
  if ((d.flags & 1u) != 0u) { x += C[i]; }
  C[i] = x;
}
`;

function accumulators(v: MatmulVariant): string {
  const out: string[] = [];
  for (let i = 0; i < v.tm; i++) for (let j = 0; j < v.tn; j++) out.push(`  var acc${i}_${j} = 0.0;`);
  return out.join('\n');
}

function fma(v: MatmulVariant): string {
  const out: string[] = [];
  for (let i = 0; i < v.tm; i++) for (let j = 0; j < v.tn; j++) out.push(`    acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`);
  return out.join('\n');
}

function directShader(v: MatmulVariant, transA: boolean, transB: boolean): string {
  // Out-of-range rows/columns read a clamped (valid) index and are never stored: no branches
  // in the inner loop.
  const loads: string[] = [];
  for (let i = 0; i < v.tm; i++) loads.push(`    let a${i} = A[${aIndex(transA, `r${i}`, 'k')}];`);
  for (let j = 0; j < v.tn; j++) loads.push(`    let b${j} = B[${bIndex(transB, 'k', `c${j}`)}];`);
  const clamps: string[] = [];
  for (let i = 0; i < v.tm; i++) clamps.push(`  let r${i} = min(row0 + ${i}u, d.M - 1u);`);
  const col = (j: number) => (v.strided ? `col0 + ${j * v.wx}u` : `col0 + ${j}u`);
  for (let j = 0; j < v.tn; j++) clamps.push(`  let c${j} = min(${col(j)}, d.N - 1u);`);
  const col0 = v.strided ? `wg.x * ${v.wx * v.tn}u + lid.x` : `gid.x * ${v.tn}u`;
  return `${header}${storeFn}
@compute @workgroup_size(${v.wx}, ${v.wy})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = ${v.wy === 1 ? 'wg.y' : 'gid.y'} * ${v.tm}u;
  let col0 = ${col0};
  if (row0 >= d.M || col0 >= d.N) { return; }
${clamps.join('\n')}
${accumulators(v)}
  for (var k = 0u; k < d.K; k++) {
${loads.join('\n')}
${fma(v)}
  }
${epilogue(v, col)}
}
`;
}

function sharedShader(v: MatmulVariant, transA: boolean, transB: boolean): string {
  const BM = v.wy * v.tm;
  const BN = v.wx * v.tn;
  const BK = v.bk;
  const threads = v.wx * v.wy;
  const loadsA: string[] = [];
  const loadsB: string[] = [];
  for (let i = 0; i < v.tm; i++) loadsA.push(`      let a${i} = As[kk * ${BM}u + ly * ${v.tm}u + ${i}u];`);
  for (let j = 0; j < v.tn; j++) loadsB.push(`      let b${j} = Bs[kk * ${BN}u + lx * ${v.tn}u + ${j}u];`);
  return `${header}${storeFn}
var<workgroup> As: array<f32, ${BK * BM}>; // [BK][BM]
var<workgroup> Bs: array<f32, ${BK * BN}>; // [BK][BN]
@compute @workgroup_size(${v.wx}, ${v.wy})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let lx = lid.x;
  let ly = lid.y;
  let tid = ly * ${v.wx}u + lx;
  let tileRow = wg.y * ${BM}u;
  let tileCol = wg.x * ${BN}u;
  let row0 = tileRow + ly * ${v.tm}u;
  let col0 = tileCol + lx * ${v.tn}u;
${accumulators(v)}
  for (var k0 = 0u; k0 < d.K; k0 += ${BK}u) {
    for (var e = tid; e < ${BK * BM}u; e += ${threads}u) {
      let kk = e / ${BM}u;
      let rr = e % ${BM}u;
      let r = min(tileRow + rr, d.M - 1u);
      let k = k0 + kk;
      As[e] = select(0.0, A[${aIndex(transA, 'r', 'min(k, d.K - 1u)')}], k < d.K);
    }
    for (var e = tid; e < ${BK * BN}u; e += ${threads}u) {
      let kk = e / ${BN}u;
      let cc = e % ${BN}u;
      let c = min(tileCol + cc, d.N - 1u);
      let k = k0 + kk;
      Bs[e] = select(0.0, B[${bIndex(transB, 'min(k, d.K - 1u)', 'c')}], k < d.K);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
${loadsA.join('\n')}
${loadsB.join('\n')}
${fma(v)}
    }
    workgroupBarrier();
  }
  if (row0 >= d.M || col0 >= d.N) { return; }
${epilogue(v)}
}
`;
}

/** 'vec4' variants read 4 values per load; they need the loaded dimensions divisible by 4. */
export function variantFits(v: MatmulVariant, s: MatmulShape): boolean {
  if (v.kind !== 'vec4') return true;
  const aOk = s.transA ? s.M % 4 === 0 && v.tm % 4 === 0 : s.K % 4 === 0;
  const bOk = s.transB ? s.K % 4 === 0 : s.N % 4 === 0;
  return aOk && bOk && s.K % 4 === 0 && v.tn % 4 === 0;
}

function vec4Shader(v: MatmulVariant, transA: boolean, transB: boolean): string {
  const nv = v.tn / 4;
  const colOf = (j: number) => {
    const g = Math.floor(j / 4);
    return v.strided ? `col0 + ${g * v.wx * 4 + (j % 4)}u` : `col0 + ${j}u`;
  };
  const vecCol = (g: number) => (v.strided ? `col0 + ${g * v.wx * 4}u` : `col0 + ${g * 4}u`);
  const col0 = v.strided ? `wg.x * ${v.wx * v.tn}u + lid.x * 4u` : `gid.x * ${v.tn}u`;
  const body: string[] = [];
  const a = (i: number, kk: number) => (transA ? `at${kk}_${Math.floor(i / 4)}[${i % 4}]` : `av${i}[${kk}]`);
  if (transA) {
    for (let kk = 0; kk < 4; kk++)
      for (let ib = 0; ib < v.tm / 4; ib++)
        body.push(`    let at${kk}_${ib} = A4[((k + ${kk}u) * d.M + min(row0 + ${ib * 4}u, d.M - 4u)) / 4u];`);
  } else {
    for (let i = 0; i < v.tm; i++) body.push(`    let av${i} = A4[(min(row0 + ${i}u, d.M - 1u) * d.K + k) / 4u];`);
  }
  const b = (kk: number, g: number) => (transB ? `vec4<f32>(bt${g * 4}[${kk}], bt${g * 4 + 1}[${kk}], bt${g * 4 + 2}[${kk}], bt${g * 4 + 3}[${kk}])` : `b${kk}_${g}`);
  if (transB) {
    for (let j = 0; j < v.tn; j++) body.push(`    let bt${j} = B4[(min(${colOf(j)}, d.N - 1u) * d.K + k) / 4u];`);
  } else {
    for (let kk = 0; kk < 4; kk++)
      for (let g = 0; g < nv; g++) body.push(`    let b${kk}_${g} = B4[((k + ${kk}u) * d.N + min(${vecCol(g)}, d.N - 4u)) / 4u];`);
  }
  for (let kk = 0; kk < 4; kk++)
    for (let i = 0; i < v.tm; i++)
      for (let g = 0; g < nv; g++) body.push(`    acc${i}_${g} = fma(vec4<f32>(${a(i, kk)}), ${b(kk, g)}, acc${i}_${g});`);
  const acc: string[] = [];
  for (let i = 0; i < v.tm; i++) for (let g = 0; g < nv; g++) acc.push(`  var acc${i}_${g} = vec4<f32>(0.0);`);
  const out: string[] = [];
  for (let i = 0; i < v.tm; i++) {
    out.push(`  if (row0 + ${i}u < d.M) {`);
    for (let j = 0; j < v.tn; j++) out.push(`    if (${colOf(j)} < d.N) { store(row0 + ${i}u, ${colOf(j)}, acc${i}_${Math.floor(j / 4)}[${j % 4}]); }`);
    out.push('  }');
  }
  return `
struct Dims { M: u32, N: u32, K: u32, flags: u32 }
@group(0) @binding(0) var<storage, read> A4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> d: Dims;
${storeFn}
@compute @workgroup_size(${v.wx}, ${v.wy})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row0 = gid.y * ${v.tm}u;
  let col0 = ${col0};
  if (row0 >= d.M || col0 >= d.N) { return; }
${acc.join('\n')}
  for (var k = 0u; k < d.K; k += 4u) {
${body.join('\n')}
  }
${out.join('\n')}
}
`;
}

export function matmulShader(v: MatmulVariant, transA: boolean, transB: boolean): string {
  if (v.kind === 'vec4') return vec4Shader(v, transA, transB);
  return v.kind === 'direct' ? directShader(v, transA, transB) : sharedShader(v, transA, transB);
}

export function variantKey(v: MatmulVariant): string {
  return `${v.kind}${v.strided ? '-strided' : ''}:${v.wx}x${v.wy}:${v.tm}x${v.tn}:${v.bk}`;
}

export function matmul(gpu: Gpu, args: MatmulArgs, pick?: (s: MatmulShape) => MatmulVariant): Dispatch {
  const { M, N, K, a, b, c } = args;
  const transA = !!args.transA;
  const transB = !!args.transB;
  if (a.length < M * K) throw new Error(`matmul: A holds ${a.length} values, needs ${M}×${K}`);
  if (b.length < K * N) throw new Error(`matmul: B holds ${b.length} values, needs ${K}×${N}`);
  if (c.length < M * N) throw new Error(`matmul: C holds ${c.length} values, needs ${M}×${N}`);
  if (args.bias && args.bias.length < N) throw new Error(`matmul: bias holds ${args.bias.length} values, needs ${N}`);
  const v = args.variant ?? pick?.({ M, N, K, transA, transB }) ?? DEFAULT_VARIANT;
  if (!variantFits(v, { M, N, K, transA, transB })) throw new Error(`matmul: variant ${variantKey(v)} does not fit ${M}x${N}x${K}`);
  const flags = (args.accumulate ? 1 : 0) | (args.bias ? 2 : 0);
  const dims = gpu.uniform([M, N, K, flags], 'matmul dims');
  const wg: [number, number, number] = [groups(N, v.wx * v.tn), groups(M, v.wy * v.tm), 1];
  return gpu.dispatch(
    `matmul ${M}x${N}x${K}${transA ? ' tA' : ''}${transB ? ' tB' : ''}`,
    matmulShader(v, transA, transB),
    [a, b, args.bias ?? a, c, dims],
    wg,
  );
}
