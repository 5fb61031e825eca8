// A GPU-usage limit is a duty cycle: the trainer works a step, then rests long enough that work is
// the allowed fraction of wall time. Resting whole steps (instead of slowing kernels) is the only
// knob a WebGPU trainer has, and it lowers the GPU's average heat and power draw just the same.

/** Below this, rests get so long that a step's state goes stale and the peer looks gone. */
export const MIN_DUTY = 0.05;

/** Milliseconds to rest after `busyMs` of work so that busy / (busy + rest) = duty (clamped to [0.05, 1]). */
export function restAfter(busyMs: number, duty: number): number {
  if (!(busyMs > 0) || !Number.isFinite(busyMs)) return 0;
  // An unreadable duty rests the most, not the least: it only ever comes from a bug upstream.
  const d = Number.isNaN(duty) ? MIN_DUTY : Math.min(1, Math.max(MIN_DUTY, duty));
  if (d >= 1) return 0;
  return (busyMs * (1 - d)) / d;
}
