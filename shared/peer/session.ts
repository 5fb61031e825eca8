// One peer's whole life in the swarm, the same in Node, a browser tab and the desktop app:
// detect the GPU → register → take the stage the coordinator places it on → open data channels to
// its neighbours → load the stage's state → compute the rounds it is routed → average with its
// replicas → serve inference → leave. The host (host.ts) hands in the GPU, the sockets, storage,
// the corpus and the clock; the session reports everything a UI shows as typed events.
//
// The session is a composition: neighbours.ts (the view and its channels), the trust gate (every
// byte in and out of a channel: shared/trust/gate.ts), stage.ts (the seat and its state),
// training.ts, serving.ts, witnessing.ts (audits), state-sync.ts and proofs.ts. It registers (again
// after losing the coordinator) and hands each coordinator message to its part, one at a time and
// in order, except those that must cut in: a discarded round aborts the computation under way, a
// lost peer stops waiting for it, a stop stops everything.
import type { Gpu } from '../../kernels/context.js';
import { Emitter } from '../base/emitter.js';
import { CoordinatorClient } from '../swarm/coordinator-client.js';
import { KeyRing, PeerKey } from '../swarm/identity.js';
import { applyViewChange, type ClientMessage, type ClientMessageOf, type PeerInfo, type Seal, type ServerMessageOf } from '../swarm/protocol.js';
import { BUNDLE_WAIT_MS } from '../trust/audit.js';
import { FrameLog } from '../trust/frame-log.js';
import { Gate } from '../trust/gate.js';
import { NeighbourReports } from '../trust/neighbour-reports.js';
import { signState, verifyStateSeal } from '../trust/state-seal.js';
import { joinChain } from './chain-join.js';
import { type PeerContext, sleep } from './context.js';
import type { ChainInfo, PeerHost } from './host.js';
import { waitForHeir } from './leaving.js';
import type { LinkRecord } from './link-ledger.js';
import { Neighbours } from './neighbours.js';
import { keepProof } from './proofs.js';
import type { PeerStats, SessionEvents, SessionPhase } from './session-events.js';
import { Serving } from './serving.js';
import { Stage } from './stage.js';
import type { RunnerOptions } from './stage-runner.js';
import { type StageSnapshot, StateExchange } from './state-sync.js';
import { heldStates, keepState } from './state-store.js';
import { Training } from './training.js';
import { Witnessing } from './witnessing.js';

export interface SessionOptions {
  coordinator: string;
  name: string;
  /** How long to wait for a neighbour's frame or state before giving up on it. Default 60 s. */
  timeoutMs?: number;
  extraWarmup?: number;
  autotune?: boolean;
  onBoundary?: RunnerOptions['onBoundary'];
  /** Compute this many times slower than the GPU can: a straggler, for benchmarks (see RunnerOptions). */
  slowdown?: number;
  /**
   * Rewrite a frame's bytes (or send several) before they are sealed and sent. What a hostile build of this client
   * could do; only the adversarial test peers (bench/adversary.ts) set it.
   */
  tamper?(to: string, frame: Uint8Array): Uint8Array | readonly Uint8Array[];
  /** Rewrite the stage state this peer gives a joiner or heir. What a hostile build could do; only the adversarial test peers set it. */
  tamperState?(state: StageSnapshot): StageSnapshot;
  /** Rewrite the audit bundle this peer shows a witness, or withhold it (undefined). What a hostile build could do; only the adversarial test peers set it. */
  tamperBundle?(to: string, bundle: Uint8Array): Uint8Array | undefined;
  /**
   * Claim this GPU speed (GFLOP/s) at registration instead of what was measured. What a hostile
   * build could claim (a round's time it cannot: the coordinator times reports); only the
   * adversarial test peers set it.
   */
  claims?: { gflops: number };
  /**
   * What a hostile build could tell the coordinator: each report rewritten into any number (none:
   * withheld), and reports of its own made from the sealed frames it receives. Only the
   * adversarial test peers set it.
   */
  misreport?: {
    report?(m: ClientMessage, me: MisreportContext): readonly ClientMessage[];
    received?(from: string, seal: Seal, frame: Uint8Array, me: MisreportContext): readonly ClientMessage[];
  };
  /** How long to keep trying to register again after the coordinator is lost. Default 10 min. */
  reconnectForMs?: number;
}

