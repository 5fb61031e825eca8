// The run's state machine (ARCHITECTURE §3 and §5): who holds which stage, when training starts,
// pauses and resumes, and what each global step is made of. It holds no sockets and no timers of
// its own: the server feeds it peers' messages and sends what it says to send, so every rule here is
// tested without a network. It composes one module per job (roster, stage states, membership,
// departures, witness sets, routing, rounds, audits, averaging roles, evaluations, readiness, phase)
// and decides what happens next after each event.
//
// Step semantics (docs/architecture.md): global step t is a fixed set of microbatches, computed as
// a *round* routed through one peer per stage; *committed* once every routed peer reported and its
// audits agree, or *discarded* and routed again. Peers are `setup` → `ready` → `active` → `gone`;
// a stage whose last peer is gone pauses the run until a peer brings its newest state back.
import { Emitter } from '../shared/base/emitter.js';
import type { RunConfig } from '../shared/run/config.js';
import { type ClientMessageOf, type PeerInfo, type ServerMessage, type StateSeal, type SwarmPhase, reportableLoss } from '../shared/swarm/protocol.js';
import { AveragingRoles } from './averaging-roles.js';
import { Departures } from './departures.js';
import { Evaluations } from './evaluation.js';
import { Membership, type Placed, type Registration } from './membership.js';
import type { RoutingPolicy } from './planner.js';
import { RoundAudits, type AuditStep } from './round-audits.js';
import { type Round, Rounds } from './rounds.js';
import { Routing } from './routing.js';
import { OutlierVotes } from './outlier-votes.js';
import { WitnessSets } from './witness-sets.js';
import { type Heartbeat, type PeerRecord, Roster } from './roster.js';
import { Readiness } from './readiness.js';
import { RunPhase } from './run-phase.js';
import { StageStates } from './stage-states.js';

export type { PeerRecord, PeerState } from './roster.js';
export type { CommitEvent, ControlSnapshot, RunControlEvents } from './run-events.js';
import type { ControlSnapshot, RunControlEvents } from './run-events.js';

export interface RunControlOptions {
  run: RunConfig;
  send(peerId: string, msg: ServerMessage): void;
  now(): number;
  log?(line: string): void;
  /** Spot checks (shared/trust/audit-choice.ts): the probability each routed peer is audited in a round (default 0: none), and randomness peers cannot predict. */
  audit?: { rate: number; random(): number };
  /** How training steps are routed (default: lowest expected finish time). */
  routing?: RoutingPolicy;
  /** A new reason in the same phase goes out at most this often (run-phase.ts). Default 0: every change at once. */
  statusEveryMs?: number;
}

/** Peers of each adjacent stage in a peer's view: enough routes onward, few enough channels to hold. */
export const VIEW_PER_ADJACENT_STAGE = 8;

export class RunControl extends Emitter<RunControlEvents> {
  readonly run: RunConfig;
  private readonly roster: Roster;
  private readonly stages: StageStates;
  private readonly membership: Membership;
  private readonly departures: Departures;
  private readonly routing: Routing;
  private readonly witnessSets: WitnessSets;
  private readonly outliers: OutlierVotes;
  private readonly rounds = new Rounds();
  private readonly audits: RoundAudits;
  private readonly averaging = new AveragingRoles();
  private readonly evaluations = new Evaluations();
  private readonly phase_: RunPhase;
  private readonly readiness: Readiness;
  /** The last committed step. */
  private step_ = 0;
  private started = false;
  private trainedSent = false;
  private lastLoss?: number;
  private lastValLoss?: number;
  private readonly log: (line: string) => void;

