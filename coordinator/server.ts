// The coordinator (ARCHITECTURE §5): a WebSocket server that wires the transport (transport.ts),
// the run's state machine (run-control.ts) and inference serving (serving.ts) together, relays
// WebRTC signaling between neighbours and watches liveness. It carries control messages only and
// never holds weights or tensors. Beside its socket it publishes the run's spec at /run.json
// (shared/run/spec.ts), the text the run's modelHash on chain commits to.
//
// Liveness: a connection that closes (a killed process's socket closes at once) is a lost peer; so
// is a peer silent for longer than its timeout (the network dropped, the machine slept). Active
// peers heartbeat every second and get `heartbeatTimeoutMs`; peers still setting up (compiling
// kernels can block a CPU peer's event loop for long) get `setupTimeoutMs`.
import { randomBytes } from 'node:crypto';
import { type ClaimOutcome, Claims } from './claims.js';
import type { RoutingPolicy } from './planner.js';
import { type Progress, progressOf, Throughput } from './progress.js';
import { peerAddress, Registrar } from './registration.js';
import { RunControl, type RunControlEvents } from './run-control.js';
import type { RunStore } from './run-store.js';
import { type InferenceDesk, InferenceService } from './serving.js';
import { type IceConfig, iceServersFor } from './turn-credentials.js';
import { type Access, type Conn, Transport, type TransportCounters } from './transport.js';
import { Emitter } from '../shared/base/emitter.js';
import { BUNDLE_WAIT_MS } from '../shared/trust/audit.js';
import { GEN_OPEN_REQUESTS } from '../shared/trust/mailbox.js';
import type { Capability, ClientMessage, ClientMessageOf, ServerMessage, ServerMessageOf, SwarmPhase } from '../shared/swarm/protocol.js';
import { formatIssues } from '../shared/base/issues.js';
import { type RunConfig, RunConfigSchema } from '../shared/run/config.js';
import { RUN_SPEC_PATH, runSpecJson } from '../shared/run/spec.js';

export type { InferenceDesk };

export interface CoordinatorOptions {
  run: RunConfig;
  /** How training steps are routed (planner.ts); the naive round-robin is for benchmarks. */
  routing?: RoutingPolicy;
  /** An active peer silent for longer than this is lost. Default 10 s (peers heartbeat every second). */
  heartbeatTimeoutMs?: number;
  /** A peer still setting up (compiling kernels, loading state) silent for longer than this is lost. Default 180 s. */
  setupTimeoutMs?: number;
  /**
   * A peer not ready this long after it was placed is dropped, heartbeats or not: a peer that
   * registers and never computes must not hold a stage's place. Default 15 min (a CPU adapter's
   * cold shader cache takes minutes).
   */
  readyTimeoutMs?: number;
  /** A round that takes longer than this is discarded and routed again. Default 10 min. */
  roundTimeoutMs?: number;
  /**
   * Spot checks: the probability each routed peer's round is audited by a witness replica
   * (shared/trust/audit-choice.ts). Default 0.25.
   */
  auditRate?: number;
  /**
   * How long an audit may take (the bundle's transfer and the recomputation) before the round goes
   * on without it: what a silent witness can hold a round for. Default 20 s (audits of the default
   * model take under 1 s here). At least twice a witness's wait for a bundle (BUNDLE_WAIT_MS): an
   * accuser's "no bundle came" and its panel's answers must both fit.
   */
  auditTimeoutMs?: number;
  /** TLS (wss://) and the web pages allowed besides this machine's (transport.ts). */
  access?: Access;
  /** The STUN and TURN servers peers connect through, beyond one machine (turn-credentials.ts). */
  ice?: IceConfig;
  /** Bad frames one socket may send before it is closed. Default 20. */
  maxBadMessages?: number;
  log?: (line: string) => void;
  /**
   * Where the run's state is kept (run-store.ts). With it, the coordinator resumes the run the store
   * holds, and records every round and commit before peers hear of it. The caller opens and closes it.
   */
  store?: RunStore;
  /** The chain the run settles on, announced to peers in `welcome` so they can join it there. */
  chain?: ServerMessageOf<'welcome'>['chain'];
  /** Serving inference after training (with `run.serve`): how a buyer's spend is checked and receipted. */
  inference?: InferenceDesk;
  /** Longest one generation attempt may take before it is retried on another path. Default 120 s. */
  generateTimeoutMs?: number;
  /** Spends served at once (default: the requests a stage batches, GEN_OPEN_REQUESTS); more are told the swarm is busy. */
  serveConcurrency?: number;
}