/** What a misreporting peer knows: its id, its stage and the stages of the peers it knows. */
export interface MisreportContext {
  self: string;
  stage?: number;
  known: readonly PeerInfo[];
}

const HEARTBEAT_MS = 1000;
/** How long a peer that lost the coordinator keeps trying to register again. */
const RECONNECT_FOR_MS = 10 * 60_000;

export class PeerSession extends Emitter<SessionEvents> {
  peerId?: string;
  private client?: CoordinatorClient;
  /** This session's signing key (identity.ts): it seals the frames this peer sends. */
  private key?: PeerKey;
  private gpu?: Gpu;
  private capability?: ClientMessageOf<'register'>['capability'];
  private chain?: ChainInfo;
  private readonly neighbours: Neighbours;
  private readonly gate: Gate;
  private readonly witnessing: Witnessing;
  private readonly states: StateExchange;
  private readonly held: Stage;
  private readonly training: Training;
  private readonly serving: Serving;
  private queue: Promise<void> = Promise.resolve();
  private phase_: SessionPhase = 'starting';
  private beat?: ReturnType<typeof setInterval>;
  private finished!: (reason: string) => void;
  private readonly done: Promise<string>;
  private leaving = false;
  private reconnecting = false;
  private joinedChain = false;

  constructor(
    private readonly host: PeerHost,
    private readonly o: SessionOptions,
  ) {
    super();
    this.done = new Promise((resolve) => (this.finished = resolve));
    const ctx = this.context();
    const log = (l: string) => this.say(l);
    const report = (m: ClientMessage) => this.send(m);
    const frames = new FrameLog();
    const sendFrame = (to: string, b: Uint8Array) => void this.gate.sendFrame(to, b);
    this.neighbours = new Neighbours(
      ctx,
      () => this.selfInfo(),
      (from, b) => void this.gate.receive(from, b),
    );
    this.gate = new Gate({
      self: () => this.peerId!,
      key: () => this.key!,
      keyOf: (id) => this.neighbours.keyOf(id),
      send: (to, b) => this.neighbours.send(to, b),
      frames,
      log,
      tamper: o.tamper,
      opened: o.misreport?.received && ((from, seal, f) => o.misreport!.received!(from, seal, f, this.misreportContext()).forEach((m) => this.send(m))),
      handlers: {
        frame: (from, f) => this.held.seat?.mailbox.deliver(from, f),
        state: (from, b) => void this.states.onMessage(from, b),
        bundle: (from, b) => this.witnessing.deliver(from, b),
      },
    });
    const reports = new NeighbourReports({ frames, report, log });
    this.witnessing = new Witnessing({
      frames,
      seat: () => this.held.seat,
      sendBundle: (to, b) => this.sendBundle(to, b),
      report,
      timeoutMs: Math.min(ctx.timeoutMs, BUNDLE_WAIT_MS),
      log,
    });
    const keys = new KeyRing();
    this.states = new StateExchange({
      meta: () => this.held.seat && { runId: this.held.seat.run.runId, stage: this.held.seat.stage },
      send: (to, b) => this.gate.sendState(to, b),
      offer: () => {
        const s = this.held.seat?.snapshot;
        return s && o.tamperState ? o.tamperState(s) : s;
      },
      seal: (runId, f) => signState(this.key!, runId, { ...f, from: this.peerId! }),
      verify: (runId, s) => verifyStateSeal(s, runId, keys, this.neighbours.keySeen(s.from)),
      log,
    });
    this.held = new Stage(ctx, {
      gpu: () => this.gpu!,
      memoryBytes: () => this.capability?.memoryBytes ?? 0,
      neighbours: this.neighbours,
      states: this.states,
      sendFrame,
      onHostile: (from, what) => reports.refused(from, what),
      onSuspect: (from, what) => reports.suspect(from, what),
      extraWarmup: o.extraWarmup ?? 0,
      autotune: o.autotune ?? false,
      onBoundary: o.onBoundary,
      slowdown: o.slowdown,
      beforeDrop: () => void this.training.stats(),
    });
    this.training = new Training(ctx, {
      seat: () => this.held.seat,
      frames,
      reports,
      witnessing: this.witnessing,
      wireBytes: () => this.neighbours.bytes,
      stateBytesServed: () => this.states.served.bytes,
      gone: (id) => this.neighbours.gone.has(id),
    });
    this.serving = new Serving(ctx, { seat: () => this.held.seat, text: () => this.held.text, sendFrame });
  }

