// The swarm's contracts behind one object, for front ends that keep a client (the worker, the
// coordinator, the `wallet` and `buy` commands, the dashboard): each method is an action of
// ./actions/ bound to one context, with the action's own typed parameters and result.
// Environment-agnostic (Node, browser, Electron): the caller hands in viem clients, so the same code
// runs with a local key, an injected wallet or none.
import { signMessage } from './actions/account.js';
import { accruedCredentials, credentialsOf, ownershipOf, pendingCredentials, pool, proceeds, supply } from './actions/balances.js';
import { claim, claimCredentials, claimDesignerShare, claimStakeShare, refundStake, withdraw } from './actions/claims.js';
import { type ChainContext, type ReadClient, type SigningWallet, type SwarmAddresses, chainContext } from './actions/context.js';
import { claimed, joined, withdrawable } from './actions/contributor.js';
import { epoch, settled } from './actions/epochs.js';
import { events, watch } from './actions/events.js';
import { abandon, announceCoordinator, finishTraining, join, listCorpus, openRun, postEpoch, startTraining, veto } from './actions/lifecycle.js';
import { listing, openListingCount, openListings } from './actions/listings.js';
import { buy, cancelListing, list, withdrawProceeds } from './actions/market.js';
import { minChallengeWindow, run, runCount, runListing } from './actions/runs.js';
import { invalidateNonce, markServed, relaySpend, signSpend, spendCredentials } from './actions/spending.js';
import { nonce, spend } from './actions/spends.js';
import { stakeOutcome } from './actions/stake.js';

export { ownershipId, credentialId } from './actions/balances.js';
export type { SwarmAddresses } from './actions/context.js';
export type { EpochInfo } from './actions/epochs.js';
export { type ListingInfo, OPEN_LISTINGS_LIMIT } from './actions/listings.js';
export { type RunInfo, type RunListing, type RunState, RUN_STATES } from './actions/runs.js';
export { ChainRevert, type Sent } from './actions/send.js';
export { SPEND_TYPES, promptHash } from './actions/spending.js';
export type { SpendInfo } from './actions/spends.js';
export { STAKE_TO, type StakeOutcome } from './actions/stake.js';

export type SwarmChain = ReturnType<typeof swarmChain>;

export function swarmChain(publicClient: ReadClient, addresses: SwarmAddresses, wallet?: SigningWallet) {
  const ctx = chainContext(publicClient, addresses, wallet);
  // An action with the context filled in; parameters (names, defaults) and result stay the action's.
  const bound =
    <P extends unknown[], R>(action: (ctx: ChainContext, ...args: P) => R) =>
    (...args: P) =>
      action(ctx, ...args);
  return {
    addresses: ctx.addresses,
    account: wallet?.account.address,
    signMessage: bound(signMessage),

    // ---- reads ----
    run: bound(run),
    runListing: bound(runListing),
    runCount: bound(runCount),
    minChallengeWindow: bound(minChallengeWindow),
    epoch: bound(epoch),
    settled: bound(settled),
    stakeOutcome: bound(stakeOutcome),
    joined: bound(joined),
    claimed: bound(claimed),
    withdrawable: bound(withdrawable),
    ownershipOf: bound(ownershipOf),
    credentialsOf: bound(credentialsOf),
    supply: bound(supply),
    pendingCredentials: bound(pendingCredentials),
    accruedCredentials: bound(accruedCredentials),
    pool: bound(pool),
    proceeds: bound(proceeds),
    listing: bound(listing),
    openListings: bound(openListings),
    openListingCount: bound(openListingCount),
    spend: bound(spend),
    nonce: bound(nonce),

    // ---- run lifecycle ----
    openRun: bound(openRun),
    listCorpus: bound(listCorpus),
    announceCoordinator: bound(announceCoordinator),
    join: bound(join),
    startTraining: bound(startTraining),
    postEpoch: bound(postEpoch),
    veto: bound(veto),
    finishTraining: bound(finishTraining),
    abandon: bound(abandon),

    // ---- claims ----
    claim: bound(claim),
    claimDesignerShare: bound(claimDesignerShare),
    claimStakeShare: bound(claimStakeShare),
    refundStake: bound(refundStake),
    withdraw: bound(withdraw),
    claimCredentials: bound(claimCredentials),

    // ---- market and inference ----
    list: bound(list),
    buy: bound(buy),
    cancelListing: bound(cancelListing),
    withdrawProceeds: bound(withdrawProceeds),
    spendCredentials: bound(spendCredentials),
    signSpend: bound(signSpend),
    invalidateNonce: bound(invalidateNonce),
    relaySpend: bound(relaySpend),
    markServed: bound(markServed),

    // ---- events ----
    events: bound(events),
    watch: bound(watch),
  };
}
