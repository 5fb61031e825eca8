// Whether this machine's GPU can hold a stage of a run, as the Runs page says it: one short sentence
// from the GPU's verdict on every stage's block (shared/engine/gpu-verdict.ts), so the memory and
// binding-size rules exist once. Stages are numbered from 0, as the Training page numbers them.
import type { GpuReport } from '../engine/gpu-detect.js';
import { verdict } from '../engine/gpu-verdict.js';
import type { BlockConfig } from '../engine/model.js';
import type { RunConfig } from './config.js';
import { runStageConfigs } from './derive.js';

export interface StageFit {
  ok: boolean;
  text: string;
}

/** Why the GPU cannot hold a stage whole: a fact that rejects it, or room for too few of its layers. */
type Misfit = { rejected: string } | { holds: number; needs: number };

function misfit(report: GpuReport, run: RunConfig, config: BlockConfig): Misfit | undefined {
  const v = verdict(report, { name: run.runId, config, layersInModel: config.nLayer });
  // A rejection's last reason is the fact that rejected it.
  if (!v.ok) return { rejected: v.reasons[v.reasons.length - 1] };
  return v.layers >= config.nLayer ? undefined : { holds: v.layers, needs: config.nLayer };
}

/** Stage numbers as runs: [0, 1, 2, 4] → "0–2, 4". */
function ranges(stages: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < stages.length; ) {
    let j = i;
    while (j + 1 < stages.length && stages[j + 1] === stages[j] + 1) j++;
    parts.push(j === i ? `${stages[i]}` : `${stages[i]}–${stages[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

/** Lighter first: a stage without the embedding or the head, then one of fewer layers. */
const lighter = (a: BlockConfig, b: BlockConfig) => Number(a.hasEmbedding || a.hasHead) - Number(b.hasEmbedding || b.hasHead) || a.nLayer - b.nLayer;

/** Whether `report`'s GPU can hold at least one stage of `run`, and which, as a sentence a player reads. */
export function stageFit(report: GpuReport, run: RunConfig): StageFit {
  const configs = runStageConfigs(run);
  const misfits = configs.flatMap((config, stage) => {
    const m = misfit(report, run, config);
    return m ? [{ stage, config, m }] : [];
  });
  const fits = [...configs.keys()].filter((s) => !misfits.some((f) => f.stage === s));
  if (misfits.length === 0) return { ok: true, text: configs.length === 1 ? 'Yes: holds its one stage' : `Yes: holds any of its ${configs.length} stages` };
  if (fits.length > 0) {
    const { stage, m } = misfits[0];
    const why = 'rejected' in m ? `stage ${stage}: ${m.rejected}` : `stage ${stage} needs ${m.needs} layers, this GPU holds ${m.holds}`;
    return { ok: true, text: `Yes: ${fits.length === 1 ? 'stage' : 'stages'} ${ranges(fits)} only (${why})` };
  }
  // Why even the lightest stage does not fit says the most.
  const { m } = misfits.sort((a, b) => lighter(a.config, b.config))[0];
  return { ok: false, text: `No: ${'rejected' in m ? m.rejected : `its smallest stage needs ${m.needs} layers, this GPU holds ${m.holds}`}` };
}
