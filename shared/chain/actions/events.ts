// Both contracts' events as one stream: the history from a block on (a dashboard's first paint), and
// new ones as they are mined.
import type { Log } from 'viem';
import { type ChainContext, registry, tokens } from './context.js';

/** Every event of both contracts from `fromBlock` on, oldest first. */
export async function events(ctx: ChainContext, fromBlock = 0n) {
  const [a, b] = await Promise.all([ctx.publicClient.getContractEvents({ ...registry(ctx), fromBlock }), ctx.publicClient.getContractEvents({ ...tokens(ctx), fromBlock })]);
  return [...a, ...b].sort((x, y) => Number(x.blockNumber! - y.blockNumber!) || (x.logIndex ?? 0) - (y.logIndex ?? 0));
}

/** New events of both contracts as they are mined; returns the unsubscribe function. */
export function watch(ctx: ChainContext, onLogs: (logs: Log[]) => void, pollingInterval = 500): () => void {
  const stopA = ctx.publicClient.watchContractEvent({ ...registry(ctx), onLogs, pollingInterval });
  const stopB = ctx.publicClient.watchContractEvent({ ...tokens(ctx), onLogs, pollingInterval });
  return () => {
    stopA();
    stopB();
  };
}
