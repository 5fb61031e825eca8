// Gradient checks of the float64 CPU reference (kernels/reference.ts, shared/engine/reference-block.ts).
// Every backward is compared with central finite differences of its own forward: for random
// seeded inputs x and a random projection w, L(x) = Σ w ⊙ f(x); the backward fed w as the
// upstream gradient must equal (L(x + h·eᵢ) − L(x − h·eᵢ)) / 2h.
//
// Tolerances (all float64):
//   H = 1e-5            finite-difference step.
//   RTOL = 1e-6         per-op backward: max over checked elements of the relative error below.
//   RTOL_BLOCK = 1e-6   the whole ReferenceBlock (same bound; the composition is still smooth).
//   Relative error of element i: |aᵢ − nᵢ| / max(|aᵢ|, |nᵢ|, FLOOR·s), s = max over the checked
//   elements of max(|aᵢ|, |nᵢ|), FLOOR = 1e-3. The floor only matters for gradients a thousand
//   times smaller than the largest one (e.g. GELU at x ≈ −6, ~1e-9), where the central
//   difference's round-off (≈ ε·|L|/h) would otherwise dominate a purely relative comparison.
// The truncation error of a central difference is O(h²·f‴) ≈ 1e-10 here and round-off
// O(ε·|L|/h) ≈ 1e-10: observed maxima are 1e-10..1.2e-7 (largest: attention with a peaked
// softmax, GELU, cross-entropy, the whole block), so RTOL keeps a margin of ≥ 8×; a wrong
// gradient (even one scaled by 1.01) is off by ≥ 1e-2, far over it (see the meta-checks).
import { describe, expect, it } from 'vitest';
import * as r from '../kernels/reference.js';
import { type BlockConfig, initParams, layout } from '../shared/engine/model.js';
import { ReferenceBlock } from '../shared/engine/reference-block.js';
import { frozenTable, orthonormalBasis } from '../shared/engine/subspace.js';
import { gaussian, rng } from '../shared/base/random.js';

type Vec = Float64Array;

const H = 1e-5;
const RTOL = 1e-6;
const RTOL_BLOCK = 1e-6;
const FLOOR = 1e-3;

// ---------------------------------------------------------------------------------------------
// Helpers

function randn(n: number, seed: number, scale = 1): Vec {
  const g = gaussian(rng(seed));
  return Float64Array.from({ length: n }, () => g() * scale);
}

function randInts(n: number, max: number, seed: number): number[] {
  const rand = rng(seed);
  return Array.from({ length: n }, () => Math.floor(rand() * max));
}

/** count distinct indices in [0, n), seeded; all of them when n ≤ count. */
function pick(n: number, count: number, seed: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (n <= count) return all;
  const rand = rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, count).sort((a, b) => a - b);
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

interface FdResult {
  /** Largest relative error over the checked elements (definition at the top of the file). */
  maxErr: number;
  worst: number;
  analytic: number;
  numeric: number;
  checked: number;
  /** Largest |gradient| seen: guards against a vacuous check of an all-zero gradient. */
  scale: number;
}

/**
 * Central differences of loss() in x[i] for each i of indices (x is perturbed in place and
 * restored), compared with analytic[i].
 */
function fdCheck(x: Vec, loss: () => number, analytic: ArrayLike<number>, indices?: number[], h = H): FdResult {
  const idx = indices ?? Array.from({ length: x.length }, (_, i) => i);
  expect(analytic.length).toBe(x.length);
  const num = idx.map((i) => {
    const x0 = x[i];
    x[i] = x0 + h;
    const lp = loss();
    x[i] = x0 - h;
    const lm = loss();
    x[i] = x0;
    return (lp - lm) / (2 * h);
  });
  let scale = 0;
  for (const v of [...idx.map((i) => analytic[i]), ...num]) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  const res: FdResult = { maxErr: 0, worst: -1, analytic: NaN, numeric: NaN, checked: idx.length, scale };
  idx.forEach((i, k) => {
    const a = analytic[i];
    const n = num[k];
    const denom = Math.max(Math.abs(a), Math.abs(n), FLOOR * scale);
    // A non-finite gradient (NaN, ±Infinity) on either side is the worst possible error.
    const err = !Number.isFinite(a) || !Number.isFinite(n) ? Infinity : denom > 0 ? Math.abs(a - n) / denom : 0;
    if (err > res.maxErr || res.worst < 0) Object.assign(res, { maxErr: err, worst: i, analytic: a, numeric: n });
  });
  return res;
}

