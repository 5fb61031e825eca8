// Robust averaging (shared/trust/robust-mean.ts) against a float64 reference: honest moves average
// exactly as a plain mean would; a move beyond the drift limit is left out and its sender named;
// whatever one replica sends, the stage moves from the honest replicas' mean by at most twice the
// median move over the number averaged; with no anchor it is the plain mean.
import { describe, expect, it } from 'vitest';
import { agreement, driftLimit } from '../shared/trust/audit.js';
import { type Contribution, robustMean } from '../shared/trust/robust-mean.js';
import { Rng } from './fuzz/rng.js';

const N = 4096;
const LR = 3e-3;
const STEP = 8;
const rng = new Rng(61);
const anchor = { params: Float32Array.from({ length: N }, () => rng.next() * 2 - 1), step: 4 };
const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, x) => s + x * x, 0));

/** Anchor plus a random move of relative size `rel`. */
function moved(peer: string, rel: number): Contribution {
  const dir = Float64Array.from({ length: N }, () => rng.next() * 2 - 1);
  const k = (rel * norm(anchor.params)) / norm(dir);
  return { peer, params: Float32Array.from(anchor.params, (x, i) => x + k * dir[i]) };
}

/** The float64 mean of `cs`. */
function reference(cs: Contribution[]): Float64Array {
  const m = new Float64Array(N);
  for (const c of cs) for (let i = 0; i < N; i++) m[i] += c.params[i] / cs.length;
  return m;
}

const distance = (a: ArrayLike<number>, b: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, x, i) => s + (x - b[i]) ** 2, 0));

describe('robust averaging', () => {
  const honest = [moved('a', 0.04), moved('b', 0.05), moved('c', 0.045), moved('d', 0.055)];

  it('takes honest moves as a plain mean would', () => {
    const r = robustMean(honest, anchor, STEP, LR);
    expect(r.outliers).toEqual([]);
    expect(r.clipped).toEqual([]);
    expect(distance(r.mean, reference(honest))).toBeLessThan(1e-5);
  });

  it('leaves out a move beyond the drift limit and names its sender (noise of amplitude 3, weights of another model)', () => {
    const limit = driftLimit(anchor.step, STEP, LR);
    for (const poison of [
      { peer: 'e', params: Float32Array.from(anchor.params, (x) => x + (rng.next() * 2 - 1) * 3) },
      { peer: 'e', params: Float32Array.from({ length: N }, () => rng.next()) },
      moved('e', limit * 1.01),
    ]) {
      const r = robustMean([...honest, poison], anchor, STEP, LR);
      expect(r.outliers.map((o) => o.peer)).toEqual(['e']);
      expect(r.outliers[0].moved).toBeGreaterThan(limit);
      expect(distance(r.mean, reference(honest))).toBeLessThan(1e-5);
    }
  });

  it('whatever one replica sends within the limit, the stage moves from the honest mean by at most twice the median move over the replicas averaged', () => {
    const limit = driftLimit(anchor.step, STEP, LR);
    const medianMove = 0.05; // the lower median of five moves: at most the third-smallest honest one
    const scale = norm(anchor.params);
    let clipped = 0;
    for (let t = 0; t < 40; t++) {
      const poison = moved('e', rng.next() * limit);
      const r = robustMean([...honest, poison], anchor, STEP, LR);
      expect(r.outliers).toEqual([]);
      // Where the honest replicas alone would take the stage, weighted as one of five.
      const honestOnly = reference([...honest, { peer: 'e', params: anchor.params }]);
      const shift = distance(r.mean, honestOnly) / scale;
      expect(shift).toBeLessThanOrEqual((2 * medianMove * 1.05) / 5 + 1e-6);
      if (r.clipped.includes('e')) clipped++;
    }
    expect(clipped).toBeGreaterThan(0);
  });

  it('is the plain mean without an anchor, and the anchor when every move is an outlier', () => {
    const r = robustMean(honest, undefined, STEP, LR);
    expect(distance(r.mean, reference(honest))).toBeLessThan(1e-5);
    const all = robustMean([{ peer: 'x', params: new Float32Array(N).fill(9) }], anchor, STEP, LR);
    expect(all.outliers.map((o) => o.peer)).toEqual(['x']);
    expect(agreement(all.mean, anchor.params).rel).toBe(0);
  });
});
