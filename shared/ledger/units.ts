// Ownership units from verified work. The FLOPs are derived from the model spec the coordinator
// assigned, never from a peer's report: a peer can lie about what it did, not about what the spec costs.
import { type BlockConfig, blockFlops, validateConfig } from '../engine/model.js';
import { type RiskWeighting } from './risk.js';

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

/** Someone who holds a stage of a pipeline lane and is paid at `account`. */
export interface LaneMember {
  account: string;
  stage: number;
}

/**
 * Units earned by one lane for its completed steps (from, to]: every member earns its own stage's
 * spec FLOPs at each step's progress. A lane's steps complete only when every stage ran its forward
 * and backward (stage 0 finishes last), which is what makes them verified work here.
 */
export function laneUnits(members: LaneMember[], stageFlops: number[], from: number, to: number, totalSteps: number, risk: RiskWeighting): Map<string, bigint> {
  if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= totalSteps)) {
    throw new RangeError(`laneUnits: need integers 0 ≤ from ≤ to ≤ totalSteps, got from ${from}, to ${to}, totalSteps ${totalSteps}`);
  }
  const out = new Map<string, bigint>();
  for (const m of members) {
    const flops = stageFlops[m.stage];
    if (flops === undefined) throw new RangeError(`laneUnits: no FLOPs for stage ${m.stage}`);
    let units = 0n;
    for (let step = from + 1; step <= to; step++) units += riskUnits(flops, runProgress(step, totalSteps), risk);
    out.set(m.account, (out.get(m.account) ?? 0n) + units);
  }
  return out;
}
