// What the registry records of one account: whether it joined a run, the ownership units it claimed,
// and the ETH (stake) waiting for it to withdraw.
import type { Address } from 'viem';
import { type ChainContext, registry } from './context.js';

export function joined(ctx: ChainContext, runId: bigint, account: Address): Promise<boolean> {
  return ctx.publicClient.readContract({ ...registry(ctx), functionName: 'joined', args: [runId, account] });
}

/** Cumulative units already claimed as ownership. */
export function claimed(ctx: ChainContext, runId: bigint, account: Address): Promise<bigint> {
  return ctx.publicClient.readContract({ ...registry(ctx), functionName: 'claimed', args: [runId, account] });
}

export function withdrawable(ctx: ChainContext, account: Address): Promise<bigint> {
  return ctx.publicClient.readContract({ ...registry(ctx), functionName: 'withdrawable', args: [account] });
}
