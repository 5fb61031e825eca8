// Which peers work may go to, and the paths through the stages (planner.ts chooses among them).
// With spot checks on, only replicas linked to every witness the coordinator assigned them
// (witness-sets.ts) take training work wherever their stage has any: a peer would otherwise do work
// nobody can audit, or pick its own auditor by the channels it opens. A channel a stall was blamed
// on is cut for CUT_ROUNDS rounds: the coordinator cannot tell which end failed (or lies), so
// neither end is blamed beyond that channel, and a peer can discard at most one round per channel
// it has in that time; where cuts leave no path at all, the run goes on over them. Evaluation and
// generation paths handed out lately are remembered: a peer lost on one is news to every peer of it.
import type { RunConfig } from '../shared/run/config.js';
import { type Plan, planRoutes, type RoutablePeer, type RoutingPolicy } from './planner.js';
import type { Roster } from './roster.js';

/** Evaluations and generations overlap little: the last few paths cover every one still running. */
const RECENT_PATHS = 16;
/** Rounds a channel a stall was blamed on is routed around. */
export const CUT_ROUNDS = 50;

export interface RoutingOptions {
  run: RunConfig;
  roster: Roster;
  /** With spot checks on: whether a peer is linked to its assigned witnesses (then only those are routed, where a stage has any). */
  checkable?: (peerId: string) => boolean;
  policy?: RoutingPolicy;
}

export class Routing {
  private readonly recentPaths: string[][] = [];
  /** The round each cut channel ("a,b", sorted) was cut in (the last CUT_ROUNDS rounds). */
  private readonly cuts = new Map<string, number>();
  private round = 0;

  constructor(private readonly o: RoutingOptions) {}

  /** Routes for round `round`'s microbatches. */
  planStep(round: number): Plan {
    this.round = round;
    for (const [pair, at] of this.cuts) if (round - at >= CUT_ROUNDS) this.cuts.delete(pair);
    const stages = this.routable();
    const first = planRoutes(stages, this.o.run.microbatches, this.usable, this.o.policy);
    const plan = first.ok ? first : planRoutes(stages, this.o.run.microbatches, this.linked, this.o.policy);
    if (plan.ok) this.o.roster.relaxIdle(new Set(plan.routes.flat()));
    return plan;
  }

  /**
   * One path through the stages for evaluation or generation, avoiding `exclude`: a random walk
   * along open channels, so the load spreads and no peer can make itself every evaluation's
   * receiver (the planner's choice where the walk dead-ends).
   */
  path(exclude: ReadonlySet<string> = new Set()): string[] | undefined {
    const stages = this.routable().map((s) => s.filter((p) => !exclude.has(p.peerId)));
    const walk: string[] = [];
    for (const s of stages) {
      const next = s.filter((p) => walk.length === 0 || this.usable(walk.at(-1)!, p.peerId));
      if (next.length === 0) break;
      walk.push(next[Math.floor(Math.random() * next.length)].peerId);
    }
    const plan = walk.length === stages.length ? undefined : planRoutes(stages, 1, this.linked);
    if (plan && !plan.ok) return undefined;
    const path = plan ? plan.routes[0] : walk;
    this.recentPaths.push(path);
    if (this.recentPaths.length > RECENT_PATHS) this.recentPaths.shift();
    return path;
  }

  /** A stall was blamed on the channel between a and b: route around it for CUT_ROUNDS rounds. */
  cut(a: string, b: string): void {
    this.cuts.set([a, b].sort().join(), this.round);
  }

  private readonly linked = (a: string, b: string): boolean => this.o.roster.linked(a, b);
  private readonly usable = (a: string, b: string): boolean => this.linked(a, b) && !this.cuts.has([a, b].sort().join());

  /** Every peer of a recent path through `peerId`. */
  onPathsThrough(peerId: string): string[] {
    return this.recentPaths.filter((path) => path.includes(peerId)).flat();
  }

  /**
   * The peers each stage's work may go to, in the order that breaks the planner's ties: by id,
   * turned by one each round. Peers planned at the same time (the stage's lower median, as most
   * are) tie, and a fixed order would hand the same peer every spare microbatch, round after round.
   */
  private routable(): RoutablePeer[][] {
    const { roster } = this.o;
    return this.o.run.layersPerStage.map((_, s) => {
      const active = roster.active(s);
      const checkable = this.o.checkable ? active.filter((p) => this.o.checkable!(p.peerId)) : [];
      const sorted = (checkable.length ? checkable : active).sort((a, b) => (a.peerId < b.peerId ? -1 : 1));
      const turn = sorted.length ? this.round % sorted.length : 0;
      return [...sorted.slice(turn), ...sorted.slice(0, turn)].map((p) => ({ peerId: p.peerId, msPerMicrobatch: roster.plannedMs(p) }));
    });
  }
}
