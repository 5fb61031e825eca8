// C[M,N] (+)= op(A)·op(B) (+ bias[N]), op = identity or transpose, row-major storage with
// optional leading dimensions and a two-level batch (for per-head attention products that read
// q, k, v straight out of the packed qkv tensor). Each invocation computes a TM×TN register block
// of C. Three generated families:
//  - 'direct': every invocation streams its rows of A and columns of B straight from memory.
//    On CPU adapters (lavapipe, SwiftShader) memory is cached anyway, so skipping workgroup
//    memory and barriers wins.
//  - 'shared': the workgroup stages BK-deep tiles of A and B in workgroup memory first, the
//    classic GPU tiling that cuts global-memory traffic on discrete GPUs.
//  - 'vec4': like 'direct' with 4-wide loads and vec4 accumulators (needs 4-aligned strides).
// 'strided' variants space an invocation's columns WX (or 4·WX) apart, so neighbouring
// invocations (SIMD lanes on CPU adapters) read neighbouring addresses of B.
// The best variant for a shape is picked by measurement (see autotune.ts).
import { type Dispatch, type Gpu, type View, groups } from './context.js';

/** Batch index z = outer·inner + innerIndex; a matrix starts at base + outer·strides[0] + inner·strides[1]. */
export interface Batch {
  outer: number;
  inner: number;
  a: [number, number];
  b: [number, number];
  c: [number, number];
}

export interface MatmulShape {
  M: number;
  N: number;
  K: number;
  transA?: boolean; // A stored as [K, M]
  transB?: boolean; // B stored as [N, K]
  /** Row strides in floats; default dense (K or M for A, N or K for B, N for C). */
  lda?: number;
  ldb?: number;
  ldc?: number;
  /** First element of A, B, C inside their views, in floats. */
  base?: [number, number, number];
  batch?: Batch;
}

