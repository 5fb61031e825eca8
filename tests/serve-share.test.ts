// Serving's share of a training stage: with buyers always waiting, the time decode steps take while
// a round runs converges to the share (so training keeps the rest), no step waits longer than it
// takes to earn one back, and a stage that is not training serves without pacing.
import { describe, expect, it } from 'vitest';
import { ServeShare } from '../shared/peer/serve-share.js';

/** Steps of `stepMs` back to back for `totalMs` of a fake clock, each waiting as long as the share says; the fraction of time spent stepping, and the longest wait. */
function saturate(share: number, stepMs: number, totalMs: number, training: (t: number) => boolean) {
  let t = 0;
  const s = new ServeShare({ share, burstMs: 200, now: () => t });
  let stepping = 0;
  let longest = 0;
  while (t < totalMs) {
    const wait = s.delay(training(t));
    longest = Math.max(longest, wait);
    t += wait;
    s.spent(0, training(t)); // the refill up to now
    t += stepMs;
    stepping += stepMs;
    s.spent(stepMs, training(t));
  }
  return { fraction: stepping / t, longest };
}

describe('serving while training', () => {
  it('takes its share of a training stage, whatever the step length', () => {
    for (const [share, stepMs] of [
      [0.25, 10],
      [0.25, 90],
      [0.5, 30],
      [0.1, 5],
    ]) {
      const { fraction, longest } = saturate(share, stepMs, 600_000, () => true);
      expect(Math.abs(fraction - share), `share ${share}, steps of ${stepMs} ms`).toBeLessThan(0.01);
      // A token waits at most the time to earn its step back.
      expect(longest).toBeLessThanOrEqual(Math.ceil(stepMs / share));
    }
  });

  it('serves at full speed when the stage is not training, and paces again when a round starts', () => {
    expect(saturate(0.25, 10, 60_000, () => false)).toEqual({ fraction: 1, longest: 0 });
    // Training half the time (alternate 10 s): serving gets the idle half and a quarter of the other.
    const { fraction } = saturate(0.25, 10, 600_000, (t) => Math.floor(t / 10_000) % 2 === 0);
    expect(fraction).toBeGreaterThan(0.6);
    expect(fraction).toBeLessThan(0.65);
  });

  it('refuses a share outside (0, 1] or a negative burst', () => {
    for (const share of [0, -0.1, 1.5, Number.NaN]) expect(() => new ServeShare({ share, burstMs: 0, now: () => 0 })).toThrow(/share must be in \(0, 1\]/);
    expect(() => new ServeShare({ share: 0.5, burstMs: -1, now: () => 0 })).toThrow(/burst must be ≥ 0 ms/);
  });
});