  constructor(private readonly o: RunControlOptions) {
    super();
    this.run = o.run;
    this.log = o.log ?? (() => {});
    const { run, send, now, log } = { ...o, log: this.log };
    this.roster = new Roster(run.layersPerStage.length, VIEW_PER_ADJACENT_STAGE);
    this.stages = new StageStates(run.layersPerStage.length);
    const step = () => this.step_;
    this.membership = new Membership({ run, roster: this.roster, stages: this.stages, send, now, log, step });
    const muted = (p: string) => this.audits.muted(p);
    this.witnessSets = new WitnessSets({ roster: this.roster, muted, now, random: o.audit?.random ?? Math.random, quorum: run.minPerStage });
    const checkable = o.audit?.rate ? (p: string) => this.witnessSets.checkable(p) : undefined;
    this.routing = new Routing({ run, roster: this.roster, checkable, policy: o.routing });
    const onPathsThrough = (id: string) => this.routing.onPathsThrough(id);
    this.departures = new Departures({ roster: this.roster, stages: this.stages, membership: this.membership, send, log, step, started: () => this.started, onPathsThrough });
    const electorate = (named: string) => this.roster.witnesses(named, { linked: false });
    this.outliers = new OutlierVotes({ electorate, log });
    this.readiness = new Readiness({ run, roster: this.roster, stages: this.stages, checkable });
    const sets = this.witnessSets;
    this.audits = new RoundAudits({ send, log, now, audit: o.audit, assigned: (p) => sets.witnesses(p), panel: this.roster, noPanel: (p, by) => sets.noPanel(p, by) });
    this.phase_ = new RunPhase({
      now,
      log,
      everyMs: o.statusEveryMs ?? 0,
      broadcast: (m) => this.roster.live().forEach((p) => send(p.peerId, m)),
      progress: () => ({ step: this.step_, steps: run.steps }),
      changed: (phase, reason) => this.emit('phase', { phase, reason }),
    });
    this.phase_.set('waiting', this.readiness.waitingReason());
  }

  get phase(): SwarmPhase {
    return this.phase_.phase;
  }
  get reason(): string {
    return this.phase_.reason;
  }
  get step(): number {
    return this.step_;
  }
  get loss(): number | undefined {
    return this.lastLoss;
  }
  get valLoss(): number | undefined {
    return this.lastValLoss;
  }
  get currentRound(): Readonly<Round> | undefined {
    return this.rounds.current;
  }
  get awaitingFinalEval(): boolean {
    return this.evaluations.awaitingFinal;
  }
  /** The training step round `round` was for, if it is recent. */
  stepOfRound(round: number): number | undefined {
    return this.rounds.stepOf(round);
  }
  /** Why a state seal proves its signer lied, if it does (stage-states.ts). */
  stateLie(s: StateSeal): string | undefined {
    return this.stages.contradiction(s.stage, s.step, s.hash, s.from, this.step_);
  }
  peer(peerId: string): Readonly<PeerRecord> | undefined {
    return this.roster.get(peerId);
  }
  allPeers(): Readonly<PeerRecord>[] {
    return this.roster.all();
  }
  live(): PeerRecord[] {
    return this.roster.live();
  }
  /** The peers `peerId` opens channels to (see PeerViews). */
  view(peerId: string): PeerInfo[] {
    return this.roster.view(peerId);
  }
  /** One path through the stages for evaluation or generation, avoiding `exclude`. */
  path(exclude: ReadonlySet<string> = new Set()): string[] | undefined {
    return this.routing.path(exclude);
  }

  snapshot(): ControlSnapshot {
    return {
      step: this.step_,
      round: this.rounds.last,
      started: this.started,
      phase: this.phase_.phase,
      reason: this.phase_.reason,
      ...(this.lastLoss !== undefined && { loss: this.lastLoss }),
      ...(this.lastValLoss !== undefined && { valLoss: this.lastValLoss }),
      stages: this.stages.snapshot(),
      barred: this.membership.barredIds(),
    };
  }

  /**
   * Take up a run where a crashed coordinator left it. Nobody is connected yet: every stage that
   * trained past its seed waits for a returning peer holding its newest state (or a newer one, up to
   * the last committed step), exactly as when a stage's last peer is lost.
   */
  resume(s: ControlSnapshot): void {
    this.stages.resume(s.stages);
    this.step_ = s.step;
    this.rounds.resume(s.round);
    this.lastLoss = s.loss;
    this.lastValLoss = s.valLoss;
    this.membership.restoreBarred(s.barred);
    this.log(`resumed at step ${s.step} (round ${s.round}, ${s.phase}); stages' newest states at steps ${s.stages.map((x) => x.step).join(', ')}`);
    if (s.phase === 'finished' || s.phase === 'stopped') return this.phase_.set(s.phase, s.reason);
    this.started = s.started;
    if (this.started && this.step_ >= this.run.steps) return this.endTraining();
    this.reconcile();
  }

