// Signing as the chain client's own account, off chain: a peer proves to the coordinator that it
// holds the account it is paid at.
import type { Hex } from 'viem';
import type { ChainContext } from './context.js';

/** EIP-191 signature of `message` by this client's account. */
export async function signMessage(ctx: ChainContext, message: string): Promise<Hex> {
  if (!ctx.wallet) throw new Error('this chain client has no account to sign with');
  return ctx.wallet.signMessage({ account: ctx.wallet.account, message });
}
