// The subspace model of ARCHITECTURE §4 on the float64 reference: a constrained block's output
// lives in F[tok] + span(U), so its k coefficients carry the boundary losslessly.
import { describe, expect, it } from 'vitest';
import * as r from '../kernels/reference.js';
import { type BlockConfig, initParams } from '../shared/engine/model.js';
import { ReferenceBlock } from '../shared/engine/reference-block.js';
import { frozenTable, orthonormalBasis } from '../shared/engine/subspace.js';
import { rng } from '../shared/base/random.js';

const cfg: BlockConfig = { vocab: 11, dModel: 16, nHead: 2, nLayer: 2, seq: 6, batch: 2, hasEmbedding: true, hasHead: false, subspace: { k: 5, seed: 4 } };
const N = cfg.batch * cfg.seq;

function batch(seed: number) {
  const rand = rng(seed);
  return { tokens: Array.from({ length: N }, () => Math.floor(rand() * cfg.vocab)), g: Float64Array.from({ length: N * 5 }, () => rand() - 0.5) };
}

describe('subspace-constrained block', () => {
  it('keeps its output in F[tok] + span(U) through training, so decode(encode(x)) = x', () => {
    const block = new ReferenceBlock(cfg, initParams(cfg, 1), { lr: 0.05, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1 });
    const u = r.f64(orthonormalBasis(16, 5, 4));
    const f = r.f64(frozenTable(11, 16, 4));
    for (let step = 0; step < 4; step++) {
      const b = batch(step);
      const c = block.forward({ tokens: b.tokens }).x!;
      const x = block.output!;
      const back = r.subspaceDecode(c, u, N, 16, 5, { table: f, tokens: b.tokens });
      let err = 0;
      let norm = 0;
      for (let i = 0; i < x.length; i++) {
        err = Math.max(err, Math.abs(back[i] - x[i]));
        norm = Math.max(norm, Math.abs(x[i]));
      }
      // float32 basis: exact up to its rounding (≈1e-7 relative), not approximately.
      expect(err).toBeLessThan(1e-6 * norm);
      block.backward(b.g);
      block.step();
    }
  });

  it('an unconstrained block (no subspace) does leave span(U): the check above can fail', () => {
    const dense = { ...cfg, subspace: undefined };
    const block = new ReferenceBlock(dense, initParams(dense, 1));
    const b = batch(9);
    const x = block.forward({ tokens: b.tokens }).x!;
    const u = r.f64(orthonormalBasis(16, 5, 4));
    const p = r.subspaceProject(x, u, N, 16, 5);
    const off = Math.max(...x.map((v, i) => Math.abs(v - p[i])));
    expect(off).toBeGreaterThan(1e-3);
  });
});
