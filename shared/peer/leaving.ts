// A graceful leave may hand the stage's state to an heir: when this peer was its stage's last
// replica, the coordinator names a peer setting up for the stage shortly after the leave, and this
// peer stays until the heir has fetched its state (or a minute has passed).
import { type PeerContext, sleep } from './context.js';
import type { Neighbours } from './neighbours.js';

/** How long the coordinator has to name an heir after the leave. */
const NAMING_MS = 1500;
/** How long a leaving peer waits for its heir to fetch its state. */
const HANDOFF_WAIT_MS = 60_000;

/** If an heir is named, wait until `fetched()` (the heir took the kept state), then let the last chunks drain. */
export async function waitForHeir(ctx: PeerContext, neighbours: Neighbours, fetched: () => boolean): Promise<void> {
  const deadline = ctx.host.now() + NAMING_MS;
  while (!neighbours.handoffTo && ctx.host.now() < deadline) await sleep(50);
  if (!neighbours.handoffTo) return;
  const until = ctx.host.now() + HANDOFF_WAIT_MS;
  ctx.say(`handing the stage's state to ${neighbours.handoffTo}`);
  while (!fetched() && ctx.host.now() < until) await sleep(100);
  await sleep(500); // let the last chunks drain from the channel
}
