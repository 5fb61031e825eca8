// A stage's training state is checked before it is loaded, whoever gave it (a replica over a data
// channel, the peer's own disk): the sender vouches for its hash, not for its sense. No honest run
// reaches past its last step, has parameters or Adam moments beyond ±MAX_ABS, or a negative second
// moment (a mean of squares); a joiner that took such a state would train garbage or overflow. And
// where most of the stage's replicas reported the hash of its newest state, the state must be it.
import type { TrainState } from '../engine/checkpoint.js';
import { MAX_ABS, implausible } from './norm-band.js';

/** Why no honest replica of a stage of `floats` parameters could hold `s` in a run of `lastStep` steps, or undefined. */
export function stateProblem(s: TrainState, o: { floats: number; lastStep: number }): string | undefined {
  for (const [name, a] of [
    ['parameters', s.params],
    ['Adam m', s.m],
    ['Adam v', s.v],
  ] as const) {
    if (a.length !== o.floats) return `its ${name} hold ${a.length} floats, the stage has ${o.floats}`;
  }
  if (!Number.isInteger(s.step) || s.step < 0 || s.step > o.lastStep) return `its step ${s.step} is not one of the run's 0…${o.lastStep}`;
  const params = implausible(s.params);
  if (params) return `its parameters: ${params}`;
  for (let i = 0; i < o.floats; i++) {
    if (!(Math.abs(s.m[i]) <= MAX_ABS)) return `its Adam m ${i} is ${s.m[i]}, beyond ±${MAX_ABS}`;
    if (!(s.v[i] >= 0 && s.v[i] <= MAX_ABS)) return `its Adam v ${i} is ${s.v[i]}, outside [0, ${MAX_ABS}]`;
  }
  return undefined;
}

/** The stage's newest state as most of its replicas reported it after averaging. */
export interface Vouched {
  step: number;
  hash: string;
}

/**
 * Why a state at `got.step` whose parameters hash to `got.hash` is not the one `vouched` for, or
 * undefined. A newer state is taken (an averaging since): its hash is checked when the peer reports ready.
 */
export function vouchedProblem(got: Vouched, vouched: Vouched): string | undefined {
  if (got.step > vouched.step) return undefined;
  if (got.step < vouched.step) return `it is at step ${got.step}, older than the stage's newest at step ${vouched.step}`;
  if (got.hash !== vouched.hash) return `at step ${got.step} it hashes to ${got.hash.slice(0, 12)}…, not the ${vouched.hash.slice(0, 12)}… the stage's replicas agreed on`;
  return undefined;
}
