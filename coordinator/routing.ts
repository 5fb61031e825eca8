// Which peers work may go to, and the paths through the stages (planner.ts chooses among them).
// With spot checks on, only replicas linked to every witness the coordinator assigned them
// (witness-sets.ts) take training work wherever their stage has any: a peer would otherwise do work
// nobody can audit, or pick its own auditor by the channels it opens. A peer that reported
// MAX_STALLS stalls within STALL_WINDOW rounds is benched (routed nothing) until they age out: a
// stall discards a round and the coordinator cannot tell which end of a channel failed, so a peer
// blaming its neighbours round after round stops costing anyone but itself. Evaluation and generation paths handed out
// lately are remembered: a peer lost on one is news to every peer of it.
import type { RunConfig } from '../shared/run/config.js';
import { type Plan, planRoutes, type RoutablePeer, type RoutingPolicy } from './planner.js';
import type { Roster } from './roster.js';

/** Evaluations and generations overlap little: the last few paths cover every one still running. */
const RECENT_PATHS = 16;
/** Stall reports within STALL_WINDOW rounds after which the reporter is benched. */
export const MAX_STALLS = 3;
export const STALL_WINDOW = 50;

export interface RoutingOptions {
  run: RunConfig;
  roster: Roster;
  /** With spot checks on: whether a peer is linked to its assigned witnesses (then only those are routed, where a stage has any). */
  checkable?: (peerId: string) => boolean;
  policy?: RoutingPolicy;
}

export class Routing {
  private readonly recentPaths: string[][] = [];
  /** The rounds in which each peer reported a stall (the last STALL_WINDOW rounds). */
  private readonly stalls = new Map<string, number[]>();
  private round = 0;

  constructor(private readonly o: RoutingOptions) {}

  /** Routes for round `round`'s microbatches. */
  planStep(round: number): Plan {
    this.round = round;
    return planRoutes(this.routable(), this.o.run.microbatches, (a, b) => this.o.roster.linked(a, b), this.o.policy);
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
      const next = s.filter((p) => walk.length === 0 || this.o.roster.linked(walk.at(-1)!, p.peerId));
      if (next.length === 0) break;
      walk.push(next[Math.floor(Math.random() * next.length)].peerId);
    }
    const plan = walk.length === stages.length ? undefined : planRoutes(stages, 1, (a, b) => this.o.roster.linked(a, b));
    if (plan && !plan.ok) return undefined;
    const path = plan ? plan.routes[0] : walk;
    this.recentPaths.push(path);
    if (this.recentPaths.length > RECENT_PATHS) this.recentPaths.shift();
    return path;
  }

  /** `peerId` reported a stall in round `round`. */
  stalled(peerId: string, round: number): void {
    this.stalls.set(peerId, [...(this.stalls.get(peerId) ?? []), round].slice(-MAX_STALLS));
  }

  /** Whether `peerId` is benched for the stalls it reported (as of the last round planned). */
  benched(peerId: string): boolean {
    const s = this.stalls.get(peerId);
    return !!s && s.length >= MAX_STALLS && this.round - s[0] < STALL_WINDOW;
  }

  /** Every peer of a recent path through `peerId`. */
  onPathsThrough(peerId: string): string[] {
    return this.recentPaths.filter((path) => path.includes(peerId)).flat();
  }

  /** The peers each stage's work may go to, in a stable order that breaks ties. */
  private routable(): RoutablePeer[][] {
    const { roster } = this.o;
    return this.o.run.layersPerStage.map((_, s) => {
      const unbenched = roster.active(s).filter((p) => !this.benched(p.peerId));
      const active = unbenched.length ? unbenched : roster.active(s);
      const checkable = this.o.checkable ? active.filter((p) => this.o.checkable!(p.peerId)) : [];
      return (checkable.length ? checkable : active).sort((a, b) => (a.peerId < b.peerId ? -1 : 1)).map((p) => ({ peerId: p.peerId, msPerMicrobatch: roster.plannedMs(p) }));
    });
  }
}