  private sendBundle(to: string, bundle: Uint8Array): void {
    const b = this.o.tamperBundle ? this.o.tamperBundle(to, bundle) : bundle;
    if (b) this.gate.sendBundle(to, b);
  }

  /** Train this fraction of the time (the app's GPU-usage limit or a power throttle); 1: flat out. */
  setDuty(duty: number): void {
    this.training.setDuty(duty);
  }

  get phase(): SessionPhase {
    return this.phase_;
  }

  get stage(): number | undefined {
    return this.held.seat?.stage;
  }

  /** The losses this peer saw: its own training loss (last stage) and the validation losses it computed. */
  get curves(): Training['curves'] {
    return this.training.curves;
  }

  /** What this peer did so far (kept from its last stage once the stage is given up). */
  stats(): PeerStats | undefined {
    return this.training.stats();
  }

  /** Each neighbour's link: its path, what connecting took and the bytes it carried, relayed or direct. */
  links(): LinkRecord[] {
    return this.neighbours.ledger.records();
  }

  /** Join the swarm and take part until the run ends, the peer leaves, or it fails. Resolves with why it ended. */
  async run(): Promise<string> {
    try {
      await this.start();
    } catch (e) {
      this.end('failed', (e as Error).message);
    }
    return this.done;
  }

  private async start(): Promise<void> {
    const { gpu, report, verdict } = await this.host.gpu();
    // Told to leave while detecting: this session is over, and a peer it registered now would be a ghost.
    if (this.leaving) return;
    this.gpu = gpu;
    this.emit('gpu', { report, verdict });
    if (!verdict.ok) throw new Error(`this machine cannot train: ${verdict.text}`);
    for (const w of verdict.warnings) this.say(`warning: ${w}`);
    this.capability = {
      adapter: report.adapter?.description || 'unknown',
      kind: report.adapter?.kind ?? 'unknown',
      gflops: this.o.claims?.gflops ?? report.bench?.matmulGflops ?? 0,
      memoryBytes: report.budget?.bytes ?? 0,
      maxLayers: verdict.layers,
    };
    this.setPhase('registering', `connecting to ${this.o.coordinator}`);
    await this.register();
  }

  /**
   * Register (again, after the coordinator was lost) with a fresh key, offering the stage states
   * this peer keeps; then heartbeat and open data channels as the coordinator says.
   */
  private async register(): Promise<void> {
    const client = new CoordinatorClient(this.o.coordinator, this.host.WebSocket);
    this.client = client;
    this.listen(client);
    const held = await heldStates(this.host.storage);
    // Every registration makes its own key: the coordinator refuses a key it has seen.
    this.key = await PeerKey.generate();
    const w = this.host.wallet;
    const identity = { key: this.key, ...(w && { account: { address: w.account, signMessage: (m: string) => w.signMessage(m) } }) };
    const { peerId, chain, iceServers } = await client.connect({ name: this.o.name, capability: this.capability!, ...(held.length && { held }) }, identity);
    if (this.leaving) return client.close();
    this.peerId = peerId;
    this.chain = chain;
    // Heartbeats first: joining on chain waits for blocks, and silence would mark us lost.
    this.beat = setInterval(() => this.training.heartbeat(), HEARTBEAT_MS);
    this.emit('registered', { peerId, chain });
    this.neighbours.open(peerId, (to, data) => client.send({ type: 'signal', to, data }), iceServers);
    if (chain && !this.joinedChain) {
      this.joinedChain = true;
      await joinChain(this.context(), chain);
    }
  }

  /**
   * The coordinator is gone (it crashed, restarted or the network dropped) without ending the run:
   * keep this peer's state at its last committed step (uncommitted gradients are dropped, as the
   * coordinator drops the round), give the stage up, and register again with backoff (1, 2, 4 … 30 s)
   * for up to `reconnectForMs`. A coordinator that resumes the run places this peer back on its
   * stage with the state it kept. A refusal ends the session.
   */
  private async reconnect(why: string): Promise<void> {
    if (this.leaving || this.reconnecting) return;
    this.reconnecting = true;
    clearInterval(this.beat);
    this.stopWork(new Error(why));
    this.setPhase('registering', `${why}; keeping this peer's state`);
    await this.queue;
    this.neighbours.reset();
    await this.training.keepLiveState();
    this.held.drop();
    const forMs = this.o.reconnectForMs ?? RECONNECT_FOR_MS;
    const deadline = this.host.now() + forMs;
    for (let n = 1; !this.leaving; n++) {
      const wait = Math.min(30, 2 ** (n - 1)) * 1000;
      if (this.host.now() + wait > deadline) return this.end('stopped', `${why}; no coordinator took this peer back within ${forMs / 1000} s`);
      this.setPhase('registering', `${why}; reconnecting in ${wait / 1000} s (attempt ${n})`);
      await sleep(wait);
      if (this.leaving) return;
      try {
        await this.register();
        this.reconnecting = false;
        return this.say(`reconnected to ${this.o.coordinator} as ${this.peerId}`);
      } catch (e) {
        const message = (e as Error).message;
        if (message.startsWith('coordinator refused registration')) return this.end('stopped', message);
        this.say(`reconnecting (attempt ${n}): ${message}`);
      }
    }
  }

