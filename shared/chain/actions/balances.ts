// What an account holds of a run on ModelTokens: ownership and credentials (two ERC-1155 ids per
// run), credentials re-issued to owners and not yet pulled, the run's re-issue pool, and sale proceeds.
import type { Address } from 'viem';
import { type ChainContext, tokens } from './context.js';

/** ERC-1155 id of a run's ownership units (ModelTokens.ownershipId). */
export const ownershipId = (runId: bigint) => runId * 2n;
/** ERC-1155 id of a run's inference credentials (ModelTokens.credentialId). */
export const credentialId = (runId: bigint) => runId * 2n + 1n;

function balanceOf(ctx: ChainContext, account: Address, id: bigint): Promise<bigint> {
  return ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'balanceOf', args: [account, id] });
}

export const ownershipOf = (ctx: ChainContext, runId: bigint, account: Address) => balanceOf(ctx, account, ownershipId(runId));
export const credentialsOf = (ctx: ChainContext, runId: bigint, account: Address) => balanceOf(ctx, account, credentialId(runId));

export function supply(ctx: ChainContext, id: bigint): Promise<bigint> {
  return ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'totalSupply', args: [id] });
}

/** Re-issued credentials `account` can pull now (whole credentials). */
export function pendingCredentials(ctx: ChainContext, runId: bigint, account: Address): Promise<bigint> {
  return ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'pendingCredentials', args: [runId, account] });
}

/** Re-issued and not yet pulled, fraction included, in 1e18ths of a credential. */
export function accruedCredentials(ctx: ChainContext, runId: bigint, account: Address): Promise<bigint> {
  return ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'accruedCredentials', args: [runId, account] });
}

/** The run's re-issue pool (ModelTokens' `pools` struct). */
export async function pool(ctx: ChainContext, runId: bigint) {
  const [ownershipTotal, ownershipMinted, accPerUnit, remainder, reissued, paidOut] = await ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'pools', args: [runId] });
  return { ownershipTotal, ownershipMinted, accPerUnit, remainder, reissued, paidOut };
}

/** Wei from sold credentials waiting for `account` to withdraw. */
export function proceeds(ctx: ChainContext, account: Address): Promise<bigint> {
  return ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'proceeds', args: [account] });
}
