// Picks a matmul variant per shape: a heuristic by default, or the fastest by measurement.
// Tuning compiles every fitting candidate once, so it runs at start-up, not per step: a block
// builds its dispatches once (which records the shapes it asked for), tunes those, and rebuilds.
import type { Gpu } from './context.js';
import { DEFAULT_VARIANT, type MatmulShape, type MatmulVariant, VARIANTS, matmul, matmulExtents, variantFits } from './matmul.js';

const BIG: MatmulVariant = { kind: 'vec4', wx: 8, wy: 2, tm: 16, tn: 8, bk: 4, strided: true };

/** Everything that changes which variant is fastest: sizes, layouts, strides, batch. */
export const shapeKey = (s: MatmulShape) => JSON.stringify([s.M, s.N, s.K, !!s.transA, !!s.transB, s.lda, s.ldb, s.ldc, s.base, s.batch]);

export class MatmulTuner {
  readonly chosen = new Map<string, { variant: MatmulVariant; ms: number }>();
  /** Shapes asked for that have not been measured yet. */
  readonly pending = new Map<string, MatmulShape>();

  /** The tuned variant for a shape, else a heuristic that is good on CPU and GPU adapters. */
  pick = (s: MatmulShape): MatmulVariant => {
    const key = shapeKey(s);
    const hit = this.chosen.get(key);
    if (hit) return hit.variant;
    this.pending.set(key, s);
    if (s.M >= 64 && s.N >= 64 && variantFits(BIG, s)) return BIG;
    return DEFAULT_VARIANT;
  };

  /** Time every fitting variant on real buffers (median of `reps` after a warm-up). */
  async tune(gpu: Gpu, s: MatmulShape, reps = 3, candidates = VARIANTS): Promise<{ variant: MatmulVariant; ms: number }> {
    const key = shapeKey(s);
    const hit = this.chosen.get(key);
    if (hit) return hit;
    const ext = matmulExtents(s);
    const [a, b, c] = [ext.a, ext.b, ext.c].map((n) => gpu.view(gpu.buffer(n), 0, n));
    let best: { variant: MatmulVariant; ms: number } | undefined;
    for (const variant of candidates.filter((v) => variantFits(v, s))) {
      const ms = await gpu.time([matmul(gpu, { ...s, a, b, c, variant })], reps);
      if (!best || ms < best.ms) best = { variant, ms };
    }
    for (const v of [a, b, c]) v.buffer.destroy();
    if (!best) throw new Error(`no matmul variant fits ${key}`);
    this.chosen.set(key, best);
    this.pending.delete(key);
    return best;
  }

  /** Tune every shape asked for so far. */
  async tunePending(gpu: Gpu, onProgress?: (done: number, total: number) => void): Promise<void> {
    const shapes = [...this.pending.values()];
    for (const [i, s] of shapes.entries()) {
      onProgress?.(i, shapes.length);
      await this.tune(gpu, s);
    }
    onProgress?.(shapes.length, shapes.length);
  }
}
