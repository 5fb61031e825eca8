// Fixed-price credential sales on ModelTokens: list (credentials held in escrow), buy (pays the
// listing's price), cancel, and the seller's withdrawal of what sales earned.
import { type ChainContext, tokens } from './context.js';
import type { ListingInfo } from './listings.js';
import { send } from './send.js';

export function list(ctx: ChainContext, runId: bigint, amount: bigint, pricePerCredential: bigint) {
  return send(ctx, tokens(ctx), { functionName: 'list', args: [runId, amount, pricePerCredential] });
}

/** Pays exactly `amount` × the listing's price, the only payment the contract accepts. */
export function buy(ctx: ChainContext, listing: ListingInfo, amount: bigint) {
  return send(ctx, tokens(ctx), { functionName: 'buy', args: [listing.listingId, amount], value: amount * listing.price });
}

export const cancelListing = (ctx: ChainContext, listingId: bigint) => send(ctx, tokens(ctx), { functionName: 'cancelListing', args: [listingId] });
export const withdrawProceeds = (ctx: ChainContext) => send(ctx, tokens(ctx), { functionName: 'withdrawProceeds', args: [] });
