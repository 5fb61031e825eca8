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

/** The chain of `network` through its first RPC that answers, after checking it is the chain the network names. */
export async function networkChain(network: Network) {
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
    return swarmChain(publicClient, { registry: network.registry, tokens: network.tokens });
  }
  throw new Error(`cannot reach ${network.name}'s chain: ${errors.join('; ')}`);
}

/** The newest `max` runs of a chain with their listings, newest first (what a Runs page shows). */
export async function listRuns(chain: SwarmChain, max = 20): Promise<FoundRun[]> {
  const count = await chain.runCount();
  const ids = Array.from({ length: Number(count < BigInt(max) ? count : BigInt(max)) }, (_, i) => count - BigInt(i));
  return Promise.all(ids.map(async (runId) => ({ run: await chain.run(runId), listing: await chain.runListing(runId) })));
}

/** Run `runId` of `network` and its listing, or why it cannot be joined. */
export async function findRun(network: Network, runId: bigint): Promise<FoundRun> {
  const chain = await networkChain(network);
  const [run, listing] = await Promise.all([chain.run(runId), chain.runListing(runId)]);
  const found = { run, listing };
  const why = unjoinable(runId, found, network.name);
  if (why) throw new Error(why);
  return found;
}
