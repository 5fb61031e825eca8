// The run's state machine (ARCHITECTURE §3 and §5): who holds which stage, when training starts,
// pauses and resumes, and what each global step is made of. It holds no sockets and no timers of
// its own: the server feeds it peers' messages and losses and sends what it says to send, so every
// rule here is tested without a network.
//
// Step semantics. Global step t is `run.microbatches` fixed microbatches (the data order does not
// depend on who is in the swarm). The coordinator computes it as a *round*: it routes every
// microbatch through one peer per stage (planner.ts) and sends each peer the routes. Peers compute
// and keep their gradients; when every peer of the round reported, the round is *committed* (each
// peer applies its optimizer step) and its work is credited. If a peer of the round is lost, leaves
// or stalls first, the round is *discarded* (every peer drops its gradients) and step t is routed
// again without it. So a step's gradients come from exactly its microbatches, each once: nothing is
// lost and nothing is applied twice, whatever fails mid-step.
//
// Membership. A peer is `setup` (placed on a stage, connecting and loading state), `ready` (state
// loaded at some step), `active` (in rounds) or `gone`. Training starts when every stage has
// `run.minPerStage` ready peers. A joiner loads the newest averaged state of its stage from a live
// replica, then at the next averaging point receives the replicas' weights as a listener and is
// active from the next round on. A stage whose last peer is gone pauses the run until a peer brings
// that stage's newest state back (no other stage rolls back: stages are separate parameters).
import { type Audit, auditedFrames, chooseAudits, onFinding } from '../shared/trust/audit-choice.js';
import { planRoutes, type RoutablePeer, type RoutingPolicy, microbatchesPerPeer } from './planner.js';
import { placePeer, type StageView } from './placement.js';
import { PeerViews, type ViewChanges } from './views.js';
import { Emitter } from '../shared/base/emitter.js';
import { FrameKind } from '../shared/wire/frame.js';
import {
  type Capability,
  type ClientMessageOf,
  type HeldState,
  MAX_REPORTED_LOSS,
  type PeerInfo,
  type Seal,
  type ServerMessage,
  type StateSource,
  type SwarmPhase,
} from '../shared/swarm/protocol.js';
import type { RunConfig } from '../shared/run/config.js';

export type PeerState = 'setup' | 'ready' | 'active' | 'gone';
type Heartbeat = Omit<ClientMessageOf<'heartbeat'>, 'type'>;

export interface PeerRecord {
  peerId: string;
  name: string;
  /** Its session's Ed25519 key (it signs the peer's frames). */
  key: string;
  capability: Capability;
  account?: `0x${string}`;
  held: HeldState[];
  stage: number;
  state: PeerState;
  /** The step of the state it loaded (when ready). */
  readyStep?: number;
  /** Neighbours it reports an open data channel to. */
  links: Set<string>;
  /** Measured milliseconds per microbatch (moving average), once it computed a round. */
  msPerMicrobatch?: number;
  hb?: Heartbeat;
  goneReason?: string;
  /** Where it was told to load its stage's state (while it sets up). */
  source?: StateSource;
  /** When it was last placed on a stage (a peer that never gets ready holds its place only so long). */
  assignedAt: number;
  /** It takes over the state of this leaving peer (a handoff), which is gone from the swarm but still sending. */
  heirOf?: string;
}

export interface CommitEvent {
  step: number;
  round: number;
  /** Who computed what: each peer's microbatches at its stage (credit goes to exactly these). */
  work: Array<{ peerId: string; account?: `0x${string}`; stage: number; microbatches: number }>;
  /** Mean training loss over the step's microbatches. */
  loss?: number;
  /** Wall time of the round that committed, ms. */
  ms: number;
}

export interface RunControlEvents {
  commit: CommitEvent;
  'round-aborted': { round: number; step: number; reason: string };
  phase: { phase: SwarmPhase; reason: string };
  'peer-gone': { peerId: string; name: string; stage: number; reason: string; graceful: boolean };
  /** A peer caught cheating: it is gone, barred from the run, and its unsettled work earns nothing. */
  purged: { peerId: string; name: string; account?: `0x${string}`; reason: string };
  evaluated: { step: number; valLoss: number };
  /** Training is over (every step committed and the final evaluation in, or given up on). */
  trained: { step: number; valLoss?: number };
  /** A round was routed (its number must never be reused: peers' frames name it). */
  round: { round: number; step: number };
}

/**
 * What the coordinator must keep to resume the run after a crash (run-store.ts): the step and
 * round reached, each stage's newest known state, the barred peers. Who was connected is not kept:
 * peers reconnect and offer the states they hold.
 */
export interface ControlSnapshot {
  step: number;
  round: number;
  started: boolean;
  phase: SwarmPhase;
  reason: string;
  loss?: number;
  valLoss?: number;
  stages: Array<{ step: number; hash?: string }>;
  barred: string[];
}

export interface RunControlOptions {
  run: RunConfig;
  send(peerId: string, msg: ServerMessage): void;
  now(): number;
  log?(line: string): void;
  /** Spot checks (audits.ts): the probability each routed peer is audited in a round (default 0: none), and randomness peers cannot predict. */
  audit?: { rate: number; random(): number };
  /** How training steps are routed (default: lowest expected finish time). */
  routing?: RoutingPolicy;
  /**
   * A new reason in the same phase (the counts of peers while waiting) goes out at most this often,
   * on `flushStatus()`; a new phase at once. Default 0: every change at once. A thousand peers
   * joining would otherwise each cost a status message to every peer.
   */
  statusEveryMs?: number;
}