  /** Each coordinator message to its part: in order through the queue, or at once where it must cut in. */
  private listen(c: CoordinatorClient): void {
    const inOrder =
      <T>(f: (m: T) => Promise<void>) =>
      (m: T) => {
        // Work cut short by the coordinator's loss is not this peer's failure.
        this.queue = this.queue.then(() => f(m)).catch((e: Error) => (this.reconnecting ? this.say(`dropped with the coordinator: ${e.message}`) : this.fail(e)));
      };
    c.on('assign', (m) => {
      // Membership is taken as it arrives: a `peers` update that overtakes this assign in the queue
      // must not be overwritten by the older list the assign carries.
      this.neighbours.members = m.peers;
      const seq = this.held.arrived();
      inOrder((x: typeof m) => this.onAssign(x, seq))(m);
    });
    const onRound = inOrder((m: ServerMessageOf<'round'>) => this.training.onRound(m));
    c.on('round', (m) => {
      this.training.arrived(m);
      onRound(m);
    });
    // Not queued: the round it asks about is what the queue is busy with.
    c.on('late', (m) => this.training.late(m));
    c.on('commit', (m) => {
      this.training.decided(m);
      inOrder((x: typeof m) => this.training.onCommit(x))(m);
    });
    // Started in order (after the assign that seated this peer), but not awaited: requests are served
    // at once, so one waiting on a dead peer holds up no other.
    c.on(
      'generate',
      inOrder(async (m) => void this.serving.onGenerate(m).catch((e: Error) => this.say(`request ${m.requestId}: ${e.message}`))),
    );
    // Not queued: this peer may be witnessing the peer that witnesses it (each waits for the other's bundle).
    c.on('audit', (m) => void this.witnessing.audited(m).catch((e: Error) => this.say(`could not send the bundle of round ${m.round}: ${e.message}`)));
    c.on(
      'verify',
      inOrder((m) => this.witnessing.witness(m)),
    );
    c.on('peers', (m) => this.neighbours.setView(applyViewChange(this.neighbours.members, m)));
    c.on('signal', (m) => this.neighbours.signal(m.from, m.data));
    c.on('peer-lost', (m) => this.onPeerLost(m.peerId));
    c.on('status', ({ type: _, ...s }) => this.emit('swarm', s));
    c.on('validation', ({ step, valLoss }) => this.emit('evaluated', { step, valLoss }));
    c.on('handoff', (m) => this.neighbours.handOffTo(m.to));
    c.on('settled', (m) => void this.keepProof(m));
    c.on('error', (m) => this.say(`coordinator: ${m.message}${m.ref ? ` (${m.ref})` : ''}`));
    c.on('stop', (m) => this.end('stopped', m.reason));
    c.on('close', (m) => {
      if (c === this.client && !this.leaving) void this.reconnect(`the coordinator connection closed (code ${m.code}${m.reason ? `: ${m.reason}` : ''})`);
    });
  }

  private async onAssign(m: ServerMessageOf<'assign'>, seq: number): Promise<void> {
    const step = await this.held.take(m, seq);
    if (step === undefined) return;
    this.training.committed = step;
    this.setPhase('ready', `stage ${m.stage} loaded at step ${step}; waiting to be routed work`);
    const hash = this.held.seat?.snapshot?.paramsHash;
    const seal = this.held.sealOfLoaded();
    this.send({ type: 'ready', step, ...(hash && { hash }), ...(seal && { seal }) });
  }

  private onPeerLost(peerId: string): void {
    this.neighbours.gone.add(peerId);
    this.held.seat?.averager.forget(peerId);
    this.states.forget(peerId);
    this.training.lost(peerId);
    this.serving.lost(peerId);
  }

