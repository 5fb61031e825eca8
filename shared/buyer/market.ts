// What an inference buyer does, for every front end (the `buy` command, the dashboard): take a
// credential from the cheapest listing when it holds none, spend it on a prompt, and ask the swarm.
import { type Address, formatEther } from 'viem';
import type { WebSocketConstructor } from '../swarm/coordinator-client.js';
import { type Answer, type AnswerOptions, requestAnswer } from './inference-client.js';
import type { SwarmChain } from '../chain/client.js';

/** Buys one credential from the cheapest listing unless `me` holds one; returns its price (0n: none bought). */
export async function ensureCredential(chain: SwarmChain, runId: bigint, me: Address, maxPrice: bigint): Promise<bigint> {
  if ((await chain.credentialsOf(runId, me)) > 0n) return 0n;
  const listings = await chain.openListings(runId);
  const cheapest = listings.sort((a, b) => (a.price < b.price ? -1 : a.price > b.price ? 1 : 0))[0];
  if (!cheapest) throw new Error(`you hold no credential of run ${runId} and none is listed for sale`);
  if (cheapest.price > maxPrice) throw new Error(`the cheapest credential costs ${formatEther(cheapest.price)} ETH, above your limit of ${formatEther(maxPrice)} ETH`);
  await chain.buy(cheapest, 1n);
  return cheapest.price;
}

export interface SpentAnswer extends Answer {
  prompt: string;
}

/** Spends one credential on `prompt` (the chain records the prompt's hash) and waits for the swarm's answer, seeing it as it comes. */
export async function spendAndAsk(
  chain: SwarmChain,
  runId: bigint,
  coordinator: string,
  WebSocketImpl: WebSocketConstructor,
  q: { prompt: string; maxTokens: number },
  o: AnswerOptions = {},
): Promise<SpentAnswer> {
  const { result: spendId } = await chain.spendCredentials(runId, 1n, q.prompt);
  return { prompt: q.prompt, ...(await requestAnswer(coordinator, WebSocketImpl, { spendId, prompt: q.prompt, maxTokens: q.maxTokens }, o)) };
}
