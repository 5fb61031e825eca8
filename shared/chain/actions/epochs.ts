// Reads of the roots a run's coordinator posted (RunRegistry's `epochs` struct) and whether one settled.
import type { Hex } from 'viem';
import { type ChainContext, registry } from './context.js';

export interface EpochInfo {
  root: Hex;
  total: bigint;
  claimableAt: bigint;
  vetoed: boolean;
}

export async function epoch(ctx: ChainContext, runId: bigint, epoch: bigint): Promise<EpochInfo> {
  const [root, total, claimableAt, vetoed] = await ctx.publicClient.readContract({ ...registry(ctx), functionName: 'epochs', args: [runId, epoch] });
  return { root, total, claimableAt, vetoed };
}

/** Posted, not vetoed, and past its challenge window. */
export function settled(ctx: ChainContext, runId: bigint, epoch: bigint): Promise<boolean> {
  return ctx.publicClient.readContract({ ...registry(ctx), functionName: 'settled', args: [runId, epoch] });
}