  private async keepProof(m: ServerMessageOf<'settled'>): Promise<void> {
    if (!this.chain) return;
    const { type: _, ...epoch } = m;
    const key = await keepProof(this.host.storage, this.chain, epoch, (l) => this.say(l));
    this.emit('settled', { epoch: m.epoch, account: m.account, cumulative: m.cumulative, key });
  }

  /**
   * Graceful leave (the app's pause): stop computing now (the round under way is discarded and
   * routed to others), keep the stage's state on this machine, free the GPU, and hand the state to
   * an heir if the coordinator names one. Resolves once the peer is gone, with how long the GPU
   * took to be released.
   */
  async leave(reason: string): Promise<{ releasedMs: number }> {
    if (this.leaving) throw new Error('already leaving');
    this.leaving = true;
    const t0 = this.host.now();
    this.setPhase('leaving', reason);
    this.training.abort(new Error(`leaving: ${reason}`));
    const seat = this.held.seat;
    let kept: StageSnapshot | undefined;
    let servedBefore = this.states.served.count;
    // The computation under way ends at its next GPU operation; wait for that, not for the round.
    await Promise.race([this.queue, sleep(1500)]);
    if (seat) {
      this.training.dropPending();
      kept = await seat.capture();
      seat.snapshot = kept;
      servedBefore = this.states.served.count;
      this.training.stats();
      seat.destroy();
    }
    const releasedMs = this.host.now() - t0;
    this.emit('released', { ms: releasedMs });
    if (kept && seat) await keepState(this.host.storage, kept, seat.run.runId);
    const committed = this.training.committed;
    this.send({ type: 'leave', reason: reason.slice(0, 1000), ...(kept && committed > 0 && { kept: { step: kept.step, hash: kept.paramsHash } }) });
    await waitForHeir(this.context(), this.neighbours, () => this.states.served.count > servedBefore);
    this.end('left', reason);
    return { releasedMs };
  }

  /** Stop everything under way: the round, an evaluation, a request. */
  private stopWork(reason: Error): void {
    this.training.abort(reason);
    this.serving.abort(reason);
  }

  /** This peer as its dashboard draws it, once registered. */
  private selfInfo(): Omit<PeerInfo, 'stage'> | undefined {
    return this.peerId && this.key ? { peerId: this.peerId, name: this.o.name, key: this.key.publicHex } : undefined;
  }

  private context(): PeerContext {
    return {
      host: this.host,
      timeoutMs: this.o.timeoutMs ?? 60_000,
      peerId: () => this.peerId!,
      send: (m) => this.send(m),
      say: (l) => this.say(l),
      phase: () => this.phase_,
      setPhase: (p, why) => this.setPhase(p, why),
      emit: (e, p) => this.emit(e, p),
      leaving: () => this.leaving,
    };
  }

  private send(msg: ClientMessage): void {
    // While the coordinator is lost there is nobody to tell; a registration starts afresh.
    if (!this.client?.connected) return;
    try {
      for (const m of this.o.misreport?.report?.(msg, this.misreportContext()) ?? [msg]) this.client?.send(m);
    } catch (e) {
      this.say(`BUG: ${(e as Error).message}`);
    }
  }

  private misreportContext(): MisreportContext {
    return { self: this.peerId ?? '', stage: this.held.seat?.stage, known: this.neighbours.known() };
  }

  private setPhase(phase: SessionPhase, why: string): void {
    if (this.phase_ === phase && phase !== 'setting-up' && phase !== 'registering') return;
    this.phase_ = phase;
    this.emit('phase', { phase, why });
  }

  private say(line: string): void {
    this.host.log(line);
    this.emit('log', { line });
  }

  private fail(e: Error): void {
    this.end('failed', e.message);
  }

  private end(phase: 'left' | 'stopped' | 'failed', reason: string): void {
    if (['left', 'stopped', 'failed'].includes(this.phase_)) return;
    this.stopWork(new Error(reason));
    clearInterval(this.beat);
    this.neighbours.close();
    this.training.stats();
    if (phase === 'left') this.held.seat = undefined;
    else this.held.drop();
    this.leaving = true;
    this.client?.close();
    this.phase_ = phase;
    this.emit('phase', { phase, why: reason });
    this.emit('done', { reason });
    this.finished(reason);
  }
}
