// When the run can start and what it waits for, in words every peer's dashboard shows. Training
// starts when every stage has `run.minPerStage` ready peers; with spot checks on and replicas
// required, the first round must be checkable, so a peer counts once linked to its witnesses (a
// peer that could be routed alone would take a whole step, and early steps weigh most).
import type { RunConfig } from '../shared/run/config.js';
import type { Roster } from './roster.js';
import type { StageStates } from './stage-states.js';

export interface ReadinessOptions {
  run: RunConfig;
  roster: Roster;
  stages: StageStates;
  /** With spot checks on: whether a peer is linked to every witness of its set (witness-sets.ts). */
  checkable?(peerId: string): boolean;
}

export class Readiness {
  constructor(private readonly o: ReadinessOptions) {}

  /** Every stage has enough ready peers to start. */
  canStart(): boolean {
    return this.counts().every((n) => n >= this.o.run.minPerStage);
  }

  waitingReason(): string {
    const counts = this.counts().map((n, s) => `stage ${s}: ${n}/${this.o.run.minPerStage}`);
    return `waiting for peers (ready${this.needsWitnesses() ? ' and linked to their witnesses' : ''} ${counts.join(', ')})`;
  }

  /** Why a started run waits for `stage`, which has no active peer. */
  missingReason(stage: number): string {
    const setting = this.o.roster.placedOn(stage);
    if (setting.length) return `waiting for a peer for stage ${stage} (${setting.map((p) => p.peerId).join(', ')} setting up)`;
    const heldBy = this.o.stages.heldBy(stage);
    return `waiting for a peer for stage ${stage}${heldBy ? ` (its newest state, step ${this.o.stages.newest(stage).step}, is with ${heldBy})` : ''}`;
  }

  private needsWitnesses(): boolean {
    return !!this.o.checkable && this.o.run.minPerStage > 1;
  }

  /** Ready peers of each stage, counted up to `run.minPerStage`: enough to start, so the rest need no look at their witnesses. */
  private counts(): number[] {
    const { roster, run } = this.o;
    const counts = (p: { peerId: string; state: string }) => p.state === 'ready' && (!this.needsWitnesses() || this.o.checkable!(p.peerId));
    return run.layersPerStage.map((_, s) => {
      let n = 0;
      for (const p of roster.placedOn(s)) if (n < run.minPerStage && counts(p)) n++;
      return n;
    });
  }
}
