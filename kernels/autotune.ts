// Picks a matmul variant per shape: a heuristic by default, or the fastest by measurement.
// Tuning compiles every fitting candidate once, so it runs at start-up, not per step.
import type { Gpu } from './context.js';
import { DEFAULT_VARIANT, type MatmulShape, type MatmulVariant, VARIANTS, matmul, variantFits } from './matmul.js';

const BIG: MatmulVariant = { kind: 'vec4', wx: 8, wy: 2, tm: 16, tn: 8, bk: 4, strided: true };

export const shapeKey = (s: MatmulShape) => `${s.M}x${s.N}x${s.K}${s.transA ? 'T' : 'N'}${s.transB ? 'T' : 'N'}`;

export class MatmulTuner {
  readonly chosen = new Map<string, { variant: MatmulVariant; ms?: number }>();

  /** The tuned variant for a shape, else a heuristic that is good on CPU and GPU adapters. */
  pick = (s: MatmulShape): MatmulVariant => {
    const hit = this.chosen.get(shapeKey(s));
    if (hit) return hit.variant;
    if (s.M >= 64 && s.N >= 64 && variantFits(BIG, s)) return BIG;
    return DEFAULT_VARIANT;
  };

  /** Time every fitting variant on real buffers (median of `reps` after a warm-up). */
  async tune(gpu: Gpu, s: MatmulShape, reps = 3, candidates = VARIANTS): Promise<MatmulVariant> {
    const key = shapeKey(s);
    const hit = this.chosen.get(key);
    if (hit?.ms !== undefined) return hit.variant;
    const a = gpu.view(gpu.buffer(s.M * s.K));
    const b = gpu.view(gpu.buffer(s.K * s.N));
    const c = gpu.view(gpu.buffer(s.M * s.N));
    let best: { variant: MatmulVariant; ms: number } | undefined;
    for (const variant of candidates.filter((v) => variantFits(v, s))) {
      const d = matmul(gpu, { ...s, a, b, c, variant });
      gpu.run([d]);
      await gpu.finish();
      const times: number[] = [];
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        gpu.run([d]);
        await gpu.finish();
        times.push(performance.now() - t0);
      }
      const ms = times.sort((x, y) => x - y)[Math.floor(times.length / 2)];
      if (!best || ms < best.ms) best = { variant, ms };
    }
    for (const buf of [a, b, c]) buf.buffer.destroy();
    if (!best) throw new Error(`no matmul variant fits ${key}`);
    this.chosen.set(key, best);
    return best.variant;
  }
}
