// Which work is verified: a lane's step counts once every stage of the lane reports having
// finished it (the last stage computed its loss, stage 0 finished its backward). Taking the
// minimum over the lane means one peer claiming steps it did not do cannot raise anyone's credit;
// it can only wait for the others. Each member then earns its own stage's spec FLOPs.
import { type LaneMember, laneUnits } from './units.js';
import type { RiskWeighting } from './risk.js';

interface Lane {
  members: Array<LaneMember & { peerId: string }>;
  reported: Map<string, number>;
  stages: Set<number>;
  credited: number;
}

export class LaneCredits {
  private readonly lanes = new Map<number, Lane>();
  private readonly laneOf = new Map<string, number>();

  constructor(
    private readonly stageFlops: number[],
    private readonly totalSteps: number,
    private readonly risk: RiskWeighting,
  ) {}

  /** A peer holding `stage` in `lane`; without an account it still gates the lane's progress but earns nothing. */
  addMember(lane: number, peerId: string, stage: number, account?: string): void {
    if (this.laneOf.has(peerId)) throw new Error(`peer ${peerId} is already in lane ${this.laneOf.get(peerId)}`);
    if (!(stage >= 0 && stage < this.stageFlops.length)) throw new RangeError(`stage ${stage} does not exist (${this.stageFlops.length} stages)`);
    const l: Lane = this.lanes.get(lane) ?? { members: [], reported: new Map(), stages: new Set(), credited: 0 };
    if (l.stages.has(stage)) throw new Error(`lane ${lane} already has a peer on stage ${stage}`);
    l.stages.add(stage);
    l.reported.set(peerId, 0);
    if (account) l.members.push({ peerId, stage, account });
    this.lanes.set(lane, l);
    this.laneOf.set(peerId, lane);
  }

  /** `peerId` reports it finished `step`; returns the units newly earned by its lane's accounts. */
  report(peerId: string, step: number): Map<string, bigint> {
    const lane = this.laneOf.get(peerId);
    if (lane === undefined || !Number.isInteger(step) || step < 0) return new Map();
    const l = this.lanes.get(lane)!;
    l.reported.set(peerId, Math.max(l.reported.get(peerId)!, Math.min(step, this.totalSteps)));
    // A lane with a stage nobody holds has verified nothing.
    if (l.stages.size < this.stageFlops.length) return new Map();
    const done = Math.min(...l.reported.values());
    if (done <= l.credited) return new Map();
    const earned = laneUnits(l.members, this.stageFlops, l.credited, done, this.totalSteps, this.risk);
    l.credited = done;
    return earned;
  }

  /** The step every lane has completed. */
  get completedStep(): number {
    return this.lanes.size ? Math.min(...[...this.lanes.values()].map((l) => l.credited)) : 0;
  }
}
