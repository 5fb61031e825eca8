// This peer's training: the rounds the coordinator routes through it (stage-runner.ts computes
// them), each commit or discard, the replica averaging and evaluations that follow a commit, and
// what it tells the coordinator and its host about them. A discarded round stops at once, not after
// the computation it discards; a GPU-usage limit rests between rounds (duty.ts).
import { MAX_WEIGHT_SEALS, type ServerMessageOf } from '../swarm/protocol.js';
import type { FrameLog } from '../trust/frame-log.js';
import type { NeighbourReports } from '../trust/neighbour-reports.js';
import { type PeerContext, sleep } from './context.js';
import { restAfter } from './duty.js';
import type { StageSeat } from './seat.js';
import type { PeerStats } from './session-events.js';
import { StallError, roundWorkOf } from './stage-runner.js';
import { keepState } from './state-store.js';
import type { Witnessing } from './witnessing.js';

export interface TrainingOptions {
  seat(): StageSeat | undefined;
  frames: FrameLog;
  reports: NeighbourReports;
  witnessing: Witnessing;
  /** Bytes over this peer's data channels, and bytes it served in state transfers. */
  wireBytes(): { sent: number; received: number };
  stateBytesServed(): number;
  /** Whether the coordinator declared this peer gone (its frames will never come). */
  gone(peerId: string): boolean;
}

export class Training {
  /** The last step this peer applied. */
  committed = 0;
  readonly curves = { train: [] as [number, number][], val: [] as [number, number][] };
  private pending?: { round: number; step: number; microbatches: number; lossSum?: number };
  private roundAbort?: AbortController;
  private evaluating?: { path: string[]; abort: AbortController };
  /** Rounds the coordinator discarded (a round message still queued behind other work is skipped). */
  private readonly discarded = new Set<number>();
  private duty = 1;
  private readonly t0: number;
  private busyMs = 0;
  private roundSpanMs = 0;
  private tokens = 0;
  private microbatches = 0;
  private lastLoss?: number;
  private lastValLoss?: number;
  private kept?: PeerStats;

  constructor(
    private readonly ctx: PeerContext,
    private readonly o: TrainingOptions,
  ) {
    this.t0 = ctx.host.now();
  }

  /** Train this fraction of the time (the app's GPU-usage limit or a power throttle); 1: flat out. */
  setDuty(duty: number): void {
    this.duty = Math.min(1, Math.max(0.05, duty));
  }

  /** A round message arrived: it opens the window of rounds whose frames the mailbox holds (on arrival, not on its turn). */
  arrived(m: ServerMessageOf<'round'>): void {
    this.o.seat()?.mailbox.setRound(m.round, m.step);
  }

  /**
   * A commit arrived: the round is decided (an audit of it still waiting is moot), and a discarded
   * round must stop now; if it has not started yet (this peer was busy), it must not start at all.
   */
  decided(m: ServerMessageOf<'commit'>): void {
    this.o.witnessing.decided(m.round);
    if (m.apply) return;
    this.discarded.add(m.round);
    if (this.pending?.round === m.round) this.roundAbort?.abort(new Error(`round ${m.round} discarded`));
  }

  /** The coordinator found this peer long late with round `m.round`: name the neighbour it still waits for, if any (that channel is then cut). */
  late(m: ServerMessageOf<'late'>): void {
    const awaited = this.pending?.round === m.round ? this.o.seat()?.runner.awaiting(m.round) : undefined;
    if (awaited) this.ctx.send({ type: 'stalled', round: m.round, from: awaited.from, reason: `still waiting for ${awaited.what}` });
  }

  /** Stop the round and the evaluation under way (the peer leaves, or lost the coordinator). */
  abort(reason: Error): void {
    this.roundAbort?.abort(reason);
    this.evaluating?.abort.abort(reason);
  }

  /** A peer is gone: an evaluation through it will never finish. */
  lost(peerId: string): void {
    if (this.evaluating?.path.includes(peerId)) this.evaluating.abort.abort(new Error(`${peerId} on the path is gone`));
  }

  /** Drop the gradients of a round that will not be committed now. */
  dropPending(): void {
    if (this.pending) this.o.seat()?.runner.discard();
    this.pending = undefined;
  }

