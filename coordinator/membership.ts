// Joining the swarm (ARCHITECTURE §3, §5): a registering peer is placed on a stage (placement.ts),
// told where that stage's state comes from (its own kept state, a live replica, or the seed) and
// given its view; the peers whose views change are told what came and went. Peers still loading
// from replicas that have all gone are pointed elsewhere (restrand). Purged keys and accounts are
// barred for the rest of the run.
import type { RunConfig } from '../shared/run/config.js';
import type { ClientMessageOf, HeldState, ServerMessage, StateSource } from '../shared/swarm/protocol.js';
import { placePeer, type StageView } from './placement.js';
import type { PeerRecord, Roster } from './roster.js';
import type { StageStates } from './stage-states.js';
import type { ViewChanges } from './views.js';

/** Peers per membership message: 256 of them stay well inside MAX_MESSAGE_BYTES. */
const VIEW_CHUNK = 256;

export type Registration = Omit<ClientMessageOf<'register'>, 'type' | 'keyProof' | 'accountProof'>;
export type Placed = { ok: true; stage: number } | { ok: false; reason: string };

export interface MembershipOptions {
  run: RunConfig;
  roster: Roster;
  stages: StageStates;
  send(peerId: string, msg: ServerMessage): void;
  now(): number;
  log(line: string): void;
  /** The last committed step. */
  step(): number;
}

export class Membership {
  /** Keys and accounts of purged peers: refused for the rest of the run. */
  private readonly barred = new Set<string>();

  constructor(private readonly o: MembershipOptions) {}

  /** Place a registering peer; returns why it cannot take part, or its stage. */
  /** Place a newcomer registered from `address` (none on loopback). */
  register(peerId: string, reg: Registration, address?: string): Placed {
    if (this.barred.has(reg.key) || (reg.account && this.barred.has(reg.account.toLowerCase()))) return { ok: false, reason: 'this peer was purged from the run' };
    const held = (reg.held ?? []).filter((h) => h.runId === this.o.run.runId);
    const resume = this.resumable(held, reg.capability.maxLayers);
    let stage: number;
    let state: StateSource;
    if (resume) {
      stage = resume.stage;
      state = { from: 'own', step: resume.step, hash: resume.hash };
    } else {
      const placed = placePeer(reg.capability.maxLayers, this.stageViews());
      if (!placed.ok) return placed;
      stage = placed.stage;
      state = this.stateSource(stage);
    }
    const rec: PeerRecord = {
      peerId,
      name: reg.name,
      key: reg.key,
      capability: reg.capability,
      account: reg.account as `0x${string}` | undefined,
      address,
      arrivedAt: this.o.now(),
      held,
      stage,
      state: 'setup',
      links: new Set(),
      assignedAt: this.o.now(),
    };
    this.o.roster.add(rec);
    this.o.log(`placed ${peerId} "${reg.name}" on stage ${stage} (state from ${state.from}${state.from === 'own' ? ` at step ${state.step}` : ''})`);
    this.assign(rec, stage, state);
    return { ok: true, stage };
  }

  /** Bar a purged peer's key and account from the run. */
  bar(p: PeerRecord): void {
    this.barred.add(p.key);
    if (p.account) this.barred.add(p.account.toLowerCase());
  }
  barredIds(): string[] {
    return [...this.barred];
  }
  restoreBarred(ids: readonly string[]): void {
    for (const id of ids) this.barred.add(id);
  }

  /** No live peer holds the stage's newest state (none active, none ready with it). */
  unheld(stage: number): boolean {
    const newest = this.o.stages.newest(stage).step;
    return !this.o.roster.placedOn(stage).some((p) => p.state === 'active' || (p.state === 'ready' && p.readyStep! >= newest));
  }

  /** Its newest state left with a gone peer, and no live one holds it: only that state brings the stage back. */
  orphaned(stage: number): boolean {
    return this.o.stages.heldBy(stage) !== undefined && this.unheld(stage);
  }

  /** Place a peer on a stage (again) and tell it where its state comes from. */
  assign(p: PeerRecord, stage: number, state: StateSource): void {
    p.source = state;
    p.assignedAt = this.o.now();
    const changes = this.o.roster.place(p, stage);
    // A view larger than one message (hundreds of replicas on a stage) follows in `peers` messages.
    const view = this.o.roster.view(p.peerId);
    this.o.send(p.peerId, { type: 'assign', stage, run: this.o.run, peers: view.slice(0, VIEW_CHUNK), state });
    for (let i = VIEW_CHUNK; i < view.length; i += VIEW_CHUNK) this.o.send(p.peerId, { type: 'peers', added: view.slice(i, i + VIEW_CHUNK), removed: [] });
    this.tellViews(changes);
  }

  /** Tell each peer whose view changed what came and went, in messages within the size limit. */
  tellViews(changes: ViewChanges): void {
    for (const [to, d] of changes) {
      if (!this.o.roster.isLive(to)) continue;
      const added = [...d.added].map((id) => this.o.roster.info(id));
      const removed = [...d.removed];
      for (let i = 0; i === 0 || i < Math.max(added.length, removed.length); i += VIEW_CHUNK)
        this.o.send(to, { type: 'peers', added: added.slice(i, i + VIEW_CHUNK), removed: removed.slice(i, i + VIEW_CHUNK) });
    }
  }

  /**
   * Peers still setting up from replicas that are all gone now: loading from the stage's live
   * replicas instead, or from the seed; or, if their stage waits for a gone peer's state, placed on
   * another stage.
   */
  restrand(): void {
    const { roster, stages } = this.o;
    for (const q of roster.live()) {
      if (q.state !== 'setup' || q.heirOf || q.source?.from !== 'replica') continue;
      if (q.source.peers.some((id) => roster.get(id)?.state === 'active')) continue;
      let stage = q.stage;
      if (roster.active(stage).length === 0) {
        if (this.orphaned(stage)) {
          const placed = placePeer(q.capability.maxLayers, this.stageViews());
          if (!placed.ok) continue;
          stage = placed.stage;
        } else if (stages.newest(stage).step > 0) continue; // a ready peer is taking the stage over: load from it once it is active
      }
      this.o.log(`${q.peerId} loads stage ${stage}'s state anew: the replicas it was loading from are gone`);
      this.assign(q, stage, this.stateSource(stage));
    }
  }

  /** A held state that brings back a stage no live peer holds. */
  private resumable(held: HeldState[], maxLayers: number): HeldState | undefined {
    return held.find((h) => h.stage < this.o.stages.count && this.o.run.layersPerStage[h.stage] <= maxLayers && this.unheld(h.stage) && this.o.stages.restores(h, this.o.step()));
  }

  private stageViews(): StageView[] {
    const { roster } = this.o;
    return this.o.run.layersPerStage.map((layers, stage) => {
      const here = roster.placedOn(stage);
      const capacity = here.reduce((c, p) => c + 1000 / roster.plannedMs(p), 0);
      return { stage, layers, peers: here.length, capacity, orphaned: this.orphaned(stage) };
    });
  }

  /** Where a peer newly placed on `stage` gets its state. */
  stateSource(stage: number): StateSource {
    const replicas = this.o.roster.active(stage).map((p) => p.peerId);
    const vouched = this.o.stages.vouched(stage, replicas.length);
    if (replicas.length && this.o.step() > 0) return { from: 'replica', peers: replicas, ...(vouched && { vouched }) };
    // Nobody holds it, and it is not waiting for a gone peer's state (placement offers no orphaned stage):
    // the run has not trained it yet, or lost it before its first averaging.
    return { from: 'seed' };
  }
}
