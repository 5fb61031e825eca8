// The coordinator's two pure decisions: how a step's microbatches are routed through the stages
// (planner.ts) and where a joining peer goes (placement.ts). No swarm, no sockets.
import { describe, expect, it } from 'vitest';
import { placePeer, type StageView } from '../coordinator/placement.js';
import { planRoutes, type RoutablePeer, microbatchesPerPeer } from '../coordinator/planner.js';

const P = (peerId: string, msPerMicrobatch = 1000): RoutablePeer => ({ peerId, msPerMicrobatch });
const everyone = () => true;

/** A symmetric link relation from "a-b" pairs. */
function links(...pairs: string[]): (a: string, b: string) => boolean {
  const set = new Set(
    pairs.flatMap((p) => {
      const [a, b] = p.split('-');
      return [`${a}-${b}`, `${b}-${a}`];
    }),
  );
  return (a, b) => set.has(`${a}-${b}`);
}

function routesOf(plan: ReturnType<typeof planRoutes>): string[][] {
  if (!plan.ok) throw new Error(`expected a plan, got: ${plan.error}`);
  return plan.routes;
}

describe('planRoutes', () => {
  it('gives every microbatch exactly one peer per stage, in stage order', () => {
    const stages = [[P('a0'), P('a1')], [P('b0'), P('b1'), P('b2')], [P('c0')]];
    const routes = routesOf(planRoutes(stages, 7, everyone));
    expect(routes).toHaveLength(7);
    for (const path of routes) {
      expect(path).toHaveLength(3);
      path.forEach((id, s) => expect(stages[s].map((p) => p.peerId)).toContain(id));
    }
    // Each stage computes every microbatch exactly once, whoever does it.
    const w = microbatchesPerPeer(routes);
    stages.forEach((peers) => expect(peers.reduce((n, p) => n + (w.get(p.peerId) ?? 0), 0)).toBe(7));
  });

  it('with equal speeds forms two lanes A→C, B→D, deterministically', () => {
    const stages = [
      [P('A'), P('B')],
      [P('C'), P('D')],
    ];
    const routes = routesOf(planRoutes(stages, 4, everyone));
    expect(routes).toEqual([
      ['A', 'C'],
      ['B', 'D'],
      ['A', 'C'],
      ['B', 'D'],
    ]);
    expect(routesOf(planRoutes(stages, 4, everyone))).toEqual(routes);
    expect([...microbatchesPerPeer(routes)].sort()).toEqual([
      ['A', 2],
      ['B', 2],
      ['C', 2],
      ['D', 2],
    ]);
  });

  it('gives a slower peer fewer microbatches, in proportion to its speed', () => {
    // B takes three times as long per microbatch as A: lowest expected finish time gives 6 to A, 2 to B.
    const routes = routesOf(
      planRoutes(
        [
          [P('A', 1000), P('B', 3000)],
          [P('C'), P('D')],
        ],
        8,
        everyone,
      ),
    );
    const w = microbatchesPerPeer(routes);
    expect(w.get('A')).toBe(6);
    expect(w.get('B')).toBe(2);
    // And the same holds for the order of the peers (B first): speed decides, not position.
    const w2 = microbatchesPerPeer(
      routesOf(
        planRoutes(
          [
            [P('B', 3000), P('A', 1000)],
            [P('C'), P('D')],
          ],
          8,
          everyone,
        ),
      ),
    );
    expect(w2.get('A')).toBeGreaterThan(w2.get('B')!);
  });

  it('round-robin (the naive policy) gives each peer its turn whatever its speed, over linked pairs only', () => {
    const stages = [
      [P('A', 1000), P('B', 3000)],
      [P('C'), P('D'), P('E')],
    ];
    const w = microbatchesPerPeer(routesOf(planRoutes(stages, 8, everyone, 'round-robin')));
    expect([w.get('A'), w.get('B')]).toEqual([4, 4]);
    expect([w.get('C'), w.get('D'), w.get('E')]).toEqual([3, 3, 2]);
    // B reaches only E: its microbatches all go there, whoever's turn it is.
    const routes = routesOf(planRoutes(stages, 4, links('A-C', 'A-D', 'B-E'), 'round-robin'));
    for (const [first, second] of routes) expect(first === 'B' ? second === 'E' : second !== 'E').toBe(true);
  });

  it('lets the other replica serve both lanes when a stage-1 replica is lost', () => {
    const routes = routesOf(planRoutes([[P('A'), P('B')], [P('C')]], 4, everyone));
    for (const path of routes) expect(path[1]).toBe('C');
    expect(microbatchesPerPeer(routes).get('C')).toBe(4);
    expect(microbatchesPerPeer(routes).get('A')).toBe(2);
    expect(microbatchesPerPeer(routes).get('B')).toBe(2);
  });

  it('routes only over linked pairs and never through a peer with no onward link', () => {
    // B's only link onward is D, and D has no link to the last stage: B and D are dead ends.
    const linked = links('A-C', 'B-D', 'C-E', 'A-D');
    const routes = routesOf(planRoutes([[P('A'), P('B')], [P('C'), P('D')], [P('E')]], 6, linked));
    for (const path of routes) {
      expect(path).toEqual(['A', 'C', 'E']);
      for (let s = 1; s < path.length; s++) expect(linked(path[s - 1], path[s])).toBe(true);
    }
    // Partial links: A reaches only C, B only D; both lanes survive and no unlinked pair is used.
    const partial = links('A-C', 'B-D');
    for (const path of routesOf(
      planRoutes(
        [
          [P('A'), P('B')],
          [P('C'), P('D')],
        ],
        5,
        partial,
      ),
    ))
      expect(partial(path[0], path[1])).toBe(true);
  });

  it('fails with an error naming the stage when there is no path', () => {
    expect(planRoutes([], 4, everyone)).toEqual({ ok: false, error: expect.stringContaining('no stages') });
    const empty = planRoutes([[P('A')], []], 4, everyone);
    expect(empty.ok).toBe(false);
    if (!empty.ok) expect(empty.error).toMatch(/stage 1 has no peer/);
    const cut = planRoutes([[P('A')], [P('C')]], 4, links());
    expect(cut.ok).toBe(false);
    if (!cut.ok) expect(cut.error).toMatch(/stage 0 .*stage 1/);
    // Stage 1 reaches stage 0 but nothing of stage 2: the error names stage 1.
    const dead = planRoutes([[P('A')], [P('C')], [P('E')]], 4, links('A-C'));
    expect(dead.ok).toBe(false);
    if (!dead.ok) expect(dead.error).toMatch(/no peer of stage 1 /);
  });
});