interface Round {
  round: number;
  step: number;
  routes: string[][];
  work: Map<string, number>;
  reported: Map<string, ClientMessageOf<'round-done'>>;
  startedAt: number;
  /** Microbatches whose frames a receiver found out of band: audited before the round commits. */
  suspects: Array<{ peer: string; microbatch: number }>;
  /** Spot checks of this round, once every report is in (it commits when they are cleared). */
  audits?: Audit[];
  auditsSince?: number;
}

interface StageState {
  /** The newest state of the stage the swarm knows of, and its parameter hash when known. */
  newest: { step: number; hash?: string };
  /** Parameter hashes the stage's members reported after averaging, by step (recent ones), with who reported each. */
  hashes: Map<number, Map<string, Set<string>>>;
  /** Name of the gone peer that holds `newest`, while no live peer does. */
  heldBy?: string;
}

/** Estimated ms per microbatch of a peer never measured, from its claimed speed. */
const FALLBACK_MS = 1000;
/** Peers of each adjacent stage in a peer's view: enough routes onward, few enough channels to hold. */
export const VIEW_PER_ADJACENT_STAGE = 8;
/** Peers per membership message: 256 of them stay well inside MAX_MESSAGE_BYTES. */
const VIEW_CHUNK = 256;
/** Rounds whose training step is remembered (longer than any frame a peer keeps as evidence). */
const RECENT_ROUNDS = 256;
/** Evaluations and generations overlap little: the last few paths cover every one still running. */
const RECENT_PATHS = 16;
/** Weight of a new measurement in the moving average of a peer's speed. */
const EMA = 0.3;