export interface CoordinatorEvents extends RunControlEvents {
  register: { peerId: string; name: string; capability: Capability; account?: `0x${string}`; stage: number };
  heartbeat: { peerId: string; step: number };
  /** A registration refused (its proofs, or a second live peer of one account), with the name it gave. */
  refused: { name: string; reason: string };
  /** A buyer's query was sent down a path (again, on a retry). */
  generate: { requestId: number; path: string[] };
}

/** Peer counts while waiting change with every join: told to the swarm at most once a second. */
const STATUS_EVERY_MS = 1000;
const FINAL_EVAL_TIMEOUT_MS = 120_000;
/** Run-control events after which the run's state is saved (with what their listeners save). */
const DURABLE = new Set<keyof RunControlEvents>(['round', 'commit', 'purged', 'phase']);

export class Coordinator extends Emitter<CoordinatorEvents> {
  readonly run: RunConfig;
  readonly control: RunControl;
  /** Resolves when training is over (all steps committed, the final evaluation in); rejects if the run stops or the server closes first. */
  readonly trained: Promise<{ step: number; valLoss?: number }>;
  private readonly transport: Transport;
  private readonly serving?: InferenceService;
  private readonly conns = new Map<string, Conn>();
  private readonly lastSeen = new Map<string, number>();
  private readonly log: (line: string) => void;
  private readonly heartbeatTimeoutMs: number;
  private readonly setupTimeoutMs: number;
  private readonly readyTimeoutMs: number;
  private readonly auditTimeoutMs: number;
  private readonly roundTimeoutMs: number;
  private timer?: ReturnType<typeof setInterval>;
  /** The phase the store last saved (see durably). */
  private savedPhase?: SwarmPhase;
  private seq = 0;
  private closed = false;
  private settle!: { resolve: (r: { step: number; valLoss?: number }) => void; reject: (e: Error) => void };
  private readonly throughput: Throughput;
  private evalSince?: number;
  private readonly claims: Claims;
  private readonly registrar = new Registrar<Conn>();
  /** The connections whose registration is being checked. */
  private readonly checking = new WeakSet<Conn>();
  /** The peer being placed, and what the run sent it meanwhile (delivered after its welcome). */
  private registering?: { peerId: string; held: ServerMessage[] };