  // -------------------------------------------------------------------------------------------
  // Peers joining and leaving

  /** Place a peer registering from `address` (coordinator/registration.ts); returns why it cannot take part, or its stage. */
  register(peerId: string, reg: Registration, address?: string): Placed {
    if (this.phase_.over) return { ok: false, reason: `the run is ${this.phase}` };
    return this.membership.register(peerId, reg, address);
  }

  onLinks(peerId: string, connected: string[]): void {
    const p = this.roster.get(peerId);
    if (!p || p.state === 'gone') return;
    const before = p.links;
    p.links = new Set(connected);
    // A channel the current round routes over went down: the round cannot finish.
    const broken = [...before].find((q) => !p.links.has(q) && this.rounds.routesBetween(peerId, q));
    if (broken) return this.abortRound(`the channel between ${peerId} and ${broken} closed`);
    this.reconcile();
  }

  /** A peer loaded its stage's state at `step` (hashing to `hash`): one its replicas did not agree on is loaded again. */
  onReady(peerId: string, step: number, hash?: string): void {
    const p = this.roster.get(peerId);
    if (p?.state !== 'setup') return;
    const doubt = hash && this.stages.unvouched(p.stage, step, hash, this.roster.active(p.stage).length, this.step_);
    if (doubt) {
      this.log(`${peerId} loaded a state of stage ${p.stage} at step ${step} its replicas do not vouch for (${doubt}): loading again`);
      return this.membership.assign(p, p.stage, this.membership.stateSource(p.stage));
    }
    // A ready peer's hash at step 0 is its report of the seeded init, as a checkpoint's is of an averaging.
    if (hash && step === 0) this.stages.vote(p.stage, 0, hash, peerId, 0);
    Object.assign(p, { state: 'ready', heirOf: undefined, readyStep: step } satisfies Partial<PeerRecord>);
    this.log(`${peerId} ready on stage ${p.stage} with its state at step ${step}`);
    this.reconcile();
  }

  onHeartbeat(peerId: string, hb: Heartbeat): void {
    const p = this.roster.get(peerId);
    if (p && p.state !== 'gone') p.hb = hb;
  }

  /**
   * A member's hash of its stage's parameters after averaging at `step` (only active members vote,
   * for a recent averaging step: stage-states.ts), and the members it left out (outlier-votes.ts).
   */
  onCheckpoint(peerId: string, { step, hash, outliers = [] }: ClientMessageOf<'checkpoint'>): void {
    const p = this.roster.get(peerId);
    if (p?.state !== 'active' || step > this.step_) return;
    this.stages.memberVote(this.run, p.stage, step, hash, peerId, this.step_);
    for (const g of this.outliers.report(step, peerId, outliers, this.run.averageEvery)) this.purge(g.peer, g.reason);
    const v = this.stages.vouched(p.stage, this.roster.active(p.stage).length);
    if (v?.step === step)
      for (const q of this.stages.dissenters(p.stage, step, v.hash))
        this.reload(q, `its weights after the averaging at step ${step} are not the ones most of its stage's replicas hold`);
  }

  /** An active replica whose state parted from its stage's (it averaged other weights) loads the stage's state again. */
  private reload(peerId: string, why: string): void {
    const p = this.roster.get(peerId);
    if (p?.state !== 'active') return;
    this.log(`${peerId} loads stage ${p.stage}'s state again: ${why}`);
    p.state = 'setup';
    p.readyStep = undefined;
    this.membership.assign(p, p.stage, this.membership.stateSource(p.stage));
    if (this.rounds.current?.work.has(peerId)) this.abortRound(`${peerId} loads its stage's state again`);
    else this.reconcile();
  }