export interface MatmulVariant {
  kind: 'direct' | 'shared' | 'vec4';
  wx: number; // workgroup width (columns of register blocks)
  wy: number; // workgroup height
  tm: number; // rows per invocation
  tn: number; // columns per invocation
  bk: number; // K-tile depth ('shared' only)
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

interface Strides {
  lda: number;
  ldb: number;
  ldc: number;
  base: [number, number, number];
  batch: Batch;
}

function strides(s: MatmulShape): Strides {
  return {
    lda: s.lda ?? (s.transA ? s.M : s.K),
    ldb: s.ldb ?? (s.transB ? s.K : s.N),
    ldc: s.ldc ?? s.N,
    base: s.base ?? [0, 0, 0],
    batch: s.batch ?? { outer: 1, inner: 1, a: [0, 0], b: [0, 0], c: [0, 0] },
  };
}

/** 'vec4' variants read 4 values per load: the loaded rows, strides and offsets must be 4-aligned. */
export function variantFits(v: MatmulVariant, s: MatmulShape): boolean {
  if (v.kind !== 'vec4') return true;
  const st = strides(s);
  const al = (...xs: number[]) => xs.every((x) => x % 4 === 0);
  const aOk = al(st.lda, st.base[0], ...st.batch.a) && (s.transA ? al(s.M) && v.tm % 4 === 0 : true);
  const bOk = al(st.ldb, st.base[1], ...st.batch.b) && (s.transB ? true : al(s.N));
  return aOk && bOk && al(s.K) && v.tn % 4 === 0;
}

const header = (vecA: boolean, vecB: boolean) => `
struct Dims { M: u32, N: u32, K: u32, flags: u32, lda: u32, ldb: u32, ldc: u32, inner: u32,
  a0: u32, b0: u32, c0: u32, pad: u32, aO: u32, aI: u32, bO: u32, bI: u32, cO: u32, cI: u32 }
@group(0) @binding(0) var<storage, read> A${vecA ? '4: array<vec4<f32>>' : ': array<f32>'};
@group(0) @binding(1) var<storage, read> B${vecB ? '4: array<vec4<f32>>' : ': array<f32>'};
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> C: array<f32>;
@group(0) @binding(4) var<uniform> d: Dims;
var<private> offC: u32;
fn store(r: u32, c: u32, v: f32) {
  var x = v;
  if ((d.flags & 2u) != 0u) { x += bias[c]; }
  let i = offC + r * d.ldc + c;
  if ((d.flags & 1u) != 0u) { x += C[i]; }
  C[i] = x;
}
`;

const builtins = '@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>';

// Per-batch offsets; out-of-range rows/columns read a clamped (valid) index and are never stored,
// so the inner loops carry no branches.
const prologue = `
  let zo = wg.z / d.inner;
  let zi = wg.z % d.inner;
  let offA = d.a0 + zo * d.aO + zi * d.aI;
  let offB = d.b0 + zo * d.bO + zi * d.bI;
  offC = d.c0 + zo * d.cO + zi * d.cI;`;

const aIndex = (transA: boolean, r: string, k: string) => (transA ? `offA + ${k} * d.lda + ${r}` : `offA + ${r} * d.lda + ${k}`);
const bIndex = (transB: boolean, k: string, c: string) => (transB ? `offB + ${c} * d.ldb + ${k}` : `offB + ${k} * d.ldb + ${c}`);

function scalarBlock(v: MatmulVariant) {
  const acc: string[] = [];
  const fma: string[] = [];
  const out: string[] = [];
  for (let i = 0; i < v.tm; i++) for (let j = 0; j < v.tn; j++) acc.push(`  var acc${i}_${j} = 0.0;`);
  for (let i = 0; i < v.tm; i++) for (let j = 0; j < v.tn; j++) fma.push(`    acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`);
  return { acc: acc.join('\n'), fma: fma.join('\n'), out };
}

function epilogue(v: MatmulVariant, col: (j: number) => string, value: (i: number, j: number) => string): string {
  const lines: string[] = [];
  for (let i = 0; i < v.tm; i++) {
    lines.push(`  if (row0 + ${i}u < d.M) {`);
    for (let j = 0; j < v.tn; j++) lines.push(`    if (${col(j)} < d.N) { store(row0 + ${i}u, ${col(j)}, ${value(i, j)}); }`);
    lines.push('  }');
  }
  return lines.join('\n');
}

function directShader(v: MatmulVariant, transA: boolean, transB: boolean): string {
  const col = (j: number) => (v.strided ? `col0 + ${j * v.wx}u` : `col0 + ${j}u`);
  const col0 = v.strided ? `wg.x * ${v.wx * v.tn}u + lid.x` : `gid.x * ${v.tn}u`;
  const loads: string[] = [];
  const clamps: string[] = [];
  for (let i = 0; i < v.tm; i++) clamps.push(`  let r${i} = min(row0 + ${i}u, d.M - 1u);`);
  for (let j = 0; j < v.tn; j++) clamps.push(`  let c${j} = min(${col(j)}, d.N - 1u);`);
  for (let i = 0; i < v.tm; i++) loads.push(`    let a${i} = A[${aIndex(transA, `r${i}`, 'k')}];`);
  for (let j = 0; j < v.tn; j++) loads.push(`    let b${j} = B[${bIndex(transB, 'k', `c${j}`)}];`);
  const blk = scalarBlock(v);
  return `${header(false, false)}
@compute @workgroup_size(${v.wx}, ${v.wy})
fn main(${builtins}) {
  let row0 = ${v.wy === 1 ? 'wg.y' : 'gid.y'} * ${v.tm}u;
  let col0 = ${col0};
  if (row0 >= d.M || col0 >= d.N) { return; }
${prologue}
${clamps.join('\n')}
${blk.acc}
  for (var k = 0u; k < d.K; k++) {
${loads.join('\n')}
${blk.fma}
  }
${epilogue(v, col, (i, j) => `acc${i}_${j}`)}
}
`;
}

function sharedShader(v: MatmulVariant, transA: boolean, transB: boolean): string {
  const BM = v.wy * v.tm;
  const BN = v.wx * v.tn;
  const BK = v.bk;
  const threads = v.wx * v.wy;
  const loads: string[] = [];
  for (let i = 0; i < v.tm; i++) loads.push(`      let a${i} = As[kk * ${BM}u + ly * ${v.tm}u + ${i}u];`);
  for (let j = 0; j < v.tn; j++) loads.push(`      let b${j} = Bs[kk * ${BN}u + lx * ${v.tn}u + ${j}u];`);
  const blk = scalarBlock(v);
  return `${header(false, false)}
var<workgroup> As: array<f32, ${BK * BM}>; // [BK][BM]
var<workgroup> Bs: array<f32, ${BK * BN}>; // [BK][BN]
@compute @workgroup_size(${v.wx}, ${v.wy})
fn main(${builtins}) {
  let lx = lid.x;
  let ly = lid.y;
  let tid = ly * ${v.wx}u + lx;
  let tileRow = wg.y * ${BM}u;
  let tileCol = wg.x * ${BN}u;
  let row0 = tileRow + ly * ${v.tm}u;
  let col0 = tileCol + lx * ${v.tn}u;
${prologue}
${blk.acc}
  for (var k0 = 0u; k0 < d.K; k0 += ${BK}u) {
    for (var e = tid; e < ${BK * BM}u; e += ${threads}u) {
      let r = min(tileRow + e % ${BM}u, d.M - 1u);
      let k = k0 + e / ${BM}u;
      As[e] = select(0.0, A[${aIndex(transA, 'r', 'min(k, d.K - 1u)')}], k < d.K);
    }
    for (var e = tid; e < ${BK * BN}u; e += ${threads}u) {
      let c = min(tileCol + e % ${BN}u, d.N - 1u);
      let k = k0 + e / ${BN}u;
      Bs[e] = select(0.0, B[${bIndex(transB, 'min(k, d.K - 1u)', 'c')}], k < d.K);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
${loads.join('\n')}
${blk.fma}
    }
    workgroupBarrier();
  }
  if (row0 >= d.M || col0 >= d.N) { return; }
${epilogue(
  v,
  (j) => `col0 + ${j}u`,
  (i, j) => `acc${i}_${j}`,
)}
}
`;
}

function vec4Shader(v: MatmulVariant, transA: boolean, transB: boolean): string {
  const nv = v.tn / 4;
  const colOf = (j: number) => (v.strided ? `col0 + ${Math.floor(j / 4) * v.wx * 4 + (j % 4)}u` : `col0 + ${j}u`);
  const vecCol = (g: number) => (v.strided ? `col0 + ${g * v.wx * 4}u` : `col0 + ${g * 4}u`);
  const col0 = v.strided ? `wg.x * ${v.wx * v.tn}u + lid.x * 4u` : `gid.x * ${v.tn}u`;
  const body: string[] = [];
  // A: without transpose, 4 consecutive k of one row; transposed, 4 consecutive rows of one k.
  if (transA) {
    for (let kk = 0; kk < 4; kk++)
      for (let ib = 0; ib < v.tm / 4; ib++) body.push(`    let at${kk}_${ib} = A4[(offA + (k + ${kk}u) * d.lda + min(row0 + ${ib * 4}u, d.M - 4u)) / 4u];`);
  } else {
    for (let i = 0; i < v.tm; i++) body.push(`    let av${i} = A4[(offA + min(row0 + ${i}u, d.M - 1u) * d.lda + k) / 4u];`);
  }
  const a = (i: number, kk: number) => (transA ? `at${kk}_${Math.floor(i / 4)}[${i % 4}]` : `av${i}[${kk}]`);
  // B: without transpose, 4 consecutive columns of one k; transposed, 4 consecutive k of one column.
  if (transB) {
    for (let j = 0; j < v.tn; j++) body.push(`    let bt${j} = B4[(offB + min(${colOf(j)}, d.N - 1u) * d.ldb + k) / 4u];`);
  } else {
    for (let kk = 0; kk < 4; kk++) for (let g = 0; g < nv; g++) body.push(`    let b${kk}_${g} = B4[(offB + (k + ${kk}u) * d.ldb + min(${vecCol(g)}, d.N - 4u)) / 4u];`);
  }
  const b = (kk: number, g: number) => (transB ? `vec4<f32>(bt${g * 4}[${kk}], bt${g * 4 + 1}[${kk}], bt${g * 4 + 2}[${kk}], bt${g * 4 + 3}[${kk}])` : `b${kk}_${g}`);
  for (let kk = 0; kk < 4; kk++)
    for (let i = 0; i < v.tm; i++) for (let g = 0; g < nv; g++) body.push(`    acc${i}_${g} = fma(vec4<f32>(${a(i, kk)}), ${b(kk, g)}, acc${i}_${g});`);
  const acc: string[] = [];
  for (let i = 0; i < v.tm; i++) for (let g = 0; g < nv; g++) acc.push(`  var acc${i}_${g} = vec4<f32>(0.0);`);
  return `${header(true, true)}
@compute @workgroup_size(${v.wx}, ${v.wy})
fn main(${builtins}) {
  let row0 = gid.y * ${v.tm}u;
  let col0 = ${col0};
  if (row0 >= d.M || col0 >= d.N) { return; }
${prologue}
${acc.join('\n')}
  for (var k = 0u; k < d.K; k += 4u) {
${body.join('\n')}
  }
${epilogue(v, colOf, (i, j) => `acc${i}_${Math.floor(j / 4)}[${j % 4}]`)}
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

/** Index one past the last element a matrix touches, to check it lies inside its view. */
function extent(rows: number, cols: number, ld: number, base: number, strides: [number, number], b: Batch): number {
  return base + (b.outer - 1) * strides[0] + (b.inner - 1) * strides[1] + (rows - 1) * ld + cols;
}

/** Floats each operand must hold for a shape (strides, offsets and batch included). */
export function matmulExtents(s: MatmulShape): { a: number; b: number; c: number } {
  const st = strides(s);
  const bt = st.batch;
  return {
    a: s.transA ? extent(s.K, s.M, st.lda, st.base[0], bt.a, bt) : extent(s.M, s.K, st.lda, st.base[0], bt.a, bt),
    b: s.transB ? extent(s.N, s.K, st.ldb, st.base[1], bt.b, bt) : extent(s.K, s.N, st.ldb, st.base[1], bt.b, bt),
    c: extent(s.M, s.N, st.ldc, st.base[2], bt.c, bt),
  };
}

export function matmul(gpu: Gpu, args: MatmulArgs, pick?: (s: MatmulShape) => MatmulVariant): Dispatch {
  const { M, N, K, a, b, c } = args;
  const transA = !!args.transA;
  const transB = !!args.transB;
  const st = strides(args);
  const bt = st.batch;
  const need = (name: string, view: View, n: number) => {
    if (view.length < n) throw new Error(`matmul: ${name} holds ${view.length} values, the ${M}×${N}×${K} product reads ${n}`);
  };
  const ext = matmulExtents(args);
  need('A', a, ext.a);
  need('B', b, ext.b);
  need('C', c, ext.c);
  if (args.bias) need('bias', args.bias, N);
  const v = args.variant ?? pick?.(args) ?? DEFAULT_VARIANT;
  if (!variantFits(v, args)) throw new Error(`matmul: variant ${variantKey(v)} does not fit ${M}x${N}x${K}`);
  const flags = (args.accumulate ? 1 : 0) | (args.bias ? 2 : 0);
  const dims = gpu.uniform([M, N, K, flags, st.lda, st.ldb, st.ldc, bt.inner, ...st.base, 0, ...bt.a, ...bt.b, ...bt.c], 'matmul dims');
  const wg: [number, number, number] = [groups(N, v.wx * v.tn), groups(M, v.wy * v.tm), bt.outer * bt.inner];
  return gpu.dispatch(
    `matmul ${M}x${N}x${K}${transA ? ' tA' : ''}${transB ? ' tB' : ''}${bt.outer * bt.inner > 1 ? ` ×${bt.outer * bt.inner}` : ''}`,
    matmulShader(v, transA, transB),
    [a, b, args.bias ?? a, c, dims],
    wg,
  );
}