  constructor(private readonly o: CoordinatorOptions) {
    super();
    const run = RunConfigSchema.safeParse(o.run);
    if (!run.success) throw new Error(`invalid run config: ${formatIssues('run', run.error)}`);
    this.run = run.data;
    if (this.run.serve && !o.inference) throw new Error('run.serve needs an inference desk to check spends');
    this.log = o.log ?? (() => {});
    this.heartbeatTimeoutMs = positive('heartbeatTimeoutMs', o.heartbeatTimeoutMs ?? 10_000);
    this.setupTimeoutMs = positive('setupTimeoutMs', o.setupTimeoutMs ?? 180_000);
    this.readyTimeoutMs = positive('readyTimeoutMs', o.readyTimeoutMs ?? 15 * 60_000);
    this.auditTimeoutMs = positive('auditTimeoutMs', o.auditTimeoutMs ?? 20_000);
    if (this.auditTimeoutMs < 2 * BUNDLE_WAIT_MS)
      throw new Error(`auditTimeoutMs must be at least ${2 * BUNDLE_WAIT_MS} ms (twice a witness's wait for a bundle), got ${this.auditTimeoutMs}`);
    const auditRate = o.auditRate ?? 0.25;
    if (!(auditRate >= 0 && auditRate <= 1)) throw new Error(`auditRate must be in [0, 1], got ${auditRate}`);
    this.roundTimeoutMs = positive('roundTimeoutMs', o.roundTimeoutMs ?? 600_000);
    this.trained = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    // A stopped run rejects `trained`; without a listener that would be an unhandled rejection.
    this.trained.catch(() => {});
    this.transport = new Transport({ open: (c) => this.greet(c), message: (c, m) => this.onMessage(c, m), close: (c) => this.onClose(c) }, this.log, o.maxBadMessages);
    this.control = new RunControl({
      run: this.run,
      send: (id, m) => this.sendToPeer(id, m),
      now: () => Date.now(),
      log: this.log,
      // Peers must not guess which work is checked: the coordinator's own CSPRNG.
      audit: { rate: auditRate, random: () => randomBytes(4).readUInt32LE() / 2 ** 32 },
      statusEveryMs: STATUS_EVERY_MS,
      routing: o.routing,
    });
    for (const event of ['commit', 'round-aborted', 'phase', 'peer-gone', 'purged', 'evaluated', 'trained', 'round'] as const) {
      this.control.on(event, (payload) => this.durably(event, payload, () => this.emit(event, payload as never, (e) => this.log(`listener for ${event} threw: ${e.message}`))));
    }
    this.throughput = new Throughput(this.run);
    this.control.on('commit', (c) => this.throughput.committed(c.step, Date.now()));
    this.claims = new Claims({
      run: this.run,
      keyOf: (id) => this.control.peer(id)?.key,
      stepOfRound: (r) => this.control.stepOfRound(r),
      stateLie: (s) => this.control.stateLie(s),
      log: this.log,
    });
    this.control.on('trained', (t) => this.settle.resolve(t));
    this.control.on('phase', ({ phase, reason }) => phase === 'stopped' && this.settle.reject(new Error(`run stopped: ${reason}`)));
    this.control.on('peer-gone', ({ peerId }) => {
      this.lastSeen.delete(peerId);
      this.serving?.onPeerGone(peerId);
    });
    this.control.on('purged', ({ peerId, reason }) => this.cutOff(peerId, reason));
    const saved = o.store?.control();
    if (saved) this.control.resume(saved);
    if (o.inference) {
      this.serving = new InferenceService({
        desk: o.inference,
        path: (exclude) => this.control.path(exclude),
        why: () => this.control.reason,
        sendGenerate: (path, m) => {
          for (const id of path) this.sendToPeer(id, { type: 'generate', path, ...m });
          this.emit('generate', { requestId: m.requestId, path });
        },
        attemptTimeoutMs: o.generateTimeoutMs ?? 120_000,
        maxAttempts: 4,
        maxConcurrent: o.serveConcurrency ?? GEN_OPEN_REQUESTS,
        log: this.log,
      });
    }
  }

  get url(): string | undefined {
    return this.transport.url;
  }

  get phase(): SwarmPhase {
    return this.control.phase;
  }

  /** Serve the next spends by re-forwarding the whole window for every token (true), or with the stages' KV caches (what bench:serve compares). */
  serveRecompute(on: boolean): void {
    if (this.serving) this.serving.recompute = on;
  }

  /** Start serving; resolves with the bound port (pass 0 for an ephemeral one). */
  async listen(port: number, host = '127.0.0.1'): Promise<number> {
    // The run's spec, public beside the socket: what a page checks against the run's modelHash on chain.
    const spec = { contentType: 'application/json', body: runSpecJson(this.run) };
    const actual = await this.transport.listen(port, host, this.o.access, { [RUN_SPEC_PATH]: spec });
    this.timer = setInterval(() => this.watch(), Math.max(50, Math.min(1000, this.heartbeatTimeoutMs / 4)));
    this.log(`listening on ${this.transport.url}: run ${this.run.runId}, ${this.run.stages} stages, at least ${this.run.minPerStage} peer(s) per stage to start`);
    return actual;
  }

  /** Close every connection and the server. A run not over by then rejects `trained`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.serving?.stop();
    this.settle.reject(new Error('the coordinator closed before training finished'));
    await this.transport.close();
    this.log('closed');
  }

  /** End the run: peers are told it is complete (or stopped) and may leave. */
  stopRun(reason = 'run complete', phase: 'finished' | 'stopped' = 'finished'): void {
    this.serving?.stop();
    this.control.stop(reason, phase);
  }