  /** A peer is gone: its connection closed, it fell silent, or it left (`kept`: the state it keeps). */
  onGone(peerId: string, reason: string, leave?: { kept?: { step: number; hash: string } }): void {
    const gone = this.departures.depart(peerId, reason, leave);
    if (!gone) return;
    const { peer: p, graceful } = gone;
    this.emit('peer-gone', { peerId, name: p.name, stage: p.stage, reason, graceful });
    this.membership.tellViews(this.roster.forget(peerId));
    this.witnessSets.forget(peerId);
    this.membership.restrand();
    if (this.rounds.current?.work.has(peerId)) this.abortRound(`${peerId} ${graceful ? 'left' : 'was lost'} (${reason})`);
    else this.reconcile();
  }

  /**
   * A peer caught cheating: gone at once (its round is discarded and routed again without it), its
   * key and account barred from the run. Returns the reason, to tell it.
   */
  purge(peerId: string, reason: string): string {
    const p = this.roster.get(peerId);
    if (!p || p.state === 'gone') return reason;
    this.membership.bar(p);
    this.log(`purging ${peerId} "${p.name}": ${reason}`);
    this.emit('purged', { peerId, name: p.name, account: p.account, reason });
    this.onGone(peerId, `purged: ${reason}`);
    return reason;
  }

  // -------------------------------------------------------------------------------------------
  // Rounds

  /** A peer's share of a round; returns an error for a report that does not fit the round. */
  onRoundDone(peerId: string, msg: ClientMessageOf<'round-done'>): string | undefined {
    const p = this.roster.get(peerId);
    if (!p) return undefined;
    const out = this.rounds.report(p, msg, this.o.now());
    if (out.kind === 'error') return out.error;
    if (out.kind === 'purge') return this.purge(peerId, out.reason);
    if (out.kind === 'taken' && out.complete) this.afterAudit(this.rounds.current!, this.audits.begin(this.rounds.current!));
    return undefined;
  }

  /** A witness's finding on an audited microbatch of the current round. */
  onVerdict(witness: string, v: ClientMessageOf<'verdict'>): void {
    const r = this.rounds.current;
    if (r) this.afterAudit(r, this.audits.onVerdict(r, witness, v));
  }

  /** Audits of the current round have waited too long: work nobody found wrong commits; a finding left unsettled discards the round. */
  auditsTimedOut(limitMs: number): void {
    const r = this.rounds.current;
    if (r) this.afterAudit(r, this.audits.timedOut(r, limitMs));
  }

  /** `reporter` took a training frame out of its norm band (round-audits.ts); returns an error for a report that does not fit the round. */
  onSuspect(reporter: string, msg: ClientMessageOf<'suspect'>): string | undefined {
    return this.audits.onSuspect(this.rounds.current, reporter, msg);
  }

  /** `peerId` waited in vain for `msg.from`; returns an error for a report naming a peer its routes do not give it. */
  onStalled(peerId: string, msg: ClientMessageOf<'stalled'>): string | undefined {
    const r = this.rounds.current;
    if (!r || msg.round !== r.round || !r.work.has(peerId)) return undefined;
    // Only a neighbour on the reporter's own path can have kept it waiting: anything else would let
    // one peer discard every round by naming anyone (or no one).
    if (!this.rounds.routesBetween(peerId, msg.from)) return `round ${r.round} routes nothing between ${peerId} and ${msg.from}`;
    this.routing.cut(peerId, msg.from);
    this.abortRound(`${peerId} waited in vain for ${msg.from}: ${msg.reason}`);
    return undefined;
  }

  /**
   * The server's watchdog: peers long late with their reports (rounds.ts LATE_FACTOR) are asked what
   * they wait for; still silent, they lose every channel for routing and the round is routed again
   * without them. A round past `limitMs` is discarded.
   */
  watchRound(limitMs: number): void {
    const r = this.rounds.current;
    const late = this.rounds.late(this.o.now());
    if (late && 'silent' in late) {
      for (const p of late.silent) for (const q of this.roster.get(p)?.links ?? []) this.routing.cut(p, q);
      return this.abortRound(`${late.silent.join(', ')} had not reported round ${r!.round} long after the others had, nor said what it waited for`);
    }
    if (late) for (const p of late.ask) this.o.send(p, { type: 'late', round: r!.round });
    if (r && this.o.now() - r.startedAt > limitMs) this.abortRound(`round ${r.round} took more than ${limitMs} ms`);
  }

