// The charts' arithmetic (renderer/charts/scale.ts): round ticks that cover the data, and the map
// from values to pixels.
import { describe, expect, it } from 'vitest';
import { extent, linear, nearest, niceTicks } from '../renderer/charts/scale.js';

/** Whether `step` is 1, 2 or 5 times a power of ten. */
const round = (step: number) => [1, 2, 5].some((m) => Math.abs(step / 10 ** Math.floor(Math.log10(step)) - m) < 1e-9);

describe('niceTicks', () => {
  it('labels an axis with round values', () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(2.31, 3.97, 5)).toEqual([2, 2.5, 3, 3.5, 4]);
    expect(niceTicks(0, 1234, 4)).toEqual([0, 500, 1000, 1500]);
  });

  it('covers the data with evenly spaced round steps, for any range', () => {
    for (const [lo, hi, count] of [
      [0.0123, 0.0456, 5],
      [-3, 7, 4],
      [1, 80, 8],
      [2.5, 2.51, 5],
      [1e6, 3.3e6, 6],
    ]) {
      const t = niceTicks(lo, hi, count);
      expect(t[0]).toBeLessThanOrEqual(lo);
      expect(t.at(-1)).toBeGreaterThanOrEqual(hi);
      const steps = t.slice(1).map((v, i) => v - t[i]);
      for (const s of steps) expect(s).toBeCloseTo(steps[0], 9);
      expect(round(steps[0])).toBe(true);
      expect(t.length).toBeLessThanOrEqual(2 * count + 2);
    }
  });

  it('keeps whole numbers whole when asked (steps of a run)', () => {
    expect(niceTicks(1, 3, 8, true)).toEqual([1, 2, 3]);
    for (const v of niceTicks(1, 80, 8, true)) expect(Number.isInteger(v)).toBe(true);
  });

  it('widens a single value into a range around it, and refuses what is not a range', () => {
    const t = niceTicks(2.4, 2.4);
    expect(t[0]).toBeLessThan(2.4);
    expect(t.at(-1)).toBeGreaterThan(2.4);
    expect(niceTicks(0, 0).length).toBeGreaterThan(1);
    expect(niceTicks(Number.NaN, 1)).toEqual([]);
    expect(niceTicks(0, Number.POSITIVE_INFINITY)).toEqual([]);
    expect(niceTicks(3, 1)).toEqual([]);
  });
});

describe('linear, extent, nearest', () => {
  it('maps a domain onto a range, inverted ranges included (SVG y grows downwards)', () => {
    const y = linear([2, 4], [250, 10]);
    expect(y(2)).toBe(250);
    expect(y(4)).toBe(10);
    expect(y(3)).toBe(130);
    expect(linear([5, 5], [0, 100])(5)).toBe(50);
  });

  it('finds the smallest and largest value, and the nearest of sorted values', () => {
    expect(extent([3, -1, 7, 2])).toEqual([-1, 7]);
    expect(extent([])).toBeUndefined();
    const xs = [10, 20, 40, 80];
    expect(xs.map((_, i) => nearest(xs, xs[i]))).toEqual([0, 1, 2, 3]);
    expect(nearest(xs, 29)).toBe(1);
    expect(nearest(xs, 31)).toBe(2);
    expect(nearest(xs, -100)).toBe(0);
    expect(nearest(xs, 1000)).toBe(3);
    expect(nearest([5], 1)).toBe(0);
  });
});
