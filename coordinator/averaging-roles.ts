// Who averages after a step (ARCHITECTURE §3: replicas of a stage average every H steps). Members
// send their weights and take the mean. A replica that computed nothing since the stage last
// averaged still holds that average: as a member it would pull the stage back toward it, so it
// listens, like a ready peer joining, and ends with the same weights. Without averaging, members
// are every active replica (they all get the commit).
import type { PeerRecord } from './roster.js';

export interface Roles {
  members: string[][];
  listeners: string[][];
  /** Ready peers that catch up at this averaging: active from the next round on. */
  joining: string[];
}

export class AveragingRoles {
  /** Microbatches each peer computed in committed steps since its stage last averaged. */
  private readonly sinceAverage = new Map<string, number>();

  /** A committed step's work. */
  credit(work: ReadonlyMap<string, number>): void {
    for (const [peerId, n] of work) this.sinceAverage.set(peerId, (this.sinceAverage.get(peerId) ?? 0) + n);
  }

  /** The roles of each stage's peers after a commit (`averaging`: the step is an averaging point). */
  roles(averaging: boolean, stages: ReadonlyArray<{ active: PeerRecord[]; ready: PeerRecord[] }>): Roles {
    const ids = (ps: PeerRecord[]) => ps.map((p) => p.peerId);
    const roles = stages.map(({ active, ready }) => {
      if (!averaging) return { members: ids(active), idle: [], joining: [] };
      const trained = active.filter((p) => (this.sinceAverage.get(p.peerId) ?? 0) > 0);
      const members = trained.length ? trained : active;
      return { members: ids(members), idle: ids(active.filter((p) => !members.includes(p))), joining: ids(ready) };
    });
    if (averaging) this.sinceAverage.clear();
    return { members: roles.map((r) => r.members), listeners: roles.map((r) => [...r.idle, ...r.joining]), joining: roles.flatMap((r) => r.joining) };
  }
}
