// Who each peer is told about, and so opens data channels to. A peer needs every replica of its own
// stage (replicas average all-to-all) and some peers of each adjacent stage (activations and
// gradients go one stage up or down). Telling everyone about everyone costs O(n²) messages and
// channels: at 2,000 peers a membership list is larger than a message may be. So each peer gets a
// bounded, balanced set of each adjacent stage: the `perAdjacentStage` peers there with the fewest
// links towards its stage. Links are symmetric (a channel has two ends), and a peer whose partner
// leaves is given another. Changes come back as deltas per peer to tell, so a join or a leave
// costs messages to the peers it concerns, not to the whole swarm.

/** What to tell one peer: peers now in its view, and peers no longer in it. */
export interface ViewDelta {
  added: Set<string>;
  removed: Set<string>;
}

export type ViewChanges = Map<string, ViewDelta>;

export class PeerViews {
  private readonly stageOf = new Map<string, number>();
  private readonly byStage = new Map<number, Set<string>>();
  /** Links to the stage below and the stage above (symmetric). Own-stage peers are always in view and not kept here. */
  private readonly links = new Map<string, { below: Set<string>; above: Set<string> }>();

  constructor(private readonly perAdjacentStage: number) {
    if (!Number.isInteger(perAdjacentStage) || perAdjacentStage < 1) throw new Error(`perAdjacentStage must be a positive integer, got ${perAdjacentStage}`);
  }

  /** Everyone `peer` is told about: its own stage and its links to adjacent stages. */
  view(peer: string): string[] {
    const stage = this.stageOf.get(peer);
    if (stage === undefined) return [];
    const l = this.links.get(peer)!;
    return [...this.stage(stage), ...l.below, ...l.above].filter((q) => q !== peer);
  }

  /** Put `peer` on `stage` (moving it if it was elsewhere). The changes exclude `peer` itself: it gets its whole view. */
  place(peer: string, stage: number, changes: ViewChanges = new Map()): ViewChanges {
    if (this.stageOf.has(peer)) this.remove(peer, changes);
    for (const q of this.stage(stage)) note(changes, q, peer, 'added');
    this.stageOf.set(peer, stage);
    this.stage(stage).add(peer);
    this.links.set(peer, { below: new Set(), above: new Set() });
    for (const t of [stage - 1, stage + 1]) {
      this.fill(peer, t, changes);
      // A smaller stage here may have left its peers short of links towards ours: top them up. And
      // while ours was small its peers took links from everyone there: shed those now spare.
      for (const q of this.stage(t)) this.fill(q, stage, changes);
      for (const q of this.stage(stage)) this.prune(q, t, changes);
    }
    changes.delete(peer);
    return changes;
  }

  /** `peer` is gone: its stage and partners forget it, and partners left short get new links. */
  remove(peer: string, changes: ViewChanges = new Map()): ViewChanges {
    const stage = this.stageOf.get(peer);
    if (stage === undefined) return changes;
    this.stageOf.delete(peer);
    this.stage(stage).delete(peer);
    for (const q of this.stage(stage)) note(changes, q, peer, 'removed');
    const l = this.links.get(peer)!;
    const partners = [...l.below, ...l.above];
    this.links.delete(peer);
    for (const q of partners) {
      this.side(q, stage).delete(peer);
      note(changes, q, peer, 'removed');
    }
    for (const q of partners) this.fill(q, stage, changes);
    return changes;
  }

  /** Links from `peer` towards stage `t`, topped up to the bound with the least-linked peers there. */
  private fill(peer: string, t: number, changes: ViewChanges): void {
    const there = this.byStage.get(t);
    const own = this.stageOf.get(peer)!;
    if (!there?.size) return;
    const mine = this.side(peer, t);
    const want = Math.min(this.perAdjacentStage, there.size);
    let have = mine.size;
    if (have >= want) return;
    const candidates = [...there].filter((q) => !mine.has(q)).map((q) => ({ q, load: this.side(q, own).size }));
    candidates.sort((a, b) => a.load - b.load || (a.q < b.q ? -1 : 1));
    for (const { q } of candidates) {
      if (have++ >= want) break;
      mine.add(q);
      this.side(q, own).add(peer);
      note(changes, peer, q, 'added');
      note(changes, q, peer, 'added');
    }
  }

  /** Drop links from `peer` towards stage `t` beyond the bound, where the other end has links to spare too. */
  private prune(peer: string, t: number, changes: ViewChanges): void {
    const own = this.stageOf.get(peer)!;
    const mine = this.side(peer, t);
    let have = mine.size;
    if (have <= this.perAdjacentStage) return;
    const spare = (q: string) => this.side(q, own).size - Math.min(this.perAdjacentStage, this.stage(own).size);
    const partners = [...mine].filter((q) => spare(q) > 0).sort((a, b) => spare(b) - spare(a));
    for (const q of partners) {
      if (have-- <= this.perAdjacentStage) break;
      mine.delete(q);
      this.side(q, own).delete(peer);
      note(changes, peer, q, 'removed');
      note(changes, q, peer, 'removed');
    }
  }

  /** `peer`'s links towards the adjacent stage `t`. */
  private side(peer: string, t: number): Set<string> {
    const l = this.links.get(peer)!;
    return t < this.stageOf.get(peer)! ? l.below : l.above;
  }

  private stage(s: number): Set<string> {
    let set = this.byStage.get(s);
    if (!set) this.byStage.set(s, (set = new Set()));
    return set;
  }
}

/** Record that `about` entered or left `to`'s view; the two cancel within one batch of changes. */
function note(changes: ViewChanges, to: string, about: string, what: 'added' | 'removed'): void {
  let d = changes.get(to);
  if (!d) changes.set(to, (d = { added: new Set(), removed: new Set() }));
  d[what === 'added' ? 'removed' : 'added'].delete(about);
  d[what].add(about);
}
