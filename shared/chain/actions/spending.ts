// Spending credentials on inference: directly, or signed (EIP-712) by the buyer for someone else to
// relay; revoking a signature; and the coordinator recording that a spend was answered.
import { type Address, type Hex, keccak256, toHex } from 'viem';
import { type ChainContext, tokens } from './context.js';
import { send } from './send.js';
import { nonce } from './spends.js';

/** EIP-712 type of a signed spend (ModelTokens.SPEND_TYPEHASH). */
export const SPEND_TYPES = {
  Spend: [
    { name: 'buyer', type: 'address' },
    { name: 'runId', type: 'uint256' },
    { name: 'amount', type: 'uint256' },
    { name: 'promptHash', type: 'bytes32' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
} as const;

/** What a spend commits to on chain: the prompt's hash, never the prompt. */
export const promptHash = (prompt: string): Hex => keccak256(toHex(prompt));

export function spendCredentials(ctx: ChainContext, runId: bigint, amount: bigint, prompt: string) {
  return send(ctx, tokens(ctx), { functionName: 'spend', args: [runId, amount, promptHash(prompt)] });
}

/** Sign a spend (EIP-712) for someone else to relay; binds this chain, this contract and the buyer's next nonce. */
export async function signSpend(ctx: ChainContext, runId: bigint, amount: bigint, prompt: string, deadline: bigint) {
  const { wallet, publicClient } = ctx;
  if (!wallet) throw new Error('signSpend: no wallet connected');
  const buyer = wallet.account.address;
  const message = { buyer, runId, amount, promptHash: promptHash(prompt), nonce: await nonce(ctx, buyer), deadline };
  const domain = { name: 'SwarmModelTokens', version: '1', chainId: await publicClient.getChainId(), verifyingContract: ctx.addresses.tokens };
  const signature = await wallet.signTypedData({ account: wallet.account, domain, types: SPEND_TYPES, primaryType: 'Spend', message });
  return { ...message, signature };
}

export interface SignedSpend {
  buyer: Address;
  runId: bigint;
  amount: bigint;
  promptHash: Hex;
  deadline: bigint;
  signature: Hex;
}

export function relaySpend(ctx: ChainContext, s: SignedSpend) {
  return send(ctx, tokens(ctx), { functionName: 'spendWithSig', args: [s.buyer, s.runId, s.amount, s.promptHash, s.deadline, s.signature] });
}

/** Revoke every signed spend not yet relayed (burns this account's next nonce). */
export const invalidateNonce = (ctx: ChainContext) => send(ctx, tokens(ctx), { functionName: 'invalidateNonce', args: [] });
export const markServed = (ctx: ChainContext, spendId: bigint, answerHash: Hex) => send(ctx, tokens(ctx), { functionName: 'markServed', args: [spendId, answerHash] });