  private afterAudit(r: Round, next: AuditStep): void {
    if (next.kind === 'commit') return this.commit(r);
    if (next.kind === 'abort') return this.abortRound(next.reason);
    if (next.kind !== 'purge') return;
    for (const g of next.guilty) this.purge(g.peer, g.reason);
    // A lying accuser purged (or one that got no bundle excused): the accused is cleared, and the round goes on if it still can.
    if (this.rounds.current !== r) return;
    if (r.audits?.every((x) => x.finding?.ok)) this.commit(r);
  }

  private nextRound(): void {
    if (this.rounds.current || !this.started || ['serving', 'finished', 'stopped'].includes(this.phase)) return;
    const step = this.step_ + 1;
    const plan = this.routing.planStep(this.rounds.last + 1);
    if (!plan.ok) return this.phase_.set('paused', `cannot route step ${step}: ${plan.error}`);
    this.phase_.set('training', 'training');
    const r = this.rounds.start(step, plan.routes, this.o.now(), (id) => this.roster.get(id)?.msPerMicrobatch);
    this.emit('round', { round: r.round, step });
    for (const peerId of r.work.keys()) this.o.send(peerId, { type: 'round', round: r.round, step, routes: r.routes });
  }

  private commit(r: Round): void {
    this.rounds.end();
    this.step_ = r.step;
    const losses = [...r.reported.values()].filter((m) => m.lossSum !== undefined);
    const loss = losses.length ? losses.reduce((s, m) => s + m.lossSum!, 0) / this.run.microbatches : undefined;
    if (loss !== undefined) this.lastLoss = loss;
    for (const [peerId, why] of r.unpaid) this.log(`round ${r.round}: ${peerId} is not paid for its share: ${why}`);
    const work = [...r.work].map(([peerId, microbatches]) => {
      const p = this.roster.get(peerId)!;
      return { peerId, account: p.account, stage: p.stage, microbatches: r.unpaid.has(peerId) ? 0 : microbatches };
    });
    // Before any peer hears of it: a listener that records the commit durably (the coordinator's
    // store) must have done so before a peer can apply it.
    this.emit('commit', { step: r.step, round: r.round, work, loss, ms: this.o.now() - r.startedAt });
    this.averaging.credit(r.work);
    this.tellCommit(r, loss);
    if (r.step >= this.run.steps) return this.endTraining();
    this.nextRound();
  }

  /** The commit message to every active replica (and joiners at an averaging point); then an evaluation path if due. */
  private tellCommit(r: Round, loss: number | undefined): void {
    const last = r.step === this.run.steps;
    const averaging = r.step % this.run.averageEvery === 0 || last;
    const evaluating = this.run.evalEvery > 0 && this.run.evalBatches > 0 && (r.step % this.run.evalEvery === 0 || last);
    const stages = this.run.layersPerStage.map((_, s) => ({ active: this.roster.active(s), ready: this.roster.placedOn(s).filter((p) => p.state === 'ready') }));
    const { members, listeners, joining } = this.averaging.roles(averaging, stages);
    const evalPath = evaluating ? this.routing.path() : undefined;
    const msg: ServerMessage = {
      type: 'commit',
      round: r.round,
      step: r.step,
      apply: true,
      ...(reportableLoss(loss) && { loss }), // the last stage's claim
      ...(averaging && { average: { members, listeners } }),
      ...(evalPath && { eval: { path: evalPath, batches: this.run.evalBatches } }),
    };
    for (const id of [...members.flat(), ...listeners.flat()]) this.o.send(id, msg);
    for (const id of joining) this.activate(this.roster.get(id)!, 'caught up at averaging');
    if (evalPath) this.evaluations.planned(r.step, evalPath, last, this.run.evalEvery);
  }

  private abortRound(reason: string): void {
    const r = this.rounds.end();
    if (!r) return;
    this.log(`round ${r.round} (step ${r.step}) discarded: ${reason}`);
    for (const p of this.roster.active()) this.o.send(p.peerId, { type: 'commit', round: r.round, step: r.step, apply: false });
    this.emit('round-aborted', { round: r.round, step: r.step, reason });
    this.reconcile();
  }