function expectGrad(label: string, res: FdResult, tol = RTOL, minChecked = 1): void {
  if (process.env.FD_VERBOSE) console.log(`${label}: max rel err ${res.maxErr.toExponential(2)} over ${res.checked} (scale ${res.scale.toExponential(2)})`);
  const msg = `${label}: max rel err ${res.maxErr.toExponential(2)} at [${res.worst}] analytic ${res.analytic} vs FD ${res.numeric} (${res.checked} checked, tol ${tol})`;
  expect(res.checked, msg).toBeGreaterThanOrEqual(minChecked);
  expect(res.scale, `${label}: gradient is identically zero, the check would be vacuous`).not.toBeLessThanOrEqual(1e-8);
  expect(res.maxErr, msg).toBeLessThanOrEqual(tol);
}

// ---------------------------------------------------------------------------------------------
// The comparator can fail

describe('FD comparator (meta-checks: a wrong gradient is caught)', () => {
  const [B, T, Hh, d] = [2, 5, 2, 6];
  const qkv = randn(B * T * 3 * d, 901);
  const w = randn(B * T * d, 902);
  const loss = () => dot(w, r.attentionForward(qkv, B, T, Hh, d).out);
  const { probs } = r.attentionForward(qkv, B, T, Hh, d);
  const good = r.attentionBackward(w, qkv, probs, B, T, Hh, d);

  it('accepts the right gradient', () => {
    expectGrad('attention dqkv', fdCheck(qkv, loss, good));
  });

  it('rejects a gradient scaled by 1.01', () => {
    const res = fdCheck(
      qkv,
      loss,
      good.map((g) => g * 1.01),
    );
    expect(res.maxErr).toBeGreaterThan(100 * RTOL);
    expect(() => expectGrad('scaled', res)).toThrow();
  });

  it('rejects a single element off by 1e-4 (relative), a sign flip and an all-zero gradient', () => {
    const i = 37;
    const one = Float64Array.from(good);
    one[i] *= 1 + 1e-4;
    const r1 = fdCheck(qkv, loss, one);
    expect(r1.worst).toBe(i);
    expect(() => expectGrad('one element', r1)).toThrow();
    const flip = Float64Array.from(good);
    flip[i] = -flip[i];
    expect(() => expectGrad('sign flip', fdCheck(qkv, loss, flip))).toThrow();
    expect(() => expectGrad('zero', fdCheck(qkv, loss, new Float64Array(good.length)))).toThrow();
  });

  it('rejects a NaN and a vacuous all-zero comparison', () => {
    const nan = Float64Array.from(good);
    nan[3] = NaN;
    const rn = fdCheck(qkv, loss, nan);
    expect(rn.maxErr).toBe(Infinity);
    expect(rn.worst).toBe(3);
    expect(() => expectGrad('nan', rn)).toThrow();
    const z = new Float64Array(4);
    expect(() =>
      expectGrad(
        'vacuous',
        fdCheck(z, () => 0, new Float64Array(4)),
      ),
    ).toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// matmul, its backward (itself matmuls with transposes), bias via colsum

describe('matmul', () => {
  const [M, N, K] = [5, 7, 3];
  // dC = w (upstream, [M,N]). For C = op(A)·op(B):
  //   NN  A[M,K] B[K,N]:  dA = w·Bᵀ          dB = Aᵀ·w
  //   NT  A[M,K] B[N,K]:  dA = w·B           dB = wᵀ·A
  //   TN  A[K,M] B[K,N]:  dA = B·wᵀ          dB = A·w
  //   TT  A[K,M] B[N,K]:  dA = Bᵀ·wᵀ         dB = wᵀ·Aᵀ
  const cases: { name: string; tA: boolean; tB: boolean; dA: (w: Vec, a: Vec, b: Vec) => Vec; dB: (w: Vec, a: Vec, b: Vec) => Vec }[] = [
    { name: 'NN', tA: false, tB: false, dA: (w, _a, b) => r.matmul(w, b, M, K, N, false, true), dB: (w, a) => r.matmul(a, w, K, N, M, true, false) },
    { name: 'NT', tA: false, tB: true, dA: (w, _a, b) => r.matmul(w, b, M, K, N, false, false), dB: (w, a) => r.matmul(w, a, N, K, M, true, false) },
    { name: 'TN', tA: true, tB: false, dA: (w, _a, b) => r.matmul(b, w, K, M, N, false, true), dB: (w, a) => r.matmul(a, w, K, N, M, false, false) },
    { name: 'TT', tA: true, tB: true, dA: (w, _a, b) => r.matmul(b, w, K, M, N, true, true), dB: (w, a) => r.matmul(w, a, N, K, M, true, true) },
  ];

  it('forward matches an explicit triple loop for every transpose combination', () => {
    const a = randn(M * K, 11);
    const b = randn(K * N, 12);
    const bias = randn(N, 13);
    // Explicit transposes of the stored operands.
    const aT = new Float64Array(K * M);
    for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) aT[k * M + i] = a[i * K + k];
    const bT = new Float64Array(N * K);
    for (let k = 0; k < K; k++) for (let j = 0; j < N; j++) bT[j * K + k] = b[k * N + j];
    const want = new Float64Array(M * N);
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        want[i * N + j] = bias[j];
        for (let k = 0; k < K; k++) want[i * N + j] += a[i * K + k] * b[k * N + j];
      }
    for (const [tA, tB] of [
      [false, false],
      [false, true],
      [true, false],
      [true, true],
    ]) {
      const c = r.matmul(tA ? aT : a, tB ? bT : b, M, N, K, tA, tB, bias);
      expect(maxAbsDiff(c, want), `trans ${tA} ${tB}`).toBeLessThan(1e-13);
    }
  });

  for (const c of cases) {
    it(`${c.name}: dA and dB (all elements) and the bias gradient colsum`, () => {
      const seed = 100 + cases.indexOf(c) * 10;
      const a = randn(M * K, seed);
      const b = randn(K * N, seed + 1);
      const bias = randn(N, seed + 2);
      const w = randn(M * N, seed + 3);
      const loss = () => dot(w, r.matmul(a, b, M, N, K, c.tA, c.tB, bias));
      expectGrad(`${c.name} dA`, fdCheck(a, loss, c.dA(w, a, b)), RTOL, M * K);
      expectGrad(`${c.name} dB`, fdCheck(b, loss, c.dB(w, a, b)), RTOL, K * N);
      expectGrad(`${c.name} dbias`, fdCheck(bias, loss, r.colsum(w, M, N)), RTOL, N);
    });
  }

  it('add: gradient passes to both operands', () => {
    const a = randn(12, 31);
    const b = randn(12, 32);
    const w = randn(12, 33);
    const loss = () => dot(w, r.add(a, b));
    expectGrad('add da', fdCheck(a, loss, w));
    expectGrad('add db', fdCheck(b, loss, w));
  });
});

// ---------------------------------------------------------------------------------------------

describe('embedding', () => {
  it('dwte and dwpe with repeated tokens (all elements)', () => {
    const [V, T, B, d] = [6, 3, 3, 4];
    // Token 1 and 4 repeat (also at the same position), tokens 2, 3, 5 never occur.
    const tokens = [1, 1, 4, 0, 1, 1, 4, 4, 4];
    const wte = randn(V * d, 201);
    const wpe = randn(T * d, 202);
    const w = randn(B * T * d, 203);
    const loss = () => dot(w, r.embeddingForward(wte, wpe, tokens, T, d));
    const { dwte, dwpe } = r.embeddingBackward(w, tokens, V, T, d);
    expectGrad('dwte', fdCheck(wte, loss, dwte), RTOL, V * d);
    expectGrad('dwpe', fdCheck(wpe, loss, dwpe), RTOL, T * d);
    // Rows of absent tokens get exactly nothing.
    for (const t of [2, 3, 5]) for (let j = 0; j < d; j++) expect(dwte[t * d + j]).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('layerNorm', () => {
  for (const [N, d] of [
    [3, 5],
    [4, 7],
    [2, 12],
  ]) {
    it(`dx, dgain, dbias for N=${N}, d=${d} (all elements)`, () => {
      const seed = 300 + N * 17 + d;
      // Offsets and scales per row so mean and variance matter.
      const x = randn(N * d, seed).map((v, i) => 2.5 * v + (Math.floor(i / d) - 1) * 3);
      const g = randn(d, seed + 1).map((v) => 1 + 0.5 * v);
      const b = randn(d, seed + 2, 0.5);
      const w = randn(N * d, seed + 3);
      const loss = () => dot(w, r.layerNormForward(x, g, b, N, d).y);
      const f = r.layerNormForward(x, g, b, N, d);
      const back = r.layerNormBackward(w, x, g, f.mean, f.rstd, N, d);
      expectGrad('ln dx', fdCheck(x, loss, back.dx), RTOL, N * d);
      expectGrad('ln dg', fdCheck(g, loss, back.dg), RTOL, d);
      expectGrad('ln db', fdCheck(b, loss, back.db), RTOL, d);
    });
  }

  it('forward statistics: normalised rows have mean 0 and variance v/(v+eps)', () => {
    const [N, d] = [3, 7];
    const x = randn(N * d, 350, 2);
    const { y, mean, rstd } = r.layerNormForward(x, new Float64Array(d).fill(1), new Float64Array(d), N, d);
    for (let n = 0; n < N; n++) {
      const row = x.subarray(n * d, n * d + d);
      const m = row.reduce((a, v) => a + v, 0) / d;
      const v = row.reduce((a, u) => a + (u - m) ** 2, 0) / d;
      expect(mean[n]).toBeCloseTo(m, 14);
      expect(rstd[n]).toBeCloseTo(1 / Math.sqrt(v + r.LN_EPS), 12);
      const yr = y.subarray(n * d, n * d + d);
      expect(yr.reduce((a, u) => a + u, 0) / d).toBeCloseTo(0, 13);
      expect(yr.reduce((a, u) => a + u * u, 0) / d).toBeCloseTo(v / (v + r.LN_EPS), 12);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('gelu', () => {
  it('geluBackward over x in [-6, 6] (all elements)', () => {
    const grid = Array.from({ length: 49 }, (_, i) => -6 + i * 0.25);
    const x = Float64Array.from([...grid, ...randn(16, 401, 2.5), 0, 1e-3, -1e-3]);
    const w = randn(x.length, 402);
    const loss = () => dot(w, r.gelu(x));
    expectGrad('gelu dx', fdCheck(x, loss, r.geluBackward(w, x)), RTOL, x.length);
  });

  it('forward: known values of the tanh approximation', () => {
    const y = r.gelu(r.f64([0, 1, -1, 6, -6]));
    expect(y[0]).toBe(0);
    // 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) evaluated by hand at ±1.
    const t1 = Math.tanh(Math.sqrt(2 / Math.PI) * 1.044715);
    expect(y[1]).toBeCloseTo(0.5 * (1 + t1), 15);
    expect(y[2]).toBeCloseTo(-0.5 * (1 - t1), 15);
    expect(y[3]).toBeCloseTo(6, 9);
    expect(Math.abs(y[4])).toBeLessThan(1e-9);
  });
});

// ---------------------------------------------------------------------------------------------

describe('attention', () => {
  const [B, T, Hh, d] = [2, 5, 2, 6];

  it('dqkv for B=2, T=5, H=2, d=6 (all 180 elements)', () => {
    const qkv = randn(B * T * 3 * d, 501, 1.5);
    const w = randn(B * T * d, 502);
    const loss = () => dot(w, r.attentionForward(qkv, B, T, Hh, d).out);
    const { probs } = r.attentionForward(qkv, B, T, Hh, d);
    expectGrad('attention dqkv', fdCheck(qkv, loss, r.attentionBackward(w, qkv, probs, B, T, Hh, d)), RTOL, B * T * 3 * d);
  });

  it('dqkv with one head (hd = d) and with peaked softmax', () => {
    const qkv = randn(1 * 4 * 3 * 4, 511, 4);
    const w = randn(1 * 4 * 4, 512);
    const loss = () => dot(w, r.attentionForward(qkv, 1, 4, 1, 4).out);
    const { probs } = r.attentionForward(qkv, 1, 4, 1, 4);
    expectGrad('attention dqkv H=1', fdCheck(qkv, loss, r.attentionBackward(w, qkv, probs, 1, 4, 1, 4)), RTOL, 48);
  });

  it('forward: causal, probs rows sum to 1 and vanish above the diagonal, position 0 copies v₀', () => {
    const qkv = randn(B * T * 3 * d, 521);
    const { out, probs } = r.attentionForward(qkv, B, T, Hh, d);
    for (let row = 0; row < B * Hh * T; row++) {
      const i = row % T;
      let s = 0;
      for (let j = 0; j < T; j++) {
        if (j > i) expect(probs[row * T + j]).toBe(0);
        s += probs[row * T + j];
      }
      expect(s).toBeCloseTo(1, 14);
    }
    for (let b = 0; b < B; b++) for (let e = 0; e < d; e++) expect(out[b * T * d + e]).toBe(qkv[b * T * 3 * d + 2 * d + e]);
    // Changing the last position changes no earlier output.
    const q2 = Float64Array.from(qkv);
    for (let c = 0; c < 3 * d; c++) q2[(T - 1) * 3 * d + c] += 1;
    const out2 = r.attentionForward(q2, B, T, Hh, d).out;
    for (let n = 0; n < T - 1; n++) for (let e = 0; e < d; e++) expect(out2[n * d + e]).toBe(out[n * d + e]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('crossEntropy', () => {
  it('dlogits (all elements), including a row with a large offset', () => {
    const [N, V] = [4, 6];
    const logits = randn(N * V, 601, 2);
    for (let v = 0; v < V; v++) logits[2 * V + v] += 40;
    const targets = [0, 5, 3, 3];
    const w0 = 0.7;
    const loss = () => w0 * r.crossEntropy(logits, targets, N, V).loss;
    const { dlogits } = r.crossEntropy(logits, targets, N, V);
    expectGrad(
      'dlogits',
      fdCheck(
        logits,
        loss,
        dlogits.map((g) => w0 * g),
      ),
      RTOL,
      N * V,
    );
  });

  it('loss value is the mean of −log softmax at the targets', () => {
    const [N, V] = [3, 5];
    const logits = randn(N * V, 611, 3);
    const targets = [4, 0, 2];
    let want = 0;
    for (let n = 0; n < N; n++) {
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(logits[n * V + v]);
      want -= Math.log(Math.exp(logits[n * V + targets[n]]) / z);
    }
    expect(r.crossEntropy(logits, targets, N, V).loss).toBeCloseTo(want / N, 13);
  });
});

// ---------------------------------------------------------------------------------------------

describe('subspace', () => {
  /** Columns of the Sylvester–Hadamard matrix H₁₆/4: entries ±1/4, exactly orthonormal in binary floating point. */
  function hadamardBasis(cols: number[]): Vec {
    const d = 16;
    const u = new Float64Array(d * cols.length);
    for (let j = 0; j < d; j++) {
      cols.forEach((c, a) => {
        let bits = j & c;
        let parity = 0;
        while (bits) {
          parity ^= bits & 1;
          bits >>= 1;
        }
        u[j * cols.length + a] = parity ? -0.25 : 0.25;
      });
    }
    return u;
  }

  function gram(u: ArrayLike<number>, d: number, k: number): number {
    let worst = 0;
    for (let a = 0; a < k; a++)
      for (let b = 0; b < k; b++) {
        let s = 0;
        for (let j = 0; j < d; j++) s += u[j * k + a] * u[j * k + b];
        worst = Math.max(worst, Math.abs(s - (a === b ? 1 : 0)));
      }
    return worst;
  }

  it('orthonormalBasis: UᵀU = I up to the float32 rounding of its output', () => {
    // orthonormalBasis orthonormalises in float64 but returns a Float32Array, so every entry
    // carries a relative rounding error ≤ 2⁻²⁴ and |(UᵀU − I)_ab| ≤ 2·2⁻²⁴·‖u_a‖‖u_b‖ = 2⁻²³.
    // (UᵀU = I to 1e-12 holds only before that rounding; see hadamardBasis for the exact case.)
    const bound = 2 ** -23 + 1e-14;
    for (const [d, k, seed] of [
      [16, 5, 7],
      [20, 6, 42],
      [6, 6, 3],
      [9, 1, 11],
    ]) {
      const u = orthonormalBasis(d, k, seed);
      expect(u.length).toBe(d * k);
      expect(gram(u, d, k), `d=${d} k=${k}`).toBeLessThanOrEqual(bound);
    }
    expect(gram(hadamardBasis([0, 3, 5, 9, 14]), 16, 5)).toBe(0);
  });

  it('orthonormalBasis is deterministic per seed, differs across seeds, rejects a bad rank', () => {
    const a = orthonormalBasis(12, 4, 5);
    const b = orthonormalBasis(12, 4, 5);
    expect(Array.from(a)).toEqual(Array.from(b));
    const c = orthonormalBasis(12, 4, 6);
    expect(maxAbsDiff(a, c)).toBeGreaterThan(0.1);
    expect(() => orthonormalBasis(12, 0, 1)).toThrow();
    expect(() => orthonormalBasis(12, 13, 1)).toThrow();
    expect(() => orthonormalBasis(12, 2.5, 1)).toThrow();
    expect(Array.from(frozenTable(5, 4, 9))).toEqual(Array.from(frozenTable(5, 4, 9)));
    expect(maxAbsDiff(frozenTable(5, 4, 9), frozenTable(5, 4, 10))).toBeGreaterThan(1e-3);
  });

  it('decode(encode(x − F)) round trip is exact inside span(U) + F[tok] (exactly orthonormal U)', () => {
    const [N, d, V] = [7, 16, 5];
    const cols = [0, 3, 5, 9, 14];
    const k = cols.length;
    const u = hadamardBasis(cols);
    const f = { table: r.f64(frozenTable(V, d, 21)), tokens: randInts(N, V, 22) };
    const c = randn(N * k, 23);
    // x = U·c + F[tok], written out independently of subspaceDecode.
    const x = new Float64Array(N * d);
    for (let n = 0; n < N; n++)
      for (let j = 0; j < d; j++) {
        let s = f.table[f.tokens[n] * d + j];
        for (let a = 0; a < k; a++) s += u[j * k + a] * c[n * k + a];
        x[n * d + j] = s;
      }
    const enc = r.subspaceEncode(x, u, N, d, k, f);
    expect(maxAbsDiff(enc, c)).toBeLessThan(1e-12);
    expect(maxAbsDiff(r.subspaceDecode(enc, u, N, d, k, f), x)).toBeLessThan(1e-12);
    // Without F: the same with F = 0, and projecting a vector of the span changes nothing.
    const y = r.subspaceDecode(c, u, N, d, k);
    expect(maxAbsDiff(r.subspaceDecode(r.subspaceEncode(y, u, N, d, k), u, N, d, k), y)).toBeLessThan(1e-12);
    expect(maxAbsDiff(r.subspaceProject(y, u, N, d, k), y)).toBeLessThan(1e-12);
    // Projection is idempotent and removes exactly the orthogonal complement.
    const wv = randn(N * d, 24);
    const p1 = r.subspaceProject(wv, u, N, d, k);
    expect(maxAbsDiff(r.subspaceProject(p1, u, N, d, k), p1)).toBeLessThan(1e-12);
    expect(Math.abs(dot(p1, wv) - dot(p1, p1))).toBeLessThan(1e-12);
  });

  it('round trip with the seeded float32 basis holds to the float32 bound', () => {
    const [N, d, k, V] = [9, 20, 6, 7];
    const u = r.f64(orthonormalBasis(d, k, 42));
    const f = { table: r.f64(frozenTable(V, d, 42)), tokens: randInts(N, V, 3) };
    const c = randn(N * k, 31);
    const x = r.subspaceDecode(c, u, N, d, k, f);
    // ‖UᵀU − I‖ ≤ 2⁻²³ per entry, so the coefficients come back within k·2⁻²³·max|c| ≈ 1e-6·|c|.
    const back = r.subspaceEncode(x, u, N, d, k, f);
    expect(maxAbsDiff(back, c)).toBeLessThanOrEqual(k * 2 ** -23 * maxAbs(c) * 1.01);
  });

  it('backward of encode / decode / project (linear maps; all elements)', () => {
    const [N, d, k, V] = [4, 10, 3, 5];
    const u = r.f64(orthonormalBasis(d, k, 77));
    const f = { table: r.f64(frozenTable(V, d, 78)), tokens: randInts(N, V, 79) };
    // encode(x) = (x − F)·U: d/dx Σ w⊙encode = w·Uᵀ = decode(w) without F.
    const x = randn(N * d, 80);
    const wc = randn(N * k, 81);
    expectGrad(
      'encode dx',
      fdCheck(x, () => dot(wc, r.subspaceEncode(x, u, N, d, k, f)), r.subspaceDecode(wc, u, N, d, k)),
      RTOL,
      N * d,
    );
    // decode(c) = c·Uᵀ + F: d/dc Σ w⊙decode = w·U = encode(w) without F.
    const c = randn(N * k, 82);
    const wx = randn(N * d, 83);
    expectGrad(
      'decode dc',
      fdCheck(c, () => dot(wx, r.subspaceDecode(c, u, N, d, k, f)), r.subspaceEncode(wx, u, N, d, k)),
      RTOL,
      N * k,
    );
    // project(W) = W·U·Uᵀ is self-adjoint: d/dW Σ w⊙project(W) = project(w).
    const W = randn(N * d, 84);
    expectGrad(
      'project dW',
      fdCheck(W, () => dot(wx, r.subspaceProject(W, u, N, d, k)), r.subspaceProject(wx, u, N, d, k)),
      RTOL,
      N * d,
    );
  });
});

// ---------------------------------------------------------------------------------------------

describe('adamwStep', () => {
  const o: r.AdamW = { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.2, clip: 1 };

  it('single element, hand-derived: clipping, bias correction, decay only below decayEnd', () => {
    // p = 0.5, g = 3 > clip = 1: the global norm is 3, the clipped gradient 3·(1/3) = 1.
    // t = 1: m = 0.1·1 = 0.1, v = 0.01·1 = 0.01, m̂ = 0.1/0.1 = 1, v̂ = 0.01/0.01 = 1,
    // so the Adam direction is 1/(1 + 1e-8), and decay adds 0.2·0.5 = 0.1 when decayed.
    for (const decayEnd of [1, 0]) {
      const p = r.f64([0.5]);
      const g = r.f64([3]);
      const m = r.f64([0]);
      const v = r.f64([0]);
      const norm = r.adamwStep(p, g, m, v, 1, o, decayEnd);
      expect(norm).toBe(3);
      expect(m[0]).toBeCloseTo(0.1, 15);
      expect(v[0]).toBeCloseTo(0.01, 15);
      const decay = decayEnd > 0 ? 0.2 * 0.5 : 0;
      expect(p[0]).toBeCloseTo(0.5 - 0.1 * (1 / (1 + 1e-8) + decay), 14);
      expect(g[0]).toBe(3); // the gradient buffer itself is not modified
    }
    // Below the clip nothing is scaled: g = 0.5 → direction 0.5/(0.5 + 1e-8).
    const p = r.f64([0.5]);
    expect(r.adamwStep(p, r.f64([0.5]), r.f64([0]), r.f64([0]), 1, o, 1)).toBe(0.5);
    expect(p[0]).toBeCloseTo(0.5 - 0.1 * (0.5 / (0.5 + 1e-8) + 0.1), 14);
  });

  it('two elements, two steps: global-norm clipping, decayed and undecayed slots, moments', () => {
    const p = r.f64([0.5, -2]);
    const m = r.f64([0, 0]);
    const v = r.f64([0, 0]);
    // Step 1: g = (3, −4), norm 5 > 1 → clipped (0.6, −0.8). m̂ = g, v̂ = g², direction g/(|g| + eps).
    expect(r.adamwStep(p, r.f64([3, -4]), m, v, 1, o, 1)).toBe(5);
    const p1 = [0.5 - 0.1 * (0.6 / (0.6 + 1e-8) + 0.2 * 0.5), -2 - 0.1 * (-0.8 / (0.8 + 1e-8))];
    expect(p[0]).toBeCloseTo(p1[0], 14);
    expect(p[1]).toBeCloseTo(p1[1], 14);
    expect(m[0]).toBeCloseTo(0.06, 15);
    expect(m[1]).toBeCloseTo(-0.08, 15);
    expect(v[0]).toBeCloseTo(0.0036, 15);
    expect(v[1]).toBeCloseTo(0.0064, 15);
    // Step 2: g = (0.3, 0.1), norm √0.1 < 1, no clipping.
    const g2 = [0.3, 0.1];
    expect(r.adamwStep(p, r.f64(g2), m, v, 2, o, 1)).toBeCloseTo(Math.sqrt(0.1), 15);
    const m2 = [0.9 * 0.06 + 0.1 * 0.3, 0.9 * -0.08 + 0.1 * 0.1];
    const v2 = [0.99 * 0.0036 + 0.01 * 0.09, 0.99 * 0.0064 + 0.01 * 0.01];
    const bc1 = 1 - 0.81;
    const bc2 = 1 - 0.9801;
    const want = [p1[0] - 0.1 * (m2[0] / bc1 / (Math.sqrt(v2[0] / bc2) + 1e-8) + 0.2 * p1[0]), p1[1] - 0.1 * (m2[1] / bc1 / (Math.sqrt(v2[1] / bc2) + 1e-8))];
    for (let i = 0; i < 2; i++) {
      expect(m[i]).toBeCloseTo(m2[i], 15);
      expect(v[i]).toBeCloseTo(v2[i], 15);
      expect(p[i]).toBeCloseTo(want[i], 14);
    }
    expect(r.clipScale(5, 1)).toBe(0.2);
    expect(r.clipScale(0.5, 1)).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// The whole block

const TINY: BlockConfig = { vocab: 7, dModel: 8, nHead: 2, nLayer: 2, seq: 4, batch: 2, hasEmbedding: true, hasHead: true };

/** The seeded init plus a perturbation so gains/biases are not 1/0 and attention is not uniform. */
function testParams(cfg: BlockConfig, seed: number): Vec {
  const l = layout(cfg);
  const p = r.f64(initParams(cfg, seed));
  const g = gaussian(rng(seed + 1));
  for (const s of l.params) for (let i = 0; i < s.size; i++) p[s.offset + i] += 0.3 * g();
  return p;
}

/** ≥ `total` parameter indices, at least 2 in every tensor, the rest in proportion to size. */
function spreadIndices(cfg: BlockConfig, total: number, seed: number): number[] {
  const l = layout(cfg);
  const out: number[] = [];
  l.params.forEach((s, n) => {
    const k = Math.max(2, Math.round((total * s.size) / l.count));
    for (const i of pick(s.size, k, seed + n)) out.push(s.offset + i);
  });
  return out;
}

/** Every tensor of the layout got at least one checked index. */
function expectEveryTensor(cfg: BlockConfig, idx: number[]): void {
  for (const s of layout(cfg).params)
    expect(
      idx.some((i) => i >= s.offset && i < s.offset + s.size),
      s.name,
    ).toBe(true);
}

function expectPaddingZero(block: ReferenceBlock): void {
  const inside = new Uint8Array(block.layout.total);
  for (const s of block.layout.params) inside.fill(1, s.offset, s.offset + s.size);
  for (let i = 0; i < inside.length; i++) if (!inside[i]) expect(block.grads[i]).toBe(0);
}

describe('ReferenceBlock end to end', () => {
  it('full model (embedding + head): parameter grads vs FD of forward().loss', () => {
    const cfg = TINY;
    const block = new ReferenceBlock(cfg, testParams(cfg, 1));
    const N = cfg.batch * cfg.seq;
    const tokens = randInts(N, cfg.vocab, 2);
    const targets = randInts(N, cfg.vocab, 3);
    tokens[5] = tokens[1]; // a repeated token at the same position of the other sequence
    const loss = () => block.forward({ tokens, targets }).loss!;
    expect(loss()).toBeGreaterThan(0);
    expect(block.backward()).toBeUndefined();
    const grads = Float64Array.from(block.grads);
    expectPaddingZero(block);
    const idx = spreadIndices(cfg, 60, 4);
    expect(idx.length).toBeGreaterThanOrEqual(60);
    expectEveryTensor(cfg, idx);
    expectGrad('block params', fdCheck(block.params, loss, grads, idx), RTOL_BLOCK, 60);
  });

  it('middle stage (no embedding, no head): input gradient and weight grads vs FD of Σ w⊙out', () => {
    const cfg: BlockConfig = { ...TINY, hasEmbedding: false, hasHead: false, firstLayer: 1, modelLayers: 4 };
    const block = new ReferenceBlock(cfg, testParams(cfg, 11));
    const N = cfg.batch * cfg.seq;
    const x = randn(N * cfg.dModel, 12);
    const w = randn(N * cfg.dModel, 13);
    const loss = () => dot(w, block.forward({ x }).x!);
    loss();
    const dx = block.backward(w)!;
    expect(dx.length).toBe(N * cfg.dModel);
    const grads = Float64Array.from(block.grads);
    expectPaddingZero(block);
    expectGrad('middle dx', fdCheck(x, loss, dx), RTOL_BLOCK, N * cfg.dModel);
    const idx = spreadIndices(cfg, 60, 14);
    expectEveryTensor(cfg, idx);
    expect(layout(cfg).params[0].name.startsWith('h1.')).toBe(true);
    expectGrad('middle params', fdCheck(block.params, loss, grads, idx), RTOL_BLOCK, 60);
  });

  it('last stage (head, no embedding): input gradient and weight grads vs FD of the loss', () => {
    const cfg: BlockConfig = { ...TINY, hasEmbedding: false, nLayer: 1 };
    const block = new ReferenceBlock(cfg, testParams(cfg, 21));
    const N = cfg.batch * cfg.seq;
    const x = randn(N * cfg.dModel, 22);
    const targets = randInts(N, cfg.vocab, 23);
    const loss = () => block.forward({ x, targets }).loss!;
    loss();
    const dx = block.backward()!;
    const grads = Float64Array.from(block.grads);
    expectGrad('last dx', fdCheck(x, loss, dx), RTOL_BLOCK, N * cfg.dModel);
    const idx = spreadIndices(cfg, 60, 24);
    expectEveryTensor(cfg, idx);
    expectGrad('last params', fdCheck(block.params, loss, grads, idx), RTOL_BLOCK, 60);
  });

  it('first stage (embedding, no head): weight grads vs FD of Σ w⊙out', () => {
    const cfg: BlockConfig = { ...TINY, hasHead: false, nLayer: 1 };
    const block = new ReferenceBlock(cfg, testParams(cfg, 31));
    const N = cfg.batch * cfg.seq;
    const tokens = randInts(N, cfg.vocab, 32);
    const w = randn(N * cfg.dModel, 33);
    const loss = () => dot(w, block.forward({ tokens }).x!);
    loss();
    expect(block.backward(w)).toBeUndefined();
    const grads = Float64Array.from(block.grads);
    const idx = spreadIndices(cfg, 60, 34);
    expectEveryTensor(cfg, idx);
    expectGrad('first params', fdCheck(block.params, loss, grads, idx), RTOL_BLOCK, 60);
  });

  it('gradients accumulate over microbatches; step returns the norm and zeroes them', () => {
    const cfg = TINY;
    const N = cfg.batch * cfg.seq;
    const init = testParams(cfg, 41);
    const batches = [0, 1].map((s) => ({ tokens: randInts(N, cfg.vocab, 42 + s), targets: randInts(N, cfg.vocab, 44 + s) }));
    const single = batches.map((b) => {
      const blk = new ReferenceBlock(cfg, init);
      blk.forward(b);
      blk.backward();
      return Float64Array.from(blk.grads);
    });
    const both = new ReferenceBlock(cfg, init);
    for (const b of batches) {
      both.forward(b);
      both.backward();
    }
    expect(
      maxAbsDiff(
        both.grads,
        single[0].map((g, i) => g + single[1][i]),
      ),
    ).toBeLessThan(1e-14);
    const norm = Math.sqrt(dot(both.grads, both.grads));
    const before = Float64Array.from(both.params);
    expect(both.step()).toBeCloseTo(norm, 13);
    expect(maxAbs(both.grads)).toBe(0);
    expect(maxAbsDiff(both.params, before)).toBeGreaterThan(0);
    expect(() => both.backward()).toThrow();
  });
});
