import { describe, expect, it } from 'vitest';
import { gpipe, oneFOneB, simulate, slotsNeeded } from '../shared/peer/schedule.js';

describe('pipeline schedules', () => {
  for (const [name, sched] of [['1F1B', oneFOneB], ['GPipe', gpipe]] as const) {
    it(`${name}: every microbatch forwarded once, then backwarded once`, () => {
      for (const S of [1, 2, 3, 4]) {
        for (const M of [1, 2, 3, 8]) {
          for (let s = 0; s < S; s++) {
            const ops = sched(s, S, M);
            expect(ops.filter((o) => o.kind === 'F').map((o) => o.mb).sort((a, b) => a - b)).toEqual([...Array(M).keys()]);
            expect(ops.filter((o) => o.kind === 'B').map((o) => o.mb).sort((a, b) => a - b)).toEqual([...Array(M).keys()]);
            for (let m = 0; m < M; m++) {
              expect(ops.findIndex((o) => o.kind === 'F' && o.mb === m)).toBeLessThan(ops.findIndex((o) => o.kind === 'B' && o.mb === m));
            }
          }
        }
      }
    });
  }

  it('1F1B holds at most S − s microbatches at stage s; GPipe holds all M', () => {
    expect(slotsNeeded(oneFOneB(0, 4, 8))).toBe(4);
    expect(slotsNeeded(oneFOneB(3, 4, 8))).toBe(1);
    expect(slotsNeeded(oneFOneB(0, 4, 2))).toBe(2);
    expect(slotsNeeded(gpipe(0, 4, 8))).toBe(8);
  });

  it('1F1B: the microbatch m − (S − s) is always backwarded before m is forwarded (slot m mod (S − s) is free)', () => {
    for (const [S, M] of [[4, 8], [3, 5], [2, 7]]) {
      for (let s = 0; s < S; s++) {
        const ops = oneFOneB(s, S, M);
        const w = S - s;
        for (let m = w; m < M; m++) {
          expect(ops.findIndex((o) => o.kind === 'B' && o.mb === m - w)).toBeLessThan(ops.findIndex((o) => o.kind === 'F' && o.mb === m));
        }
      }
    }
  });

  it('extra warm-up holds one more microbatch on all but the last stage, and hides link latency', () => {
    const extra1 = (s: number, S: number, M: number) => oneFOneB(s, S, M, 1);
    expect(slotsNeeded(extra1(0, 2, 8))).toBe(3);
    expect(slotsNeeded(extra1(1, 2, 8))).toBe(1);
    const cost = { fwd: 1, bwd: 2, link: 1.5 };
    expect(simulate(extra1, 2, 8, cost).makespan).toBeLessThan(simulate(oneFOneB, 2, 8, cost).makespan);
  });

  it('simulated bubble matches the closed form (S − 1)/(M + S − 1) for equal stage costs', () => {
    for (const [S, M] of [[2, 4], [4, 8], [4, 16], [3, 3]]) {
      for (const sched of [oneFOneB, gpipe]) {
        const { bubble } = simulate(sched, S, M, { fwd: 1, bwd: 2 });
        expect(bubble).toBeCloseTo((S - 1) / (M + S - 1), 10);
      }
    }
  });

  it('a schedule with an impossible order is reported as a deadlock', () => {
    const bad = (s: number, S: number, M: number) => (s === 0 ? [...gpipe(s, S, M)].reverse() : gpipe(s, S, M));
    expect(() => simulate(bad, 2, 2, { fwd: 1, bwd: 1 })).toThrow(/deadlock/);
  });
});
