// Routing a step's microbatches through the swarm (ARCHITECTURE §3, after SWARM parallelism):
// every microbatch needs one peer per stage, and each hop goes to the peer of that stage with the
// lowest expected finish time (the work already routed to it plus one more microbatch at its
// measured speed), among the peers that have a working data channel to the previous hop and a way
// on to the last stage. A replica may so serve several lanes, and a lane broken by a lost peer is
// carried by the replicas of the missing stage in other lanes. Pure: tested without a swarm.

export interface RoutablePeer {
  peerId: string;
  /** Expected milliseconds per microbatch (forward + backward) on this peer. */
  msPerMicrobatch: number;
}

export type Plan = { ok: true; routes: string[][] } | { ok: false; error: string };

/**
 * How a hop is chosen among the peers that can take it: the lowest expected finish time, or each
 * in turn (the naive policy, kept to measure what the first one is worth: bench/wan.ts).
 */
export type RoutingPolicy = 'finish-time' | 'round-robin';

/**
 * Paths for `microbatches` microbatches through `stages` (the active peers of each stage, in a
 * stable order that breaks ties). `linked(a, b)` says whether a's and b's data channel is open.
 */
export function planRoutes(stages: RoutablePeer[][], microbatches: number, linked: (a: string, b: string) => boolean, policy: RoutingPolicy = 'finish-time'): Plan {
  const S = stages.length;
  if (S === 0) return { ok: false, error: 'the run has no stages' };
  const empty = stages.findIndex((s) => s.length === 0);
  if (empty >= 0) return { ok: false, error: `stage ${empty} has no peer` };
  // reach[s]: peers of stage s from which a chain of open channels runs to the last stage.
  const reach: RoutablePeer[][] = new Array(S);
  reach[S - 1] = stages[S - 1];
  for (let s = S - 2; s >= 0; s--) {
    reach[s] = stages[s].filter((p) => reach[s + 1].some((q) => linked(p.peerId, q.peerId)));
    if (reach[s].length === 0) return { ok: false, error: `no peer of stage ${s} has an open channel to a peer of stage ${s + 1} that reaches the last stage` };
  }
  const load = new Map<string, number>();
  const finish = (p: RoutablePeer) => (load.get(p.peerId) ?? 0) + p.msPerMicrobatch;
  const turn = new Array<number>(S).fill(0);
  const routes: string[][] = [];
  for (let i = 0; i < microbatches; i++) {
    const path: string[] = [];
    for (let s = 0; s < S; s++) {
      const options = s === 0 ? reach[0] : reach[s].filter((p) => linked(path[s - 1], p.peerId));
      let best = options[0];
      if (policy === 'round-robin') best = options[turn[s]++ % options.length];
      else for (const p of options) if (finish(p) < finish(best)) best = p;
      load.set(best.peerId, finish(best));
      path.push(best.peerId);
    }
    routes.push(path);
  }
  return { ok: true, routes };
}

/** How many microbatches each peer computes under `routes` (at its own stage). */
export function microbatchesPerPeer(routes: string[][]): Map<string, number> {
  const n = new Map<string, number>();
  for (const path of routes) for (const p of path) n.set(p, (n.get(p) ?? 0) + 1);
  return n;
}