  async onRound(m: ServerMessageOf<'round'>): Promise<void> {
    const seat = this.o.seat();
    if (!seat || this.ctx.leaving() || this.discarded.delete(m.round)) return;
    const work = roundWorkOf(m.round, m.step, m.routes, this.ctx.peerId());
    this.ctx.setPhase('training', 'computing the microbatches the coordinator routes through this peer');
    this.o.frames.begin(work.round);
    this.o.witnessing.begin(work);
    const abort = new AbortController();
    this.roundAbort = abort;
    this.pending = { round: m.round, step: m.step, microbatches: work.items.length };
    try {
      const r = await seat.runner.runRound(work, abort.signal);
      this.pending.lossSum = r.lossSum;
      this.busyMs += r.busyMs;
      this.roundSpanMs += r.spanMs;
      const inputs = this.o.reports.inputs(work.round, work.items);
      this.ctx.send({ type: 'round-done', round: m.round, microbatches: r.microbatches, inputs, ...(r.lossSum !== undefined && { lossSum: r.lossSum }) });
      // A GPU-usage limit: rest before taking the next message, so this GPU works `duty` of the time.
      const rest = restAfter(r.busyMs, this.duty);
      if (rest > 0) await sleep(rest);
    } catch (e) {
      if (abort.signal.aborted) return;
      if (e instanceof StallError) return void this.ctx.send({ type: 'stalled', round: m.round, from: e.from, reason: e.message.slice(0, 1000) });
      throw e;
    } finally {
      if (this.roundAbort === abort) this.roundAbort = undefined;
    }
  }

  async onCommit(m: ServerMessageOf<'commit'>): Promise<void> {
    const seat = this.o.seat();
    if (!seat) return;
    const mine = this.pending?.round === m.round ? this.pending : undefined;
    this.pending = undefined;
    this.discarded.delete(m.round);
    if (mine && m.apply) await seat.runner.apply(m.step);
    else if (mine) seat.runner.discard();
    seat.mailbox.forgetRoundsBefore(m.round + 1);
    if (!m.apply) return;
    this.committed = m.step;
    this.ctx.emit('committed', { step: m.step, ...(m.loss !== undefined && { loss: m.loss }) });
    if (mine) this.reportStep(seat, m.step, mine);
    if (m.average) await this.average(seat, m.step, m.average);
    if (m.eval) await this.evaluate(seat, m.round, m.step, m.eval);
  }

  /** What this peer did so far (kept from its last stage once the stage is given up). */
  stats(): PeerStats | undefined {
    const seat = this.o.seat();
    if (!seat) return this.kept;
    const w = seat.runner.wire;
    this.kept = {
      stage: seat.stage,
      steps: this.committed,
      microbatches: this.microbatches,
      wallMs: this.ctx.host.now() - this.t0,
      busyMs: this.busyMs,
      roundSpanMs: this.roundSpanMs,
      fwdBytesSent: w.fwdSent,
      bwdBytesSent: w.bwdSent,
      fwdTokens: w.fwdTokens,
      bwdTokens: w.bwdTokens,
      averagingBytesSent: seat.averager.bytesSent,
      stateBytesServed: this.o.stateBytesServed(),
      rejectedFrames: seat.mailbox.rejected,
      layersHeld: seat.cfg.nLayer,
      paramsHeld: seat.runtime.layout.count,
    };
    return this.kept;
  }

  /** Tell the coordinator where this peer is (the heartbeat). */
  heartbeat(): void {
    const bytes = this.o.wireBytes();
    const secs = (this.ctx.host.now() - this.t0) / 1000;
    this.ctx.send({
      type: 'heartbeat',
      step: this.committed,
      ...(this.lastLoss !== undefined && { loss: this.lastLoss }),
      ...(this.lastValLoss !== undefined && { valLoss: this.lastValLoss }),
      tokensPerSec: this.tokens / Math.max(secs, 1e-3),
      busyFraction: Math.min(1, this.busyMs / Math.max(1, secs * 1000)),
      bytesSent: bytes.sent,
      bytesReceived: bytes.received,
    });
  }

