// Shared-seed objects of subspace compression (ARCHITECTURE §4): every peer derives the same
// orthonormal basis U (d×k) and the same frozen token table F (V×d) from a seed, so nothing is
// sent to agree on them.
import { gaussian, rng } from '../base/random.js';

/** U[d,k] row-major with orthonormal columns: modified Gram–Schmidt (QR) of a seeded Gaussian, in float64. */
export function orthonormalBasis(d: number, k: number, seed: number): Float32Array {
  if (!(Number.isInteger(k) && k >= 1 && k <= d)) throw new Error(`subspace rank k=${k} must be an integer in [1, d=${d}]`);
  const g = gaussian(rng(seed));
  const cols: Float64Array[] = [];
  for (let a = 0; a < k; a++) {
    const v = Float64Array.from({ length: d }, g);
    // Two passes of orthogonalisation keep the basis orthonormal to float64 precision.
    for (let pass = 0; pass < 2; pass++) {
      for (const q of cols) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += q[j] * v[j];
        for (let j = 0; j < d; j++) v[j] -= dot * q[j];
      }
    }
    let norm = 0;
    for (let j = 0; j < d; j++) norm += v[j] * v[j];
    norm = Math.sqrt(norm);
    for (let j = 0; j < d; j++) v[j] /= norm;
    cols.push(v);
  }
  const u = new Float32Array(d * k);
  for (let j = 0; j < d; j++) for (let a = 0; a < k; a++) u[j * k + a] = cols[a][j];
  return u;
}

/** The frozen token table F[V,d]: seeded Gaussian rows with the embedding's init scale. */
export function frozenTable(V: number, d: number, seed: number, std = 0.02): Float32Array {
  const g = gaussian(rng(seed ^ 0x5f3759df));
  return Float32Array.from({ length: V * d }, () => g() * std);
}
