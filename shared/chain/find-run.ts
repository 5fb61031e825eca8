// Finding a run on a network: its state, where its coordinator listens and where its training text
// is, read from the run registry. Every way it can fail is a sentence a volunteer can act on.
import { createPublicClient, http } from 'viem';
import { type RunInfo, type RunListing, type SwarmChain, swarmChain } from './client.js';
import { chainOf } from './config.js';
import type { Network } from './network.js';

export interface FoundRun {
  run: RunInfo;
  listing: RunListing;
}

/** Why a listed run cannot be joined now, if it cannot. */
export function unjoinable(runId: bigint, f: FoundRun, network: string): string | undefined {
  const { state } = f.run;
  if (state === 'none') return `run ${runId} does not exist on ${network}`;
  if (state === 'trained') return `run ${runId} on ${network} has finished training: it takes no more volunteers`;
  if (state === 'abandoned') return `run ${runId} on ${network} was abandoned by its designer`;
  if (!f.listing.coordinator) return `run ${runId} on ${network} has not announced its coordinator yet`;
  return undefined;
}

/**
 * The chain of `network` through its first RPC that answers, and that RPC's URL (a page joining the
 * run reads the chain there too), after checking it is the chain the network names.
 */
export async function connectNetwork(network: Network): Promise<{ chain: SwarmChain; rpcUrl: string }> {
  const errors: string[] = [];
  for (const rpcUrl of network.rpcUrls) {
    const publicClient = createPublicClient({ chain: chainOf({ rpcUrl, chainId: network.chainId }), transport: http(rpcUrl, { retryCount: 0, timeout: 10_000 }) });
    let actual: number;
    try {
      actual = await publicClient.getChainId();
    } catch (e) {
      errors.push(`${rpcUrl}: ${(e as Error).message.split('\n')[0]}`);
      continue;
    }
    if (actual !== network.chainId) throw new Error(`the RPC at ${rpcUrl} serves chain ${actual}, not ${network.name}'s chain ${network.chainId}: the network file is wrong`);
    return { chain: swarmChain(publicClient, { registry: network.registry, tokens: network.tokens }), rpcUrl };
  }
  throw new Error(`cannot reach ${network.name}'s chain: ${errors.join('; ')}`);
}

/** The chain of `network` through its first RPC that answers (connectNetwork without the URL). */
export const networkChain = async (network: Network): Promise<SwarmChain> => (await connectNetwork(network)).chain;

/** The newest `max` runs of a chain with their listings, newest first (what a Runs page shows). */
export async function listRuns(chain: SwarmChain, max = 20): Promise<FoundRun[]> {
  const count = await chain.runCount();
  const ids = Array.from({ length: Number(count < BigInt(max) ? count : BigInt(max)) }, (_, i) => count - BigInt(i));
  return Promise.all(ids.map(async (runId) => ({ run: await chain.run(runId), listing: await chain.runListing(runId) })));
}

/** Run `runId` of `network` and its listing, or why it cannot be joined. */
export async function findRun(network: Network, runId: bigint): Promise<FoundRun> {
  return findRunOn(await networkChain(network), network.name, runId);
}

/** Run `runId` on a chain already connected (`network`: its name, for the errors), or why it cannot be joined. */
export async function findRunOn(chain: SwarmChain, network: string, runId: bigint): Promise<FoundRun> {
  const [run, listing] = await Promise.all([chain.run(runId), chain.runListing(runId)]);
  const found = { run, listing };
  const why = unjoinable(runId, found, network);
  if (why) throw new Error(why);
  return found;
}

/** Training runs rank above open ones: a volunteer there earns from its first round. */
const STATE_RANK: Partial<Record<FoundRun['run']['state'], number>> = { training: 2, open: 1 };

/**
 * The run a volunteer who named none joins: among those it can join, training before open, then
 * the one most contributors chose, then the newest.
 */
export function bestRun(found: readonly FoundRun[]): FoundRun | undefined {
  const better = ({ run: a }: FoundRun, { run: b }: FoundRun): boolean => {
    const [ra, rb] = [STATE_RANK[a.state] ?? 0, STATE_RANK[b.state] ?? 0];
    if (ra !== rb) return ra > rb;
    if (a.providers !== b.providers) return a.providers > b.providers;
    return a.runId > b.runId;
  };
  let best: FoundRun | undefined;
  for (const f of found) if (unjoinable(f.run.runId, f, '') === undefined && (!best || better(f, best))) best = f;
  return best;
}
