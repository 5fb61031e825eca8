// A chart's axes as numbers: the round values an axis is labelled with, and where a value lands on
// the screen. Pure, so the charts (Chart.tsx) are drawn from tested arithmetic.

/** Ticks at 1, 2 or 5 times a power of ten, about `count` of them, from at or below `lo` to at or above `hi`. */
export function niceTicks(lo: number, hi: number, count = 5, integer = false): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo > hi) return [];
  if (lo === hi) {
    const pad = Math.abs(lo) / 10 || 1;
    return niceTicks(lo - pad, hi + pad, count, integer);
  }
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw * (1 - 1e-9)) ?? 10 * power;
  if (integer) step = Math.max(1, Math.round(step));
  const first = Math.floor(lo / step + 1e-9) * step;
  // By index, never by adding a step to a value it may be too small to change (a huge `lo`).
  const ticks: number[] = [];
  for (let i = 0; i <= 4 * count + 2; i++) {
    const v = first + i * step;
    if (!(v < hi + step * (1 - 1e-9))) break;
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}

/** The linear map from `domain` onto `range`; a domain of one value lands in the range's middle. */
export function linear([d0, d1]: readonly [number, number], [r0, r1]: readonly [number, number]): (v: number) => number {
  if (d1 === d0) return () => (r0 + r1) / 2;
  return (v) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
}

/** The smallest and largest of `values` (undefined when there are none). */
export function extent(values: readonly number[]): [number, number] | undefined {
  if (values.length === 0) return undefined;
  let lo = values[0];
  let hi = values[0];
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** The index of the value in `sorted` (ascending) nearest to `v`. */
export function nearest(sorted: readonly number[], v: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] <= v) lo = mid;
    else hi = mid;
  }
  return Math.abs(sorted[hi] - v) < Math.abs(sorted[lo] - v) ? hi : lo;
}
