// Reads of credentials spent on inference (ModelTokens' `spends` struct) and of a buyer's spend nonce.
import type { Address, Hex } from 'viem';
import { type ChainContext, tokens } from './context.js';

export interface SpendInfo {
  spendId: bigint;
  buyer: Address;
  runId: bigint;
  amount: bigint;
  promptHash: Hex;
  served: boolean;
}

export async function spend(ctx: ChainContext, spendId: bigint): Promise<SpendInfo> {
  const [buyer, runId, amount, promptHash, served] = await ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'spends', args: [spendId] });
  return { spendId, buyer, runId, amount, promptHash, served };
}

/** The nonce `buyer`'s next signed spend must carry. */
export function nonce(ctx: ChainContext, buyer: Address): Promise<bigint> {
  return ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'nonces', args: [buyer] });
}
