// Ownership units from verified work. The FLOPs are derived from the model spec the coordinator
// assigned, never from a peer's report: a peer can lie about what it did, not about what the spec costs.
import { type BlockConfig, blockFlops, validateConfig } from '../engine/model.js';
import type { RiskWeighting } from './risk.js';

/** One ownership unit = one risk-adjusted MFLOP: fine enough to credit a single small step. */
export const FLOPS_PER_UNIT = 1e6;

/** FLOPs of one optimizer step of one stage: forward + backward of each of its microbatches. */
export function stepWorkFlops(cfg: BlockConfig, microbatches: number): number {
  if (!Number.isInteger(microbatches) || microbatches < 1) {
    throw new Error(`stepWorkFlops: microbatches must be a positive integer, got ${String(microbatches)}`);
  }
  // blockFlops trusts its input; a malformed config must not mint units.
  validateConfig(cfg);
  return blockFlops(cfg).total * microbatches;
}

/**
 * floor(flops · w(progress) / FLOPS_PER_UNIT). Flooring per credit means a fraction of a unit is
 * never minted out of rounding; the loss is below one unit per credit.
 */
export function riskUnits(flops: number, progress: number, risk: RiskWeighting): bigint {
  if (typeof flops !== 'number' || !Number.isFinite(flops) || flops < 0) {
    throw new RangeError(`riskUnits: flops must be a finite number ≥ 0, got ${String(flops)}`);
  }
  const units = Math.floor((flops * risk.weight(progress)) / FLOPS_PER_UNIT);
  if (!Number.isFinite(units) || units < 0) {
    throw new RangeError(`riskUnits: ${risk.name} gave a non-finite or negative amount for ${flops} FLOPs at p=${progress}`);
  }
  return BigInt(units);
}

/**
 * Progress of the work done in 1-based step `step` of `totalSteps`: (step−1)/totalSteps, so the first
 * step is at p = 0 and gets the full risk premium, and no step reaches p = 1 (that is the finished run).
 */
export function runProgress(step: number, totalSteps: number): number {
  if (!Number.isInteger(totalSteps) || totalSteps < 1) {
    throw new RangeError(`runProgress: totalSteps must be a positive integer, got ${String(totalSteps)}`);
  }
  if (!Number.isInteger(step) || step < 1 || step > totalSteps) {
    throw new RangeError(`runProgress: step must be an integer in [1, ${totalSteps}], got ${String(step)}`);
  }
  return (step - 1) / totalSteps;
}

/** A peer's verified share of one committed step: it computed `microbatches` of `stage`'s forward and backward. */
export interface StepWork {
  account: string;
  stage: number;
  microbatches: number;
}

/**
 * Units earned for committed step `step`: each peer earns its stage's spec FLOPs per microbatch it
 * computed, at the step's progress. A step is committed only when every peer on every microbatch's
 * path reported its share, so a microbatch that crossed lanes credits each peer it passed through.
 */
export function stepUnits(work: StepWork[], stageFlopsPerMicrobatch: number[], step: number, totalSteps: number, risk: RiskWeighting): Map<string, bigint> {
  const progress = runProgress(step, totalSteps);
  const out = new Map<string, bigint>();
  for (const w of work) {
    const flops = stageFlopsPerMicrobatch[w.stage];
    if (flops === undefined) throw new RangeError(`stepUnits: no FLOPs for stage ${w.stage}`);
    if (!(Number.isInteger(w.microbatches) && w.microbatches >= 0)) throw new RangeError(`stepUnits: microbatches must be a non-negative integer, got ${w.microbatches}`);
    out.set(w.account, (out.get(w.account) ?? 0n) + riskUnits(flops * w.microbatches, progress, risk));
  }
  return out;
}

/** Units by account summed over committed steps, each step's work weighted at its own progress. */
export function unitsByAccount(
  steps: Iterable<{ step: number; work: StepWork[] }>,
  stageFlopsPerMicrobatch: number[],
  totalSteps: number,
  risk: RiskWeighting,
): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const s of steps) for (const [a, u] of stepUnits(s.work, stageFlopsPerMicrobatch, s.step, totalSteps, risk)) out.set(a, (out.get(a) ?? 0n) + u);
  return out;
}

/**
 * Units a run of `microbatches` per step earns at least, however its microbatches are split among
 * peers (flooring per peer can only round less away than flooring per microbatch): a compute
 * target the swarm always reaches by finishing the run.
 */
export function runUnitsFloor(stageFlopsPerMicrobatch: number[], microbatches: number, totalSteps: number, risk: RiskWeighting): bigint {
  let total = 0n;
  for (let step = 1; step <= totalSteps; step++) {
    for (const f of stageFlopsPerMicrobatch) total += BigInt(microbatches) * riskUnits(f, runProgress(step, totalSteps), risk);
  }
  return total;
}
