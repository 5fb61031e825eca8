// Optimizer settings shared by the GPU runtime, the float64 reference and the tfjs peer, and the
// learning-rate schedule.
import type { AdamW } from '../../kernels/reference.js';

export type { AdamW };

export const DEFAULT_ADAMW: AdamW = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1.0 };

/**
 * Linear warm-up over `warmup` steps, then cosine decay to `minFraction`·lr at `total` steps.
 * Adam's first steps are its least reliable (tiny second-moment estimates), hence the warm-up.
 */
export function learningRate(step: number, o: { lr: number; warmup: number; total: number; minFraction?: number }): number {
  const min = o.lr * (o.minFraction ?? 0.1);
  if (step <= o.warmup) return (o.lr * step) / Math.max(1, o.warmup);
  if (step >= o.total) return min;
  const p = (step - o.warmup) / Math.max(1, o.total - o.warmup);
  return min + 0.5 * (o.lr - min) * (1 + Math.cos(Math.PI * p));
}
