// Who may audit each peer: the coordinator's choice, never the peer's (ARCHITECTURE §6). Each
// active peer is assigned SET_SIZE witnesses at random among the independent replicas of its stage
// (another account, another address), always leaving one replica out so a member that never links
// can be replaced. A peer is routed training work only with a channel open to every member of its
// set, and its audits' first witness is drawn from the set: by the channels it opens a peer can
// refuse work, never pick its auditor. With colluders a fraction c of the stage, both members are
// colluders with probability about c², whatever the peer does.
//
// A member that left audits unanswered is replaced at once, and one whose channel to the peer stays
// closed for GRACE_MS by another random draw: a colluder that refuses to link or to answer cannot
// starve an honest peer of work. A peer that refuses its
// members gains at most MAX_REDRAWS random redraws, never a choice; after them its set stays.
//
// A finding against a peer that no panel could settle (it had no independent replica linked but its
// accuser) keeps it from work until it links to another one, where one exists: otherwise a cheater
// that links to its witness alone gets every audited round discarded, for good. An honest peer links
// to every replica it is told of, so an accuser alone cannot bench it while one honest replica
// besides it exists; with none (a stage of two) nobody is benched and the round is discarded.
import type { Roster } from './roster.js';

/** How long a member may stay unlinked before it is replaced. */
export const GRACE_MS = 30_000;
/** Replacements one peer's missing channels may cause in a run. */
export const MAX_REDRAWS = 4;
/** Witnesses per peer (fewer in a stage of three or fewer replicas). */
export const SET_SIZE = 2;

interface WitnessSet {
  members: string[];
  /** When each member was first seen unlinked (cleared when linked). */
  unlinkedSince: Map<string, number>;
  redraws: number;
}

export interface WitnessSetsOptions {
  roster: Roster;
  /** Peers no longer drawn as witnesses (they left audits unanswered: round-audits.ts). */
  muted(peer: string): boolean;
  now(): number;
  random(): number;
  /** Ready peers a stage needs to start (run.minPerStage): before the start, sets are drawn only once it has them all. */
  quorum: number;
}

export class WitnessSets {
  private readonly sets = new Map<string, WitnessSet>();
  /** Peers a finding nobody could settle was made against, with who made it. */
  private readonly unsettled = new Map<string, string>();

  constructor(private readonly o: WitnessSetsOptions) {}

  /** Whether `peer` has a channel open to every member of its set (and has a set), and a panel could settle a finding against it. */
  checkable(peer: string): boolean {
    const set = this.refresh(peer);
    return set.members.length > 0 && set.members.every((w) => this.o.roster.linked(peer, w)) && this.panelPossible(peer);
  }

  /** A finding `accuser` made against `peer` could not be settled: no other independent replica was linked to `peer`. */
  noPanel(peer: string, accuser: string): void {
    this.unsettled.set(peer, accuser);
  }

  /**
   * Whether a finding by its last unsettled accuser could now go to a panel: another independent
   * replica is linked to `peer`, or none exists to link to (a stage of two: `peer` could do nothing).
   */
  private panelPossible(peer: string): boolean {
    const accuser = this.unsettled.get(peer);
    if (accuser === undefined) return true;
    const { roster } = this.o;
    // An accuser gone from the run accuses nobody any more.
    if (!roster.get(accuser) || roster.get(accuser)!.state === 'gone') return this.unsettled.delete(peer);
    const panelists = (o: { linked: boolean }) => roster.witnesses(peer, o).filter((w) => w !== accuser && !this.o.muted(w) && roster.independent(w, accuser));
    if (panelists({ linked: true }).length) return this.unsettled.delete(peer);
    return panelists({ linked: false }).length === 0;
  }

  /** The members of `peer`'s set it is linked to: who may be drawn to audit it. */
  witnesses(peer: string): string[] {
    return this.refresh(peer).members.filter((w) => this.o.roster.linked(peer, w));
  }

  /** The members of `peer`'s set (for display and tests). */
  members(peer: string): readonly string[] {
    return this.refresh(peer).members;
  }

  /** A peer gone from the run: its set, and its place in others' sets, are dropped (refreshed on next use). */
  forget(peer: string): void {
    this.sets.delete(peer);
    this.unsettled.delete(peer);
  }

  /** `peer`'s set made current: gone or dependent members dropped, long-unlinked ones replaced, topped up by random draws. */
  private refresh(peer: string): WitnessSet {
    const { roster } = this.o;
    let set = this.sets.get(peer);
    if (!set) {
      set = { members: [], unlinkedSince: new Map(), redraws: 0 };
      this.sets.set(peer, set);
    }
    const stage = roster.get(peer)?.stage;
    if (stage === undefined) {
      set.members = [];
      return set;
    }
    // Before the run starts nobody is active: sets are drawn among the ready, so the first round can
    // be checked everywhere; but only once the stage has a quorum of them, or the first peers ready
    // (two colluders arriving first) would be each other's only candidate.
    const active = roster.active(stage);
    const ready = roster.placedOn(stage).filter((q) => q.state === 'ready');
    const pool = active.length ? active : ready.length >= this.o.quorum ? ready : [];
    const candidates = pool.flatMap((q) => (q.peerId !== peer && !this.o.muted(q.peerId) && roster.independent(peer, q.peerId) ? [q.peerId] : []));
    set.members = set.members.filter((w) => candidates.includes(w));
    this.replaceUnlinked(peer, set, candidates);
    const size = Math.min(candidates.length, Math.max(1, Math.min(SET_SIZE, candidates.length - 1)));
    while (set.members.length < size) set.members.push(this.draw(candidates.filter((w) => !set.members.includes(w))));
    return set;
  }

  private replaceUnlinked(peer: string, set: WitnessSet, candidates: string[]): void {
    const now = this.o.now();
    for (const w of [...set.members]) {
      if (this.o.roster.linked(peer, w)) {
        set.unlinkedSince.delete(w);
        continue;
      }
      const since = set.unlinkedSince.get(w) ?? now;
      set.unlinkedSince.set(w, since);
      const others = candidates.filter((c) => !set.members.includes(c));
      if (now - since < GRACE_MS || set.redraws >= MAX_REDRAWS || others.length === 0) continue;
      set.members[set.members.indexOf(w)] = this.draw(others);
      set.unlinkedSince.delete(w);
      set.redraws++;
    }
  }

  private draw(xs: readonly string[]): string {
    return xs[Math.min(xs.length - 1, Math.floor(this.o.random() * xs.length))];
  }
}
