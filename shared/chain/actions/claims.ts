// What contributors and designers take out of a run: ownership from the final root, the designer's
// share, a share of an abandoned run's stake (or its refund), credited ETH, and re-issued credentials.
import type { Address, Hex } from 'viem';
import { type ChainContext, registry, tokens } from './context.js';
import { send } from './send.js';

export function claim(ctx: ChainContext, runId: bigint, epoch: bigint, account: Address, cumulative: bigint, proof: readonly Hex[]) {
  return send(ctx, registry(ctx), { functionName: 'claim', args: [runId, epoch, account, cumulative, proof] });
}

export const claimDesignerShare = (ctx: ChainContext, runId: bigint) => send(ctx, registry(ctx), { functionName: 'claimDesignerShare', args: [runId] });

export function claimStakeShare(ctx: ChainContext, runId: bigint, account: Address, cumulative: bigint, proof: readonly Hex[]) {
  return send(ctx, registry(ctx), { functionName: 'claimStakeShare', args: [runId, account, cumulative, proof] });
}

/** An abandoned run's stake back to its designer, when no root of it survived (anyone may send it). */
export const refundStake = (ctx: ChainContext, runId: bigint) => send(ctx, registry(ctx), { functionName: 'refundStake', args: [runId] });
/** The ETH the registry credited to this account (stake returned or shared out). */
export const withdraw = (ctx: ChainContext) => send(ctx, registry(ctx), { functionName: 'withdraw', args: [] });
/** Pull the whole re-issued credentials owed to this account's ownership. */
export const claimCredentials = (ctx: ChainContext, runId: bigint) => send(ctx, tokens(ctx), { functionName: 'claimCredentials', args: [runId] });
