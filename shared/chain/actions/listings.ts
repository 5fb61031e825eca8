// Reads of the fixed-price credential listings (ModelTokens' `listings` struct and its set of open ones).
import type { Address } from 'viem';
import { type ChainContext, tokens } from './context.js';

export interface ListingInfo {
  listingId: bigint;
  seller: Address;
  runId: bigint;
  amount: bigint;
  price: bigint;
}

/** How many open listings `openListings` reads unless told: one bounded call, whatever the history. */
export const OPEN_LISTINGS_LIMIT = 100;

export async function listing(ctx: ChainContext, listingId: bigint): Promise<ListingInfo> {
  const [seller, runId, amount, price] = await ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'listings', args: [listingId] });
  return { listingId, seller, runId, amount, price };
}

const byPrice = (a: ListingInfo, b: ListingInfo) => (a.price < b.price ? -1 : a.price > b.price ? 1 : 0);

/**
 * Listings of a run with credentials still for sale, cheapest first: one read of at most `limit`
 * of them (the contract keeps only open listings in that set, so sold-out and cancelled ones,
 * however many, cost nothing to skip). Beyond `limit`, which ones are read is the contract's order.
 */
export async function openListings(ctx: ChainContext, runId: bigint, limit = OPEN_LISTINGS_LIMIT): Promise<ListingInfo[]> {
  const [ids, page] = await ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'openListings', args: [runId, 0n, BigInt(limit)] });
  return page.map((l, i) => ({ listingId: ids[i], ...l })).sort(byPrice);
}

export function openListingCount(ctx: ChainContext, runId: bigint): Promise<bigint> {
  return ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'openListingCount', args: [runId] });
}
