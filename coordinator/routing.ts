// Which peers work may go to, and the paths through the stages (planner.ts chooses among them).
// With spot checks on, only replicas linked to every witness the coordinator assigned them
// (witness-sets.ts) take training work wherever their stage has any: a peer would otherwise do work
// nobody can audit, or pick its own auditor by the channels it opens. Evaluation and generation paths handed out
// lately are remembered: a peer lost on one is news to every peer of it.
import type { RunConfig } from '../shared/run/config.js';
import { type Plan, planRoutes, type RoutablePeer, type RoutingPolicy } from './planner.js';
import type { Roster } from './roster.js';

/** Evaluations and generations overlap little: the last few paths cover every one still running. */
const RECENT_PATHS = 16;

export interface RoutingOptions {
  run: RunConfig;
  roster: Roster;
  /** With spot checks on: whether a peer is linked to its assigned witnesses (then only those are routed, where a stage has any). */
  checkable?: (peerId: string) => boolean;
  policy?: RoutingPolicy;
}

export class Routing {
  private readonly recentPaths: string[][] = [];

  constructor(private readonly o: RoutingOptions) {}

  /** Routes for one training step's microbatches. */
  planStep(): Plan {
    return planRoutes(this.routable(), this.o.run.microbatches, (a, b) => this.o.roster.linked(a, b), this.o.policy);
  }

  /** One path through the stages for evaluation or generation, avoiding `exclude`. */
  path(exclude: ReadonlySet<string> = new Set()): string[] | undefined {
    const stages = this.routable().map((s) => s.filter((p) => !exclude.has(p.peerId)));
    const plan = planRoutes(stages, 1, (a, b) => this.o.roster.linked(a, b));
    if (!plan.ok) return undefined;
    this.recentPaths.push(plan.routes[0]);
    if (this.recentPaths.length > RECENT_PATHS) this.recentPaths.shift();
    return plan.routes[0];
  }

  /** Every peer of a recent path through `peerId`. */
  onPathsThrough(peerId: string): string[] {
    return this.recentPaths.filter((path) => path.includes(peerId)).flat();
  }

  /** The peers each stage's work may go to, in a stable order that breaks ties. */
  private routable(): RoutablePeer[][] {
    const { roster } = this.o;
    return this.o.run.layersPerStage.map((_, s) => {
      const active = roster.active(s);
      const checkable = this.o.checkable ? active.filter((p) => this.o.checkable!(p.peerId)) : [];
      return (checkable.length ? checkable : active).sort((a, b) => (a.peerId < b.peerId ? -1 : 1)).map((p) => ({ peerId: p.peerId, msPerMicrobatch: roster.plannedMs(p) }));
    });
  }
}
