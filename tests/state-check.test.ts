// What a joiner refuses of a stage's state whoever gives it (shared/trust/state-check.ts), and that
// its links reassemble nothing larger than the stage's largest honest message (peer/stage-frames.ts).
import { describe, expect, it } from 'vitest';
import { encodeCheckpoint } from '../shared/engine/checkpoint.js';
import { layout } from '../shared/engine/model.js';
import { runStageConfigs } from '../shared/run/derive.js';
import { largestMessageBytes } from '../shared/peer/stage-frames.js';
import { stateProblem, vouchedProblem } from '../shared/trust/state-check.js';
import { testRun } from './test-run.js';

const n = 64;
const honest = () => ({
  step: 4,
  params: Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 0.1),
  m: Float32Array.from({ length: n }, (_, i) => Math.cos(i) * 1e-3),
  v: Float32Array.from({ length: n }, (_, i) => (i % 7) * 1e-6),
});

describe('state checks', () => {
  it('takes an honest state, and refuses a step past the run, implausible parameters, and Adam moments out of range', () => {
    const o = { floats: n, lastStep: 10 };
    expect(stateProblem(honest(), o)).toBeUndefined();
    expect(stateProblem({ ...honest(), step: 999_999 }, o)).toBe("its step 999999 is not one of the run's 0…10");
    expect(stateProblem({ ...honest(), params: new Float32Array(n) }, o)).toBe('its parameters: the tensor is all zero');
    expect(stateProblem({ ...honest(), params: new Float32Array(n).fill(-2e6) }, o)).toMatch(/^its parameters: value 0 is -2000000, beyond/);
    expect(stateProblem({ ...honest(), v: new Float32Array(n).fill(3e38) }, o)).toBe('its Adam v 0 is 3.0000000054977558e+38, outside [0, 1000000]');
    expect(stateProblem({ ...honest(), v: Float32Array.from({ length: n }, (_, i) => (i === 5 ? -1e-9 : 0)) }, o)).toMatch(/^its Adam v 5 is -9\.99\d*e-10, outside/);
    expect(stateProblem({ ...honest(), m: Float32Array.from({ length: n }, (_, i) => (i === 3 ? 1e7 : 0)) }, o)).toMatch(/^its Adam m 3 is 10000000/);
    expect(stateProblem({ ...honest(), m: new Float32Array(n - 1) }, o)).toBe('its Adam m hold 63 floats, the stage has 64');
  });

  it('takes only the state the stage’s replicas vouched for, or a newer one', () => {
    const vouched = { step: 8, hash: 'a'.repeat(64) };
    expect(vouchedProblem({ step: 8, hash: 'a'.repeat(64) }, vouched)).toBeUndefined();
    expect(vouchedProblem({ step: 10, hash: 'b'.repeat(64) }, vouched)).toBeUndefined();
    expect(vouchedProblem({ step: 6, hash: 'a'.repeat(64) }, vouched)).toBe("it is at step 6, older than the stage's newest at step 8");
    expect(vouchedProblem({ step: 8, hash: 'b'.repeat(64) }, vouched)).toBe("at step 8 it hashes to bbbbbbbbbbbb…, not the aaaaaaaaaaaa… the stage's replicas agreed on");
  });

  it('a stage’s largest honest message bounds what a neighbour can make it reassemble: its state fits, 600 MiB does not', () => {
    const run = testRun();
    for (const cfg of runStageConfigs(run)) {
      const floats = layout(cfg).total;
      const state = encodeCheckpoint({
        ...honest(),
        params: new Float32Array(floats),
        m: new Float32Array(floats),
        v: new Float32Array(floats),
        meta: { runId: run.runId, stage: 0 },
      });
      const limit = largestMessageBytes(cfg, floats);
      expect(1 + 48 + state.length + 64).toBeLessThan(limit);
      expect(limit).toBeLessThan(600 * 2 ** 20);
    }
  });
});
