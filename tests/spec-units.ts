// Units each stage earns over a whole run when one worker computes every microbatch of it, from the
// model spec alone (an independent reference for the settlement's ledger):
// Σ_step floor(flops · 4^(1−(step−1)/steps) / 1e6), flops = the stage's block FLOPs × microbatches.
import { blockFlops } from '../shared/engine/model.js';
import { stageConfigs } from '../shared/run/derive.js';
import type { RunConfig } from '../shared/run/config.js';

export function specUnitsPerStage(run: RunConfig, subspaceK: number): bigint[] {
  const cfgs = stageConfigs({ ...run.model, subspace: { k: subspaceK, seed: run.seed } }, run.layersPerStage);
  return cfgs.map((c) => {
    const flops = blockFlops(c).total * run.microbatches;
    let u = 0n;
    for (let s = 1; s <= run.steps; s++) u += BigInt(Math.floor((flops * 4 ** (1 - (s - 1) / run.steps)) / 1e6));
    return u;
  });
}