describe('workOf', () => {
  it('counts the microbatches of each peer across routes', () => {
    const w = microbatchesPerPeer([
      ['A', 'C'],
      ['A', 'D'],
      ['B', 'C'],
      ['A', 'C'],
    ]);
    expect(Object.fromEntries(w)).toEqual({ A: 3, B: 1, C: 3, D: 1 });
    expect(microbatchesPerPeer([]).size).toBe(0);
  });
});

describe('placePeer', () => {
  const view = (stage: number, layers: number, peers: number, capacity: number, orphaned = false): StageView => ({ stage, layers, peers, capacity, orphaned });

  it('goes to a stage nobody holds before comparing capacity', () => {
    expect(placePeer(8, [view(0, 2, 3, 3), view(1, 2, 0, 0), view(2, 2, 1, 0.1)])).toEqual({ ok: true, stage: 1 });
    // Even when a held stage reports less capacity than the empty one: an empty stage stops the run.
    expect(placePeer(8, [view(0, 2, 1, 0.2), view(1, 2, 0, 1)])).toEqual({ ok: true, stage: 1 });
  });

  it('then goes to the stage with the least capacity; ties go to fewer peers', () => {
    expect(placePeer(8, [view(0, 2, 2, 3), view(1, 2, 2, 1), view(2, 2, 1, 2)])).toEqual({ ok: true, stage: 1 });
    expect(placePeer(8, [view(0, 2, 3, 2), view(1, 2, 2, 2), view(2, 2, 4, 2)])).toEqual({ ok: true, stage: 1 });
  });

  it('only considers stages whose layers the peer can hold', () => {
    // Stage 0 is empty but too big for this GPU.
    expect(placePeer(2, [view(0, 4, 0, 0), view(1, 2, 2, 5)])).toEqual({ ok: true, stage: 1 });
  });

  it('gives a reason to a peer that cannot hold any stage', () => {
    const r = placePeer(1, [view(0, 3, 0, 0), view(1, 2, 0, 0)]);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/hold 1 layer.*smallest stage of this run has 2/);
  });

  it('never offers an orphaned stage', () => {
    // Stage 1 has nobody, but its newest state is with a gone peer: only that state can bring it back.
    expect(placePeer(8, [view(0, 2, 2, 2), view(1, 2, 0, 0, true)])).toEqual({ ok: true, stage: 0 });
    const r = placePeer(2, [view(0, 4, 1, 1), view(1, 2, 0, 0, true)]);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/\(1\) are waiting for the peer that holds their newest state/);
  });
});
