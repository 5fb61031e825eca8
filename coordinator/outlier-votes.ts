// Replicas naming a member whose averaging contribution was no replica's (trust/robust-mean.ts: it
// moved beyond the drift limit from the stage's last average). Every honest replica judges the
// same bytes against the same anchor, so honest replicas name the same members; a name is still an
// accusation, so it convicts only when a strict majority of the stage's other replicas independent
// of the named one make it, and at least two do: a third of a stage colluding cannot, one replica
// alone never can (in a stage of two its name only leaves the other out of its own mean), and a
// lone false name costs nothing but is logged. Votes of old averagings are dropped.

export interface OutlierVotesOptions {
  /** The replicas entitled to judge `named`'s contribution: its stage's other active replicas, independent of it. */
  electorate(named: string): string[];
  log(line: string): void;
}

/** How many averagings back votes are kept. */
const KEEP_AVERAGINGS = 4;

export class OutlierVotes {
  /** Per averaging step, per named member, who named it. */
  private readonly votes = new Map<number, Map<string, Set<string>>>();

  constructor(private readonly o: OutlierVotesOptions) {}

  /** `reporter` left `named` out of its mean at `step`; returns who is now convicted, with why. */
  report(step: number, reporter: string, named: readonly string[], averageEvery: number): Array<{ peer: string; reason: string }> {
    for (const s of this.votes.keys()) if (s < step - KEEP_AVERAGINGS * averageEvery) this.votes.delete(s);
    let byNamed = this.votes.get(step);
    if (!byNamed) this.votes.set(step, (byNamed = new Map()));
    const convicted: Array<{ peer: string; reason: string }> = [];
    for (const peer of new Set(named)) {
      const electorate = this.o.electorate(peer);
      if (!electorate.includes(reporter)) continue;
      const by = byNamed.get(peer) ?? new Set<string>();
      byNamed.set(peer, by.add(reporter));
      this.o.log(`${reporter} left ${peer}'s weights out of the average at step ${step} as no replica's (${by.size} of ${electorate.length} replicas so far)`);
      const votes = [...by].filter((r) => electorate.includes(r)).length;
      if (votes >= 2 && 2 * votes > electorate.length) {
        byNamed.delete(peer);
        convicted.push({
          peer,
          reason: `its weights at the averaging after step ${step} moved beyond any replica's training, as ${by.size} of ${electorate.length} of its stage's replicas found`,
        });
      }
    }
    return convicted;
  }
}
