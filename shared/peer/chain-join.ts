// Joining the run on chain is what makes this peer's work claimable, and a run can only be joined
// while it trains. The first attempt is made before the peer says it is ready (so the run has a
// provider when it starts on chain); a failed one (a busy RPC) is retried in the background, with
// backoff, until it succeeds or the session ends.
import type { PeerContext } from './context.js';
import type { ChainInfo } from './host.js';

export async function joinChain(ctx: PeerContext, chain: ChainInfo): Promise<void> {
  const w = ctx.host.wallet;
  if (!w) return ctx.say(`the run settles on chain ${chain.chainId}, but this peer has no wallet: its work will not earn ownership`);
  const attempt = async (n: number): Promise<void> => {
    try {
      await w.joinRun(chain);
      ctx.say(`joined run ${chain.runId} on chain ${chain.chainId} as ${w.account}`);
    } catch (e) {
      const wait = Math.min(30, 2 ** (n - 1));
      ctx.say(`could not join run ${chain.runId} on chain (attempt ${n}): ${(e as Error).message}; trying again in ${wait} s (until it joins, this peer's work is not claimable)`);
      setTimeout(() => !ctx.leaving() && void attempt(n + 1), wait * 1000);
    }
  };
  await attempt(1);
}