  /** Keep the stage's state at the last committed step on this machine, to offer when registering again. */
  async keepLiveState(): Promise<void> {
    const seat = this.o.seat();
    if (!seat) return;
    this.dropPending();
    if (this.committed === 0) return;
    seat.snapshot = await seat.capture();
    await keepState(this.ctx.host.storage, seat.snapshot, seat.run.runId);
    this.ctx.say(`kept stage ${seat.stage}'s state at step ${seat.snapshot.step} to offer the coordinator`);
  }

  private reportStep(seat: StageSeat, step: number, mine: { microbatches: number; lossSum?: number }): void {
    const run = seat.run;
    this.tokens += mine.microbatches * run.model.batch * run.model.seq;
    this.microbatches += mine.microbatches;
    const now = this.ctx.host.now();
    if (mine.lossSum !== undefined && mine.microbatches > 0) {
      this.lastLoss = mine.lossSum / mine.microbatches;
      this.curves.train.push([step, this.lastLoss]);
    }
    const bytes = this.o.wireBytes();
    const w = seat.runner.wire;
    const dense = (w.fwdTokens + w.bwdTokens) * run.model.dModel * 4;
    this.ctx.emit('credited', { step, microbatches: mine.microbatches });
    this.ctx.emit('step', {
      step,
      loss: this.lastLoss,
      microbatches: mine.microbatches,
      tokensPerSec: this.tokens / Math.max((now - this.t0) / 1000, 1e-3),
      busyFraction: Math.min(1, this.busyMs / Math.max(1, now - this.t0)),
      bytesSent: bytes.sent,
      bytesReceived: bytes.received,
      bytesSaved: Math.max(0, dense - w.fwdSent - w.bwdSent),
    });
    this.heartbeat();
  }

  private async average(seat: StageSeat, step: number, a: NonNullable<ServerMessageOf<'commit'>['average']>): Promise<void> {
    const self = this.ctx.peerId();
    const members = a.members[seat.stage] ?? [];
    const listeners = a.listeners[seat.stage] ?? [];
    if (!members.includes(self) && !listeners.includes(self)) return;
    const { n, outliers } = await seat.averager.average(step, members, listeners);
    const weights = this.o.frames.weightSeals(step, members).slice(0, MAX_WEIGHT_SEALS);
    if (n === 0) return this.ctx.say(`averaging at step ${step}: no replica's weights arrived; keeping this peer's own state`);
    if (!members.includes(self)) this.committed = step;
    // Every peer keeps its stage's state at each averaging point: the run can resume from it if
    // this stage's last peer is lost.
    seat.snapshot = await seat.capture();
    await keepState(this.ctx.host.storage, seat.snapshot, seat.run.runId);
    this.ctx.send({ type: 'checkpoint', step, hash: seat.snapshot.paramsHash, ...(outliers.length && { outliers }), ...(weights.length && { weights }) });
  }

  private async evaluate(seat: StageSeat, round: number, step: number, e: NonNullable<ServerMessageOf<'commit'>['eval']>): Promise<void> {
    const at = e.path.indexOf(this.ctx.peerId());
    if (at < 0) return;
    // A peer lost while this one was still averaging: waiting for its frames would hold every round behind this one.
    const lost = e.path.find((p) => this.o.gone(p));
    if (lost) return this.ctx.say(`evaluation after step ${step} skipped: ${lost} on its path is gone`);
    const abort = new AbortController();
    this.evaluating = { path: e.path, abort };
    try {
      // Tagged as the round after the commit: its frames must outlive the committed round's.
      const v = await seat.runner.evaluate(round + 1, e.batches, { prev: e.path[at - 1], next: e.path[at + 1] }, abort.signal);
      if (v === undefined) return;
      this.lastValLoss = v;
      this.curves.val.push([step, v]);
      this.ctx.send({ type: 'evaluated', step, valLoss: v });
    } catch (err) {
      this.ctx.say(`evaluation after step ${step} failed: ${(err as Error).message}`);
    } finally {
      if (this.evaluating?.abort === abort) this.evaluating = undefined;
    }
  }
}
