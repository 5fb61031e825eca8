// Where an abandoned run's stake goes (RunRegistry.stakeOutcome), with when an undecided outcome
// will be decided, so a contributor is told when to come back rather than just "not yet".
import { type ChainContext, registry } from './context.js';
import { epoch } from './epochs.js';
import { run } from './runs.js';

export const STAKE_TO = ['undecided', 'designer', 'contributors'] as const;

export interface StakeOutcome {
  /** 'undecided': not abandoned, or a root posted before is still in its window (until `decidedAt`). */
  to: (typeof STAKE_TO)[number];
  /** The root the contributors are paid from ('contributors'), or whose window is awaited ('undecided'). */
  epoch: bigint;
  /** When an undecided outcome is decided (the awaited root's window ends; chain time, seconds). */
  decidedAt?: bigint;
}

export async function stakeOutcome(ctx: ChainContext, runId: bigint): Promise<StakeOutcome> {
  const [to, awaited] = await ctx.publicClient.readContract({ ...registry(ctx), functionName: 'stakeOutcome', args: [runId] });
  const outcome: StakeOutcome = { to: STAKE_TO[to], epoch: awaited };
  if (outcome.to === 'undecided' && (await run(ctx, runId)).state === 'abandoned') outcome.decidedAt = (await epoch(ctx, runId, awaited)).claimableAt;
  return outcome;
}