  get stats(): TransportCounters & { connections: number; peers: Record<string, number> } {
    const peers: Record<string, number> = { setup: 0, ready: 0, active: 0, gone: 0 };
    for (const p of this.control.allPeers()) peers[p.state]++;
    return { ...this.transport.counters, connections: this.transport.conns.size, peers };
  }

  progress(): Progress {
    const now = Date.now();
    return progressOf(this.control, this.throughput, (id) => now - (this.lastSeen.get(id) ?? now));
  }

  /** Send a message to one peer (e.g. its settlement proof); false if it is not connected. */
  sendToPeer(peerId: string, msg: ServerMessage): boolean {
    if (this.registering?.peerId === peerId) {
      this.registering.held.push(msg);
      return true;
    }
    const c = this.conns.get(peerId);
    if (!c) return false;
    this.transport.send(c, msg);
    return true;
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Events that change what must survive a crash are recorded, with whatever their listeners record
   * (the settlement's ledger and epochs), in one transaction: a commit and its credit are durable
   * together or not at all. The run control emits them before sending peers anything.
   */
  private durably(event: keyof RunControlEvents, payload: unknown, emit: () => void): void {
    const store = this.o.store;
    if (!store || !DURABLE.has(event)) return emit();
    // A new reason in the same phase (peer counts while waiting: one per join) is not worth a synced write.
    if (event === 'phase') {
      const { phase } = payload as RunControlEvents['phase'];
      if (phase === this.savedPhase) return emit();
      this.savedPhase = phase;
    }
    store.atomically(() => {
      store.saveControl(this.control.snapshot());
      emit();
    });
  }

  private onMessage(conn: Conn, msg: ClientMessage): void {
    if (msg.type === 'register') return void this.onRegister(conn, msg);
    // Buyers do not register: they are not peers, only customers of the swarm.
    if (msg.type === 'infer') return void this.onInfer(conn, msg);
    const peerId = conn.tag;
    if (!peerId) return this.transport.reject(conn, `send register before ${msg.type}`, msg.type);
    if (this.control.peer(peerId)?.state !== 'gone') this.lastSeen.set(peerId, Date.now());
    // Claims are checked asynchronously (signatures); a peer's later messages wait behind them, in order.
    const refused = this.claims.inOrder(peerId, msg, () => this.handle(conn, peerId, msg));
    if (refused) this.transport.reject(conn, refused, msg.type);
  }

  private async handle(conn: Conn, peerId: string, msg: Exclude<ClientMessage, { type: 'register' | 'infer' }>): Promise<void> {
    const refuse = (why: string | undefined) => why && this.transport.reject(conn, why, msg.type);
    const c = this.control;
    switch (msg.type) {
      case 'signal':
        return this.onSignal(conn, peerId, msg);
      case 'links':
        return c.onLinks(peerId, msg.connected);
      case 'ready':
        if (msg.seal) this.act(await this.claims.state(peerId, msg.seal, false));
        return c.onReady(peerId, msg.step, msg.hash);
      case 'bad-state':
        return this.act(await this.claims.state(peerId, msg.seal, true));
      case 'heartbeat': {
        const { type: _, ...hb } = msg;
        c.onHeartbeat(peerId, hb);
        return this.emit('heartbeat', { peerId, step: hb.step });
      }
      case 'round-done': {
        const claim = await this.claims.report(peerId, msg);
        if (claim.kind === 'guilty') return void refuse(c.purge(claim.verdict.guilty, claim.verdict.reason));
        return void refuse(c.onRoundDone(peerId, msg));
      }
      case 'verdict':
        return c.onVerdict(peerId, msg);
      case 'evidence':
        return this.act(await this.claims.shown(peerId, msg));
      case 'equivocation':
        return this.act(await this.claims.equivocation(peerId, msg));
      case 'evaluated':
        return c.onEvaluated(peerId, msg.step, msg.valLoss);
      case 'checkpoint':
        c.onCheckpoint(peerId, msg);
        return this.act(await this.claims.weights(peerId, msg));
      case 'stalled':
        return void refuse(c.onStalled(peerId, msg));
      case 'suspect':
        return void refuse(c.onSuspect(peerId, msg));
      case 'leave':
        return c.onGone(peerId, msg.reason, { kept: msg.kept });
      case 'generated':
        return void refuse(this.serving ? this.serving.onGenerated(peerId, msg) : 'this swarm does not serve inference');
      case 'generating':
        return void refuse(this.serving ? this.serving.onGenerating(peerId, msg) : 'this swarm does not serve inference');
    }
  }

  /** A checked claim convicts its guilty party, or is logged as proving nothing. */
  private act(claim: ClaimOutcome): void {
    if (claim.kind === 'guilty') this.control.purge(claim.verdict.guilty, claim.verdict.reason);
    if (claim.kind === 'unproven') this.log(claim.why);
  }

  private greet(conn: Conn): void {
    this.transport.send(conn, { type: 'hello', nonce: this.registrar.nonceFor(conn) });
  }

  /** Check a registration's proofs (the key signed this connection's nonce; the account signed the key), then place the peer. */
  private async onRegister(conn: Conn, msg: ClientMessageOf<'register'>): Promise<void> {
    if (conn.tag || this.checking.has(conn)) return this.transport.reject(conn, `already registered${conn.tag ? ` as ${conn.tag}` : ''}`, 'register');
    this.checking.add(conn);
    try {
      const address = peerAddress(conn.address);
      // `full` after the proofs' await, with nothing between it and placing: concurrent registrations see each other.
      const refused = (await this.registrar.problem(conn, msg, this.control.allPeers(), this.control.live(), address)) ?? this.registrar.full(address, this.control.live());
      if (refused) {
        this.emit('refused', { name: msg.name, reason: refused });
        return this.refuse(conn, refused);
      }
      if (conn.ws.readyState !== conn.ws.OPEN) return;
      this.place(conn, msg);
    } finally {
      this.checking.delete(conn);
    }
  }

  private refuse(conn: Conn, why: string): void {
    this.transport.reject(conn, `cannot take part: ${why}`, 'register');
    conn.ws.close(1008, 'cannot take part');
  }

  private place(conn: Conn, msg: ClientMessageOf<'register'>): void {
    const peerId = `p${++this.seq}-${randomBytes(3).toString('hex')}`;
    const { type: _, ...reg } = msg;
    // What the run sends the newcomer while placing it (its assign) waits for its welcome, and a peer
    // that cannot take part gets its refusal instead of a welcome (so its client's connect() rejects with the reason).
    const held: ServerMessage[] = [];
    this.registering = { peerId, held };
    let placed: ReturnType<RunControl['register']>;
    try {
      placed = this.control.register(peerId, reg, peerAddress(conn.address));
    } finally {
      this.registering = undefined;
    }
    if (!placed.ok) return this.refuse(conn, placed.reason);
    conn.tag = peerId;
    this.conns.set(peerId, conn);
    this.lastSeen.set(peerId, Date.now());
    const iceServers = iceServersFor(this.o.ice, peerId, Date.now() / 1000);
    this.transport.send(conn, { type: 'welcome', peerId, ...(this.o.chain && { chain: this.o.chain }), ...(iceServers.length && { iceServers }) });
    for (const m of held) this.transport.send(conn, m);
    // The run's phase as every peer last heard it: a newcomer would otherwise wait for its next change.
    this.transport.send(conn, { type: 'status', phase: this.control.phase, reason: this.control.reason.slice(0, 1024), step: this.control.step, steps: this.run.steps });
    const c = msg.capability;
    this.log(`registered ${peerId} "${msg.name}" (${c.kind}, ${c.gflops.toFixed(2)} GFLOP/s, ≤${c.maxLayers} layers) on stage ${placed.stage}`);
    this.emit('register', { peerId, name: msg.name, capability: c, account: reg.account as `0x${string}` | undefined, stage: placed.stage });
  }

  /** Signaling is relayed only between peers of the same or adjacent stages (a leaver handing its state over included). */
  private onSignal(conn: Conn, from: string, msg: ClientMessageOf<'signal'>): void {
    const a = this.control.peer(from);
    const b = this.control.peer(msg.to);
    const target = this.conns.get(msg.to);
    // A neighbour that has just left races any peer's signals to it: say so, but it is no fault of the sender's.
    if (!a || !b || !target) return this.transport.send(conn, { type: 'error', message: `cannot relay signal: peer ${msg.to} is not connected`, ref: 'signal' });
    if (Math.abs(a.stage - b.stage) > 1) {
      return this.transport.reject(
        conn,
        `cannot relay signal: ${msg.to} (stage ${b.stage}) is not a neighbour of ${from} (stage ${a.stage}); signal only peers of your stage and the stages next to it`,
        'signal',
      );
    }
    this.transport.send(target, { type: 'signal', from, data: msg.data });
  }

  private async onInfer(conn: Conn, msg: ClientMessageOf<'infer'>): Promise<void> {
    const fail = (m: string) => this.transport.reject(conn, m, `spend ${msg.spendId}`);
    if (!this.serving || !this.run.serve) return fail('this swarm does not serve inference');
    const buyer = {
      part: (p: Omit<ServerMessageOf<'answer-part'>, 'type'>) => this.transport.send(conn, { type: 'answer-part', ...p }),
      answer: (a: Omit<ServerMessageOf<'answer'>, 'type'>) => this.transport.send(conn, { type: 'answer', ...a }),
      fail,
    };
    await this.serving.request(msg, buyer, () => {
      const phase = this.control.phase;
      // While training, stages serve within their share (serve-share.ts), from the newest weights.
      if (phase === 'serving' || phase === 'training') return undefined;
      if (phase === 'finished' || phase === 'stopped') return `the run is ${phase}: this swarm no longer serves inference`;
      return `the swarm cannot serve now: the run is ${phase} (${this.control.reason}); try again once it trains`;
    });
  }

  private onClose(conn: Conn): void {
    const peerId = conn.tag;
    if (!peerId || this.conns.get(peerId) !== conn) return;
    this.conns.delete(peerId);
    this.control.onGone(peerId, 'connection closed');
  }

  /** Liveness, the round watchdog and the final evaluation's deadline. */
  private watch(): void {
    const now = Date.now();
    this.control.flushStatus();
    this.control.recheckStart();
    for (const p of this.control.live()) {
      const silent = now - (this.lastSeen.get(p.peerId) ?? now);
      const limit = p.state === 'active' ? this.heartbeatTimeoutMs : this.setupTimeoutMs;
      if (silent > limit) this.drop(p.peerId, `no message for ${silent} ms (timeout ${limit} ms while ${p.state})`);
      else if (p.state === 'setup' && now - p.assignedAt > this.readyTimeoutMs)
        this.drop(p.peerId, `not ready ${now - p.assignedAt} ms after it was placed (limit ${this.readyTimeoutMs} ms)`);
    }
    this.control.watchRound(this.roundTimeoutMs);
    this.control.auditsTimedOut(this.auditTimeoutMs);
    if (this.control.awaitingFinalEval) {
      this.evalSince ??= now;
      if (now - this.evalSince > FINAL_EVAL_TIMEOUT_MS) {
        this.log(`the final evaluation did not come within ${FINAL_EVAL_TIMEOUT_MS} ms`);
        this.control.finishEvaluation();
      }
    } else this.evalSince = undefined;
  }

  /** A purged peer is told why, and its socket is closed: nothing it sends counts any more. */
  private cutOff(peerId: string, reason: string): void {
    const conn = this.conns.get(peerId);
    this.conns.delete(peerId);
    if (!conn) return;
    this.transport.send(conn, { type: 'stop', reason: `purged from the run: ${reason}`.slice(0, 1024) });
    conn.ws.close(1008, 'purged');
  }

  /** Cut a peer off: its socket closes and the run goes on without it. */
  private drop(peerId: string, reason: string): void {
    const conn = this.conns.get(peerId);
    this.conns.delete(peerId);
    if (conn) this.transport.terminate(conn);
    this.control.onGone(peerId, reason);
  }
}

function positive(name: string, v: number): number {
  if (!(v > 0)) throw new Error(`${name} must be positive, got ${v}`);
  return v;
}