export class RunControl extends Emitter<RunControlEvents> {
  readonly run: RunConfig;
  private readonly peers = new Map<string, PeerRecord>();
  private readonly stages: StageState[];
  private phase_: SwarmPhase = 'waiting';
  private reason_ = '';
  /** The last committed step. */
  private step_ = 0;
  private roundSeq = 0;
  /** The training step of each recent round (replay evidence names rounds). */
  private readonly roundSteps = new Map<number, number>();
  private round?: Round;
  private started = false;
  private finalEval?: number;
  private trainedSent = false;
  private lastLoss?: number;
  private lastValLoss?: number;
  private readonly log: (line: string) => void;
  /** Who must report the validation loss after a step (the last hop of its evaluation path). */
  private readonly evaluators = new Map<number, string>();
  /** Microbatches each peer computed in committed steps since its stage last averaged. */
  private readonly sinceAverage = new Map<string, number>();
  /** Keys and accounts of purged peers: refused for the rest of the run. */
  private readonly barred = new Set<string>();
  /** Peers not gone, kept apart from `peers` (which keeps every record) so that per-event work follows the swarm, not its history. */
  private readonly livePeers = new Map<string, PeerRecord>();
  private readonly views = new PeerViews(VIEW_PER_ADJACENT_STAGE);
  private readonly onStage: Set<PeerRecord>[];
  /** Evaluation and generation paths handed out lately: a peer lost on one is news to all of its peers. */
  private readonly recentPaths: string[][] = [];
  private statusDue = false;
  private statusSentAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly o: RunControlOptions) {
    super();
    this.run = o.run;
    this.log = o.log ?? (() => {});
    this.stages = o.run.layersPerStage.map(() => ({ newest: { step: 0 }, hashes: new Map() }));
    this.onStage = o.run.layersPerStage.map(() => new Set());
    this.setPhase('waiting', this.waitingReason());
  }

  get phase(): SwarmPhase {
    return this.phase_;
  }
  get reason(): string {
    return this.reason_;
  }
  get step(): number {
    return this.step_;
  }
  /** The training step round `round` was for, if it is recent. */
  stepOfRound(round: number): number | undefined {
    return this.roundSteps.get(round);
  }

  snapshot(): ControlSnapshot {
    return {
      step: this.step_,
      round: this.roundSeq,
      started: this.started,
      phase: this.phase_,
      reason: this.reason_,
      ...(this.lastLoss !== undefined && { loss: this.lastLoss }),
      ...(this.lastValLoss !== undefined && { valLoss: this.lastValLoss }),
      stages: this.stages.map((s) => ({ ...s.newest })),
      barred: [...this.barred],
    };
  }

  /**
   * Take up a run where a crashed coordinator left it. Nobody is connected yet: every stage that
   * trained past its seed waits for a returning peer holding its newest state (or a newer one, up to
   * the last committed step), exactly as when a stage's last peer is lost.
   */
  resume(s: ControlSnapshot): void {
    if (s.stages.length !== this.stages.length) throw new Error(`the saved run has ${s.stages.length} stages, this one ${this.stages.length}`);
    this.step_ = s.step;
    this.roundSeq = s.round;
    this.lastLoss = s.loss;
    this.lastValLoss = s.valLoss;
    for (const id of s.barred) this.barred.add(id);
    s.stages.forEach((saved, i) => {
      this.stages[i].newest = { ...saved };
      if (saved.step > 0) this.stages[i].heldBy = 'the peers that trained it before the coordinator restarted';
    });
    this.log(`resumed at step ${s.step} (round ${s.round}, ${s.phase}); stages' newest states at steps ${s.stages.map((x) => x.step).join(', ')}`);
    if (s.phase === 'finished' || s.phase === 'stopped') return this.setPhase(s.phase, s.reason);
    this.started = s.started;
    if (this.started && this.step_ >= this.run.steps) return this.endTraining();
    this.reconcile();
  }

  get currentRound(): Readonly<Round> | undefined {
    return this.round;
  }
  get loss(): number | undefined {
    return this.lastLoss;
  }
  get valLoss(): number | undefined {
    return this.lastValLoss;
  }
  peer(peerId: string): Readonly<PeerRecord> | undefined {
    return this.peers.get(peerId);
  }
  allPeers(): Readonly<PeerRecord>[] {
    return [...this.peers.values()];
  }
  live(): PeerRecord[] {
    return [...this.livePeers.values()];
  }
  /** The live peers placed on `stage`. */
  private placedOn(stage: number): PeerRecord[] {
    return [...this.onStage[stage]];
  }
  private active(stage?: number): PeerRecord[] {
    return (stage === undefined ? this.live() : this.placedOn(stage)).filter((p) => p.state === 'active');
  }

  // -------------------------------------------------------------------------------------------
  // Joining

  /** Place a registering peer; returns why it cannot take part, or its stage. */
  register(peerId: string, reg: Omit<ClientMessageOf<'register'>, 'type' | 'keyProof' | 'accountProof'>): { ok: true; stage: number } | { ok: false; reason: string } {
    if (this.phase_ === 'finished' || this.phase_ === 'stopped') return { ok: false, reason: `the run is ${this.phase_}` };
    if (this.barred.has(reg.key) || (reg.account && this.barred.has(reg.account.toLowerCase()))) return { ok: false, reason: 'this peer was purged from the run' };
    const held = (reg.held ?? []).filter((h) => h.runId === this.run.runId);
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
      held,
      stage,
      state: 'setup',
      links: new Set(),
      assignedAt: this.o.now(),
    };
    this.peers.set(peerId, rec);
    this.livePeers.set(peerId, rec);
    this.onStage[stage].add(rec);
    this.log(`placed ${peerId} "${reg.name}" on stage ${stage} (state from ${state.from}${state.from === 'own' ? ` at step ${state.step}` : ''})`);
    this.assign(rec, stage, state);
    return { ok: true, stage };
  }

  /** A held state that brings back a stage no live peer holds: its newest step or a later committed one, with the hash its members reported, if known. */
  private resumable(held: HeldState[], maxLayers: number): HeldState | undefined {
    for (const h of held) {
      const st = this.stages[h.stage];
      if (!st || this.run.layersPerStage[h.stage] > maxLayers || !this.unheld(h.stage)) continue;
      const known = agreedHash(st, h.step) ?? (st.newest.step === h.step ? st.newest.hash : undefined);
      if (h.step >= st.newest.step && h.step <= this.step_ && (known === undefined || known === h.hash)) return h;
    }
    return undefined;
  }

  /** Its newest state left with a gone peer, and no live one holds it: only that state brings the stage back. */
  private orphaned(stage: number): boolean {
    return this.stages[stage].heldBy !== undefined && this.unheld(stage);
  }

  /** No live peer holds the stage's newest state (none active, none ready with it). */
  private unheld(stage: number): boolean {
    return !this.placedOn(stage).some((p) => p.state === 'active' || (p.state === 'ready' && p.readyStep! >= this.stages[stage].newest.step));
  }

  private stageViews(): StageView[] {
    return this.run.layersPerStage.map((layers, stage) => {
      const typical = this.typicalMs(stage);
      const here = this.placedOn(stage);
      const capacity = here.reduce((c, p) => c + 1000 / (p.msPerMicrobatch ?? typical), 0);
      return { stage, layers, peers: here.length, capacity, orphaned: this.orphaned(stage) };
    });
  }

  /** Where a peer newly placed on `stage` gets its state. */
  private stateSource(stage: number): StateSource {
    const replicas = this.active(stage).map((p) => p.peerId);
    if (replicas.length && this.step_ > 0) return { from: 'replica', peers: replicas };
    // Nobody holds it, and it is not waiting for a gone peer's state (placement offers no orphaned stage):
    // the run has not trained it yet, or lost it before its first averaging.
    return { from: 'seed' };
  }

  /** The peers `peerId` opens channels to (see PeerViews). */
  view(peerId: string): PeerInfo[] {
    return this.views.view(peerId).map((id) => info(this.peers.get(id)!));
  }

  /** Tell each peer whose view changed what came and went, in messages within the size limit. */
  private tellViews(changes: ViewChanges): void {
    for (const [to, d] of changes) {
      if (!this.livePeers.has(to)) continue;
      const added = [...d.added].map((id) => info(this.peers.get(id)!));
      const removed = [...d.removed];
      for (let i = 0; i === 0 || i < Math.max(added.length, removed.length); i += VIEW_CHUNK)
        this.o.send(to, { type: 'peers', added: added.slice(i, i + VIEW_CHUNK), removed: removed.slice(i, i + VIEW_CHUNK) });
    }
  }

  onLinks(peerId: string, connected: string[]): void {
    const p = this.peers.get(peerId);
    if (!p || p.state === 'gone') return;
    const before = p.links;
    p.links = new Set(connected);
    // A channel the current round routes over went down: the round cannot finish.
    const r = this.round;
    if (r?.work.has(peerId)) {
      const broken = [...before].find((q) => !p.links.has(q) && r.routes.some((path) => adjacent(path, peerId, q)));
      if (broken) return this.abortRound(`the channel between ${peerId} and ${broken} closed`);
    }
    this.reconcile();
  }

  onReady(peerId: string, step: number): void {
    const p = this.peers.get(peerId);
    if (p?.state !== 'setup') return;
    p.state = 'ready';
    p.heirOf = undefined;
    p.readyStep = step;
    this.log(`${peerId} ready on stage ${p.stage} with its state at step ${step}`);
    this.reconcile();
  }

  onHeartbeat(peerId: string, hb: Heartbeat): void {
    const p = this.peers.get(peerId);
    if (p && p.state !== 'gone') p.hb = hb;
  }

  // -------------------------------------------------------------------------------------------
  // Rounds

  /** A peer's share of a round; returns an error for a report that does not fit the round. */
  onRoundDone(peerId: string, msg: ClientMessageOf<'round-done'>): string | undefined {
    const r = this.round;
    if (!r || msg.round !== r.round) return undefined; // a discarded round's late report: nothing to do
    const planned = r.work.get(peerId);
    if (planned === undefined) return `round ${msg.round} routes nothing through ${peerId}`;
    if (msg.microbatches !== planned) return `round ${msg.round} routes ${planned} microbatches through ${peerId}, it reported ${msg.microbatches}`;
    if (r.reported.has(peerId)) return `round ${msg.round} was already reported by ${peerId}`;
    const missing = missingInputs(r, peerId, msg.inputs);
    if (missing) return this.purge(peerId, `reported round ${msg.round} done without ${missing}`);
    r.reported.set(peerId, msg);
    const p = this.peers.get(peerId)!;
    if (planned > 0) {
      // A claimed time of zero would make a peer look infinitely fast and draw every route to it.
      const ms = Math.max(1, msg.busyMs / planned);
      p.msPerMicrobatch = p.msPerMicrobatch === undefined ? ms : (1 - EMA) * p.msPerMicrobatch + EMA * ms;
    }
    if (r.reported.size === r.work.size) this.checkOrCommit(r);
    return undefined;
  }

  /** Every report is in: audit some of the work (audits.ts), or commit the round. */
  private checkOrCommit(r: Round): void {
    const a = this.o.audit;
    const audits = a && (a.rate > 0 || r.suspects.length) ? chooseAudits(r, r.work, (p) => this.witnesses(p), a.rate, a.random, r.suspects) : [];
    for (const s of r.suspects) {
      if (!audits.some((x) => x.peer === s.peer)) this.log(`round ${r.round}: no replica can audit ${s.peer}'s out-of-band microbatch ${s.microbatch}; committing it unverified`);
    }
    if (audits.length === 0) return this.commit(r);
    r.audits = audits;
    r.auditsSince = this.o.now();
    for (const x of audits) this.sendAudit(r, x);
  }

  private sendAudit(r: Round, a: Audit): void {
    this.log(`round ${r.round}: ${a.witness} audits ${a.peer}'s microbatch ${a.microbatch}${a.against ? ` (second opinion after ${a.against})` : ''}`);
    this.o.send(a.peer, { type: 'audit', round: r.round, microbatch: a.microbatch, witness: a.witness });
    this.o.send(a.witness, { type: 'verify', round: r.round, step: r.step, microbatch: a.microbatch, peer: a.peer, frames: auditedFrames(r, a) });
  }

  /** The other active replicas of `peer`'s stage it has a channel to. */
  private witnesses(peer: string): string[] {
    const stage = this.peers.get(peer)?.stage;
    return this.active(stage)
      .filter((q) => q.peerId !== peer && this.linked(peer, q.peerId))
      .map((q) => q.peerId);
  }

  /** A witness's finding on an audited microbatch of the current round. */
  onVerdict(witness: string, v: ClientMessageOf<'verdict'>): void {
    const r = this.round;
    if (!r?.audits || v.round !== r.round) return;
    const out = onFinding(r.audits, witness, v, (p) => this.witnesses(p), this.o.audit!.random);
    if (!v.ok) this.log(`round ${r.round}: ${witness} finds ${v.peer}'s microbatch ${v.microbatch} wrong: ${v.reason}`);
    switch (out.kind) {
      case 'second':
        r.audits.push(out.audit);
        return this.sendAudit(r, out.audit);
      case 'unresolved':
        return this.abortRound(out.reason);
      case 'purge': {
        const audited = r.audits.find((x) => x.witness === out.peer && !x.finding?.ok);
        this.purge(out.peer, out.reason);
        // A lying witness purged: the peer it accused is cleared, and the round goes on if it still can.
        if (audited && this.round === r) audited.finding = { ok: true, reason: 'contradicted by a second witness' };
        if (this.round === r && r.audits.every((x) => x.finding?.ok)) this.commit(r);
        return;
      }
      case 'commit':
        return this.commit(r);
    }
  }

  /** Audits of the current round have waited too long: work nobody found wrong commits; a finding left unsettled discards the round. */
  auditsTimedOut(limitMs: number): void {
    const r = this.round;
    if (!r?.audits || this.o.now() - r.auditsSince! <= limitMs) return;
    if (r.audits.some((x) => x.finding && !x.finding.ok)) return this.abortRound(`a disputed audit of round ${r.round} was not settled within ${limitMs} ms`);
    this.log(`round ${r.round}: ${r.audits.filter((x) => !x.finding).length} audit(s) unanswered within ${limitMs} ms; committing unverified`);
    this.commit(r);
  }

  /**
   * `reporter` took a training frame of `peer` out of its norm band. Honest loss spikes can be as far
   * out as a gradient scaled ×100, so the band does not decide: the microbatch is audited before the
   * round commits. Returns an error for a report about a frame the round never routed to it.
   */
  onSuspect(reporter: string, msg: ClientMessageOf<'suspect'>): string | undefined {
    const r = this.round;
    if (!r || msg.round !== r.round) return undefined;
    const path = r.routes[msg.microbatch];
    if (!path || !adjacent(path, reporter, msg.peer)) return `round ${msg.round} routes no frame of microbatch ${msg.microbatch} from ${msg.peer} to ${reporter}`;
    if (r.suspects.some((s) => s.peer === msg.peer)) return undefined;
    r.suspects.push({ peer: msg.peer, microbatch: msg.microbatch });
    this.log(`round ${r.round}: ${reporter} took ${msg.peer}'s frame of microbatch ${msg.microbatch} out of band (${msg.reason}); it is audited before the round commits`);
    return undefined;
  }

  onStalled(peerId: string, msg: ClientMessageOf<'stalled'>): void {
    const r = this.round;
    if (!r || msg.round !== r.round || !r.work.has(peerId)) return;
    // The channel between them is no use to this round: route around it until both report it open again.
    this.peers.get(peerId)?.links.delete(msg.from);
    this.peers.get(msg.from)?.links.delete(peerId);
    this.abortRound(`${peerId} waited in vain for ${msg.from}: ${msg.reason}`);
  }

  /** The current round has taken too long (the server's watchdog). */
  roundTimedOut(limitMs: number): void {
    if (this.round) this.abortRound(`round ${this.round.round} took more than ${limitMs} ms`);
  }

  private nextRound(): void {
    if (this.round || !this.started || ['serving', 'finished', 'stopped'].includes(this.phase_)) return;
    const step = this.step_ + 1;
    const plan = planRoutes(this.routable(), this.run.microbatches, (a, b) => this.linked(a, b), this.o.routing);
    if (!plan.ok) return this.setPhase('paused', `cannot route step ${step}: ${plan.error}`);
    this.setPhase('training', 'training');
    const r: Round = { round: ++this.roundSeq, step, routes: plan.routes, work: microbatchesPerPeer(plan.routes), reported: new Map(), suspects: [], startedAt: this.o.now() };
    this.roundSteps.set(r.round, step);
    if (this.roundSteps.size > RECENT_ROUNDS) this.roundSteps.delete(this.roundSteps.keys().next().value!);
    this.round = r;
    this.emit('round', { round: r.round, step });
    for (const peerId of r.work.keys()) this.o.send(peerId, { type: 'round', round: r.round, step, routes: r.routes });
  }

  /**
   * The peers each stage's work may go to. With spot checks on, only replicas a witness can check,
   * wherever the stage has any: a peer whose replica channels have not opened would otherwise do
   * work nobody can audit (and a peer claiming to be fast would draw all of it).
   */
  private routable(): RoutablePeer[][] {
    return this.run.layersPerStage.map((_, s) => {
      const typical = this.typicalMs(s);
      const active = this.active(s);
      const checkable = this.o.audit?.rate ? active.filter((p) => this.witnesses(p.peerId).length > 0) : [];
      return (checkable.length ? checkable : active)
        .sort((a, b) => (a.peerId < b.peerId ? -1 : 1))
        .map((p) => ({ peerId: p.peerId, msPerMicrobatch: p.msPerMicrobatch ?? typical }));
    });
  }

  /** A peer not measured yet is taken to be as fast as the stage's measured replicas. */
  private typicalMs(stage: number): number {
    const measured = this.active(stage).flatMap((q) => (q.msPerMicrobatch === undefined ? [] : [q.msPerMicrobatch]));
    return measured.length ? median(measured) : FALLBACK_MS;
  }

  private linked(a: string, b: string): boolean {
    return !!this.peers.get(a)?.links.has(b) && !!this.peers.get(b)?.links.has(a);
  }

  private commit(r: Round): void {
    this.round = undefined;
    this.step_ = r.step;
    const losses = [...r.reported.values()].filter((m) => m.lossSum !== undefined);
    const loss = losses.length ? losses.reduce((s, m) => s + m.lossSum!, 0) / this.run.microbatches : undefined;
    if (loss !== undefined) this.lastLoss = loss;
    const averaging = r.step % this.run.averageEvery === 0 || r.step === this.run.steps;
    const evaluating = this.run.evalEvery > 0 && this.run.evalBatches > 0 && (r.step % this.run.evalEvery === 0 || r.step === this.run.steps);
    const work = [...r.work].map(([peerId, microbatches]) => {
      const p = this.peers.get(peerId)!;
      return { peerId, account: p.account, stage: p.stage, microbatches };
    });
    // Before any peer hears of it: a listener that records the commit durably (the coordinator's
    // store) must have done so before a peer can apply it.
    this.emit('commit', { step: r.step, round: r.round, work, loss, ms: this.o.now() - r.startedAt });
    for (const [peerId, n] of r.work) this.sinceAverage.set(peerId, (this.sinceAverage.get(peerId) ?? 0) + n);
    const { members, listeners, joining } = this.averagingRoles(averaging);
    const evalPath = evaluating ? this.evalPath() : undefined;
    const msg: ServerMessage = {
      type: 'commit',
      round: r.round,
      step: r.step,
      apply: true,
      // The loss is the last stage's claim: a value out of the schema's range would make every peer refuse the commit.
      ...(loss !== undefined && Number.isFinite(loss) && loss <= MAX_REPORTED_LOSS && { loss }),
      ...(averaging && { average: { members, listeners } }),
      ...(evalPath && { eval: { path: evalPath, batches: this.run.evalBatches } }),
    };
    for (const id of [...members.flat(), ...listeners.flat()]) this.o.send(id, msg);
    for (const id of joining) this.activate(this.peers.get(id)!, 'caught up at averaging');
    if (evalPath && r.step === this.run.steps) this.finalEval = r.step;
    if (evalPath) this.evaluators.set(r.step, evalPath.at(-1)!);
    for (const old of this.evaluators.keys()) if (old < r.step - 4 * Math.max(1, this.run.evalEvery)) this.evaluators.delete(old);
    if (r.step >= this.run.steps) return this.endTraining();
    this.nextRound();
  }

  /**
   * Who averages after a step. Members send their weights and take the mean. A replica that computed
   * nothing since the stage last averaged still holds that average: as a member it would pull the
   * stage back toward it, so it listens, like a ready peer joining, and ends with the same weights.
   * Without averaging, members are every active replica (they all get the commit).
   */
  private averagingRoles(averaging: boolean): { members: string[][]; listeners: string[][]; joining: string[] } {
    const ids = (ps: PeerRecord[]) => ps.map((p) => p.peerId);
    const roles = this.run.layersPerStage.map((_, s) => {
      const active = this.active(s);
      if (!averaging) return { members: ids(active), idle: [], joining: [] };
      const trained = active.filter((p) => (this.sinceAverage.get(p.peerId) ?? 0) > 0);
      const members = trained.length ? trained : active;
      const joining = this.placedOn(s).filter((p) => p.state === 'ready');
      return { members: ids(members), idle: ids(active.filter((p) => !members.includes(p))), joining: ids(joining) };
    });
    if (averaging) this.sinceAverage.clear();
    return { members: roles.map((r) => r.members), listeners: roles.map((r) => [...r.idle, ...r.joining]), joining: roles.flatMap((r) => r.joining) };
  }

  private abortRound(reason: string): void {
    const r = this.round;
    if (!r) return;
    this.round = undefined;
    this.log(`round ${r.round} (step ${r.step}) discarded: ${reason}`);
    for (const p of this.active()) this.o.send(p.peerId, { type: 'commit', round: r.round, step: r.step, apply: false });
    this.emit('round-aborted', { round: r.round, step: r.step, reason });
    this.reconcile();
  }

  /** One path through the stages for evaluation or generation, avoiding `exclude`. */
  path(exclude: ReadonlySet<string> = new Set()): string[] | undefined {
    const stages = this.routable().map((s) => s.filter((p) => !exclude.has(p.peerId)));
    const plan = planRoutes(stages, 1, (a, b) => this.linked(a, b));
    if (!plan.ok) return undefined;
    this.recentPaths.push(plan.routes[0]);
    if (this.recentPaths.length > RECENT_PATHS) this.recentPaths.shift();
    return plan.routes[0];
  }

  private evalPath(): string[] | undefined {
    return this.path();
  }

  /** The validation loss after `step`: taken only from the last peer of that step's evaluation path. */
  onEvaluated(peerId: string, step: number, valLoss: number): void {
    const p = this.peers.get(peerId);
    if (!p || p.state === 'gone' || this.evaluators.get(step) !== peerId) return;
    this.evaluators.delete(step);
    this.lastValLoss = valLoss;
    this.emit('evaluated', { step, valLoss });
    if (this.finalEval === step) this.finishEvaluation(true);
  }

  private endTraining(): void {
    const serve = !!this.run.serve;
    this.setPhase(serve ? 'serving' : 'finished', serve ? 'trained: serving inference' : 'run complete');
    if (this.finalEval === undefined) this.finishEvaluation();
  }

  /** The final evaluation is in (`arrived`), or will not come: training is over. */
  finishEvaluation(arrived = false): void {
    if ((this.phase_ !== 'serving' && this.phase_ !== 'finished') || this.trainedSent) return;
    this.trainedSent = true;
    const valLoss = arrived ? this.lastValLoss : undefined;
    this.finalEval = undefined;
    this.emit('trained', { step: this.step_, valLoss });
    if (this.phase_ === 'finished') for (const p of this.live()) this.o.send(p.peerId, { type: 'stop', reason: 'run complete' });
  }

  get awaitingFinalEval(): boolean {
    return this.finalEval !== undefined;
  }

  /**
   * A member's hash of its stage's parameters after averaging at `step`. Only active members of the
   * stage vote, once per step, for a recent averaging step; replicas end averaging bit-identical,
   * so the hash most of them report is the stage's (one member cannot plant a hash of its own).
   */
  onCheckpoint(peerId: string, step: number, hash: string): void {
    const p = this.peers.get(peerId);
    if (p?.state !== 'active') return;
    const averaged = step % this.run.averageEvery === 0 || step === this.run.steps;
    if (!averaged || step > this.step_ || step < this.step_ - 4 * this.run.averageEvery) return;
    const st = this.stages[p.stage];
    let votes = st.hashes.get(step);
    if (!votes) st.hashes.set(step, (votes = new Map()));
    if ([...votes.values()].some((who) => who.has(peerId))) return;
    votes.set(hash, (votes.get(hash) ?? new Set()).add(peerId));
    // A stage's newest state is the newest one a peer has confirmed it keeps: a peer killed
    // before it saved its state must not leave the run waiting for a state nobody has.
    if (step >= st.newest.step) st.newest = { step, hash: agreedHash(st, step) };
    for (const old of [...st.hashes.keys()]) if (old < step - 4 * this.run.averageEvery) st.hashes.delete(old);
  }

  // -------------------------------------------------------------------------------------------
  // Leaving

  /** A peer is gone: its connection closed, it fell silent, or it left (`kept`: the state it keeps). */
  onGone(peerId: string, reason: string, leave?: { kept?: { step: number; hash: string } }): void {
    const p = this.peers.get(peerId);
    if (!p || p.state === 'gone') return;
    const wasActive = p.state === 'active';
    const graceful = !!leave;
    p.state = 'gone';
    this.livePeers.delete(peerId);
    this.onStage[p.stage].delete(p);
    // A gone peer's record stays (its key checks late evidence; its account is in the ledger), but
    // not what it said about itself: many peers coming and going must not pile up their links.
    p.links = new Set();
    p.held = [];
    p.hb = undefined;
    p.goneReason = graceful ? `left: ${reason}` : reason;
    const st = this.stages[p.stage];
    this.log(`${peerId} "${p.name}" (stage ${p.stage}) ${graceful ? 'left' : 'lost'}: ${reason}`);
    // Whether it was the stage's last replica (names are not unique: decide on this, not on heldBy's name).
    const lastReplica = wasActive && this.active(p.stage).length === 0 && this.started;
    if (lastReplica) {
      // The stage's newest state left with it: a kept state at the step it stopped (never beyond the
      // run's), else its last averaged one. Before the first averaging that is the seeded init,
      // which any peer can rebuild: then nobody has to come back.
      const kept = leave?.kept;
      if (kept && kept.step >= st.newest.step && kept.step <= this.step_) st.newest = { ...kept };
      else st.newest = { step: st.newest.step, hash: st.newest.hash ?? agreedHash(st, st.newest.step) };
      if (st.newest.step > 0) st.heldBy = p.name;
    }
    if (graceful && lastReplica) this.handOff(p);
    // Told: those with a channel to it, and those on a path through it that will not finish now.
    const told = new Set([...this.views.view(peerId), ...this.recentPaths.filter((path) => path.includes(peerId)).flat()]);
    for (const id of told) {
      const q = this.livePeers.get(id);
      q?.links.delete(peerId);
      // Not to its heir: for the heir the leaver is still there, serving it the stage's state.
      if (q && q.heirOf !== peerId) this.o.send(id, { type: 'peer-lost', peerId, reason: p.goneReason.slice(0, 1024) });
    }
    this.emit('peer-gone', { peerId, name: p.name, stage: p.stage, reason, graceful });
    this.tellViews(this.views.remove(peerId));
    this.restrand();
    if (this.round?.work.has(peerId)) this.abortRound(`${peerId} ${graceful ? 'left' : 'was lost'} (${reason})`);
    else this.reconcile();
  }

  /**
   * A peer caught cheating: gone at once (its round is discarded and routed again without it), its
   * key and account barred from the run. Returns the reason, to tell it.
   */
  purge(peerId: string, reason: string): string {
    const p = this.peers.get(peerId);
    if (!p || p.state === 'gone') return reason;
    this.barred.add(p.key);
    if (p.account) this.barred.add(p.account.toLowerCase());
    this.log(`purging ${peerId} "${p.name}": ${reason}`);
    this.emit('purged', { peerId, name: p.name, account: p.account, reason });
    this.onGone(peerId, `purged: ${reason}`);
    return reason;
  }

  /** The last peer of a stage leaves gracefully: a peer setting up for that stage takes its state over directly. */
  private handOff(leaver: PeerRecord): void {
    const heir = this.placedOn(leaver.stage).find((q) => q.state !== 'active');
    if (!heir) return;
    this.o.send(leaver.peerId, { type: 'handoff', to: heir.peerId });
    heir.state = 'setup';
    heir.readyStep = undefined;
    heir.heirOf = leaver.peerId;
    this.assign(heir, leaver.stage, { from: 'replica', peers: [leaver.peerId] });
    this.log(`${leaver.peerId} hands stage ${leaver.stage}'s state to ${heir.peerId}`);
  }

  /**
   * Peers still setting up from replicas that are all gone now: loading from the stage's live
   * replicas instead, or from the seed; or, if their stage waits for a gone peer's state, placed on
   * another stage.
   */
  private restrand(): void {
    for (const q of this.live()) {
      if (q.state !== 'setup' || q.heirOf || q.source?.from !== 'replica') continue;
      if (q.source.peers.some((id) => this.peers.get(id)?.state === 'active')) continue;
      let stage = q.stage;
      if (this.active(stage).length === 0) {
        if (this.orphaned(stage)) {
          const placed = placePeer(q.capability.maxLayers, this.stageViews());
          if (!placed.ok) continue;
          stage = placed.stage;
        } else if (this.stages[stage].newest.step > 0) continue; // a ready peer is taking the stage over: load from it once it is active
      }
      this.log(`${q.peerId} loads stage ${stage}'s state anew: the replicas it was loading from are gone`);
      this.assign(q, stage, this.stateSource(stage));
    }
  }

  /** Place a peer on a stage (again) and tell it where its state comes from. */
  private assign(p: PeerRecord, stage: number, state: StateSource): void {
    this.onStage[p.stage].delete(p);
    p.stage = stage;
    this.onStage[stage].add(p);
    p.source = state;
    p.assignedAt = this.o.now();
    const changes = this.views.place(p.peerId, stage);
    // A view larger than one message (hundreds of replicas on a stage) follows in `peers` messages.
    const view = this.view(p.peerId);
    this.o.send(p.peerId, { type: 'assign', stage, run: this.run, peers: view.slice(0, VIEW_CHUNK), state });
    for (let i = VIEW_CHUNK; i < view.length; i += VIEW_CHUNK) this.o.send(p.peerId, { type: 'peers', added: view.slice(i, i + VIEW_CHUNK), removed: [] });
    this.tellViews(changes);
  }

  // -------------------------------------------------------------------------------------------
  // Phases

  private activate(p: PeerRecord, why: string): void {
    p.state = 'active';
    p.source = undefined;
    p.heirOf = undefined;
    this.stages[p.stage].heldBy = undefined;
    this.log(`${p.peerId} active on stage ${p.stage} (${why})`);
  }

  /** After any change: activate who can be, start, pause or resume, and route the next step. */
  private reconcile(): void {
    if (this.phase_ === 'finished' || this.phase_ === 'stopped') return;
    if (!this.started) {
      this.restrand();
      return this.maybeStart();
    }
    const replicas = this.run.layersPerStage.map((_, s) => this.active(s).length);
    for (const p of this.live()) {
      if (p.state !== 'ready') continue;
      // Nobody else holds the stage and this state is its newest; or training is over and it is current.
      const alone = replicas[p.stage] === 0 && p.readyStep! >= this.stages[p.stage].newest.step;
      if (alone || (this.phase_ === 'serving' && p.readyStep === this.step_)) {
        this.activate(p, `brings stage ${p.stage}'s state at step ${p.readyStep}`);
        replicas[p.stage]++;
      }
    }
    this.restrand();
    const missing = this.run.layersPerStage.findIndex((_, s) => this.active(s).length === 0);
    if (this.phase_ === 'serving') return this.setPhase('serving', missing >= 0 ? `serving paused: ${this.missingReason(missing)}` : 'trained: serving inference');
    if (missing >= 0) return this.setPhase('paused', this.missingReason(missing));
    this.nextRound();
  }

  private maybeStart(): void {
    const short = this.readyCounts().findIndex((n) => n < this.run.minPerStage);
    if (short >= 0) return this.setPhase('waiting', this.waitingReason());
    this.started = true;
    for (const p of this.live()) if (p.state === 'ready') this.activate(p, 'run start');
    this.nextRound();
  }

  private missingReason(stage: number): string {
    const st = this.stages[stage];
    const setting = this.placedOn(stage);
    if (setting.length) return `waiting for a peer for stage ${stage} (${setting.map((p) => p.peerId).join(', ')} setting up)`;
    return `waiting for a peer for stage ${stage}${st.heldBy ? ` (its newest state, step ${st.newest.step}, is with ${st.heldBy})` : ''}`;
  }

  private waitingReason(): string {
    const counts = this.readyCounts().map((n, s) => `stage ${s}: ${n}/${this.run.minPerStage}`);
    return `waiting for peers (ready${this.startNeedsWitnesses() ? ' and linked to a replica' : ''} ${counts.join(', ')})`;
  }

  /** With spot checks on and replicas required, the first round must be checkable: peers count toward the start once linked to a ready replica. */
  private startNeedsWitnesses(): boolean {
    return !!this.o.audit?.rate && this.run.minPerStage > 1;
  }

  private readyCounts(): number[] {
    return this.run.layersPerStage.map((_, s) => {
      const ready = this.placedOn(s).filter((p) => p.state === 'ready');
      if (!this.startNeedsWitnesses()) return ready.length;
      // Through each peer's own links (bounded by its view), not all pairs: thousands may be waiting.
      const isReady = (id: string) => this.peers.get(id)?.state === 'ready' && this.peers.get(id)?.stage === s;
      return ready.filter((p) => [...p.links].some((q) => isReady(q) && this.linked(p.peerId, q))).length;
    });
  }

  private setPhase(phase: SwarmPhase, reason: string): void {
    if (phase === this.phase_ && reason === this.reason_) return;
    const newPhase = phase !== this.phase_;
    this.phase_ = phase;
    this.reason_ = reason;
    this.log(`${phase}: ${reason}`);
    this.statusDue = true;
    if (newPhase || this.o.now() - this.statusSentAt >= (this.o.statusEveryMs ?? 0)) this.flushStatus();
    this.emit('phase', { phase, reason });
  }

  /** Send the status held back by `statusEveryMs`, if any. */
  flushStatus(): void {
    if (!this.statusDue) return;
    this.statusDue = false;
    this.statusSentAt = this.o.now();
    const status: ServerMessage = { type: 'status', phase: this.phase_, reason: this.reason_.slice(0, 1024), step: this.step_, steps: this.run.steps };
    for (const p of this.live()) this.o.send(p.peerId, status);
  }

  /** End the run now (e.g. the operator stopped it, or serving ended). */
  stop(reason: string, phase: 'finished' | 'stopped' = 'stopped'): void {
    if (this.phase_ === 'finished' || this.phase_ === 'stopped') return;
    this.round = undefined;
    this.setPhase(phase, reason);
    for (const p of this.live()) this.o.send(p.peerId, { type: 'stop', reason: reason.slice(0, 1024) });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * What a peer's report of round `r` lacks: the seal of each input its routes say it computed from
 * (the activation from the previous hop, the gradient from the next). A peer cannot have computed
 * without them; seals for anything else are equally a false claim. Undefined when they match.
 */
function missingInputs(r: Round, peerId: string, inputs: readonly Seal[]): string | undefined {
  const want = new Set<string>();
  r.routes.forEach((path, mb) => {
    const s = path.indexOf(peerId);
    if (s > 0) want.add(`${FrameKind.Activation}:${mb}:${path[s - 1]}`);
    if (s >= 0 && s < path.length - 1) want.add(`${FrameKind.Gradient}:${mb}:${path[s + 1]}`);
  });
  const have = inputs.filter((i) => i.tag === r.round && i.to === peerId).map((i) => `${i.kind}:${i.microbatch}:${i.from}`);
  const extra = have.find((k) => !want.delete(k));
  if (extra) return `a routed input: it reports ${describeInput(extra)}, which round ${r.round} never routed to it (or twice)`;
  if (inputs.length !== have.length) return 'seals of its own: a seal for another round or receiver';
  const lacking = [...want][0];
  return lacking && describeInput(lacking);
}

const describeInput = (key: string) => {
  const [kind, mb, from] = key.split(':');
  return `the ${Number(kind) === FrameKind.Activation ? 'activation' : 'gradient'} of microbatch ${mb} from ${from}`;
};

/** The hash most of a stage's members reported for `step`, if any reported. */
function agreedHash(st: StageState, step: number): string | undefined {
  const votes = st.hashes.get(step);
  if (!votes) return undefined;
  return [...votes].reduce<[string, Set<string>] | undefined>((best, v) => (!best || v[1].size > best[1].size ? v : best), undefined)?.[0];
}

/** Whether a and b are consecutive hops of `path` (in either order). */
function adjacent(path: string[], a: string, b: string): boolean {
  const i = path.indexOf(a);
  return i >= 0 && (path[i - 1] === b || path[i + 1] === b);
}

const info = (p: PeerRecord): PeerInfo => ({ peerId: p.peerId, stage: p.stage, name: p.name, key: p.key });