  // -------------------------------------------------------------------------------------------
  // Evaluation and the end of training

  /** The validation loss after `step`: taken only from the last peer of that step's evaluation path. */
  onEvaluated(peerId: string, step: number, valLoss: number): void {
    const p = this.roster.get(peerId);
    if (!p || p.state === 'gone' || !this.evaluations.take(peerId, step)) return;
    this.lastValLoss = valLoss;
    this.emit('evaluated', { step, valLoss });
    // The last peer's claim: out of the schema's range, every peer would refuse the message.
    if (reportableLoss(valLoss)) for (const q of this.roster.live()) this.o.send(q.peerId, { type: 'validation', step, valLoss });
    if (this.evaluations.isFinal(step)) this.finishEvaluation(true);
  }

  /** The final evaluation is in (`arrived`), or will not come: training is over. */
  finishEvaluation(arrived = false): void {
    if ((this.phase !== 'serving' && this.phase !== 'finished') || this.trainedSent) return;
    this.trainedSent = true;
    const valLoss = arrived ? this.lastValLoss : undefined;
    this.evaluations.endFinal();
    this.emit('trained', { step: this.step_, valLoss });
    if (this.phase === 'finished') for (const p of this.roster.live()) this.o.send(p.peerId, { type: 'stop', reason: 'run complete' });
  }

  private endTraining(): void {
    const serve = !!this.run.serve;
    this.phase_.set(serve ? 'serving' : 'finished', serve ? 'trained: serving inference' : 'run complete');
    if (!this.evaluations.awaitingFinal) this.finishEvaluation();
  }

  // -------------------------------------------------------------------------------------------
  // Phases

  /** Send the status held back by `statusEveryMs`, if any. */
  flushStatus(): void {
    this.phase_.flush();
  }

  /** Before the start, a timer's look at readiness: an unlinked witness is replaced after its grace (witness-sets.ts), when no message may come. */
  recheckStart(): void {
    if (!this.started && !this.phase_.over) this.maybeStart();
  }

  /** End the run now (e.g. the operator stopped it, or serving ended). */
  stop(reason: string, phase: 'finished' | 'stopped' = 'stopped'): void {
    if (this.phase_.over) return;
    this.rounds.end();
    this.phase_.set(phase, reason);
    for (const p of this.roster.live()) this.o.send(p.peerId, { type: 'stop', reason: reason.slice(0, 1024) });
  }

  private activate(p: PeerRecord, why: string): void {
    p.state = 'active';
    p.source = undefined;
    p.heirOf = undefined;
    this.stages.held(p.stage);
    this.log(`${p.peerId} active on stage ${p.stage} (${why})`);
  }

  /** After any change: activate who can be, start, pause or resume, and route the next step. */
  private reconcile(): void {
    if (this.phase_.over) return;
    if (!this.started) {
      this.membership.restrand();
      return this.maybeStart();
    }
    const replicas = this.run.layersPerStage.map((_, s) => this.roster.active(s).length);
    for (const p of this.roster.live()) {
      if (p.state !== 'ready') continue;
      // Nobody else holds the stage and this state is its newest; or training is over and it is current.
      const alone = replicas[p.stage] === 0 && p.readyStep! >= this.stages.newest(p.stage).step;
      if (alone || (this.phase === 'serving' && p.readyStep === this.step_)) {
        this.activate(p, `brings stage ${p.stage}'s state at step ${p.readyStep}`);
        replicas[p.stage]++;
      }
    }
    this.membership.restrand();
    const missing = this.run.layersPerStage.findIndex((_, s) => this.roster.active(s).length === 0);
    if (this.phase === 'serving') return this.phase_.set('serving', missing >= 0 ? `serving paused: ${this.readiness.missingReason(missing)}` : 'trained: serving inference');
    if (missing >= 0) return this.phase_.set('paused', this.readiness.missingReason(missing));
    this.nextRound();
  }

  private maybeStart(): void {
    if (!this.readiness.canStart()) return this.phase_.set('waiting', this.readiness.waitingReason());
    this.started = true;
    for (const p of this.roster.live()) if (p.state === 'ready') this.activate(p, 'run start');
    this.nextRound();
  }
}
