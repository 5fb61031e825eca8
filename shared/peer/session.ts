// One peer's whole life in the swarm, the same in Node, a browser tab and the desktop app:
// detect the GPU → register → take the stage the coordinator places it on → open data channels to
// its neighbours → load the stage's state → compute the rounds it is routed → average with its
// replicas → serve inference → leave. The host (host.ts) hands in the GPU, the sockets, storage,
// the corpus and the clock; the session reports everything a UI shows as typed events.
//
// The coordinator's messages are handled one at a time, in order, except those that must cut in:
// a discarded round aborts the computation under way, a lost peer stops waiting for it, a stop
// stops everything.
import type { Gpu } from '../../kernels/context.js';
import { decodeText, encodeText } from '../engine/data.js';
import type { GpuReport, Verdict } from '../engine/gpu-detect.js';
import { CoordinatorClient } from '../swarm/coordinator-client.js';
import { Emitter } from '../base/emitter.js';
import { PeerKey } from '../swarm/identity.js';
import { applyViewChange, type ClientMessage, type ClientMessageOf, type PeerInfo, type ServerMessageOf, type SwarmPhase } from '../swarm/protocol.js';
import { FrameTrust } from '../trust/frame-trust.js';
import { runCorpus } from '../run/derive.js';
import type { CharCorpus } from '../engine/data.js';
import { GenerationError, type Hop } from './generate.js';
import type { ChainInfo, PeerHost } from './host.js';
import { NeighbourLinks } from './links.js';
import { restAfter } from './duty.js';
import type { RunnerOptions } from './stage-runner.js';
import { StallError, roundWorkOf } from './stage-runner.js';
import { StageSeat } from './seat.js';
import { StateExchange, type StageSnapshot, isStateMessage } from './state-sync.js';
import { heldStates, keepState, loadHeld } from './state-store.js';
import type { RunConfig } from '../run/config.js';
import { keepProof } from './proofs.js';

export type SessionPhase = 'starting' | 'registering' | 'setting-up' | 'ready' | 'training' | 'idle' | 'serving' | 'leaving' | 'left' | 'stopped' | 'failed';

export interface StepReport {
  step: number;
  /** This peer's mean loss over the microbatches it computed in the step (last stage only). */
  loss?: number;
  microbatches: number;
  tokensPerSec: number;
  busyFraction: number;
  bytesSent: number;
  bytesReceived: number;
  /** Boundary bytes a dense fp32 exchange would have sent beyond what the codec sent. */
  bytesSaved: number;
}

/** What this peer did, for a launcher's report (wire bytes count headers; tokens are per boundary crossing). */
export interface PeerStats {
  stage: number;
  steps: number;
  microbatches: number;
  wallMs: number;
  busyMs: number;
  /** Sum over rounds of RoundResult.spanMs: busyMs / roundSpanMs is the stage's steady-state busy fraction. */
  roundSpanMs: number;
  fwdBytesSent: number;
  bwdBytesSent: number;
  fwdTokens: number;
  bwdTokens: number;
  averagingBytesSent: number;
  stateBytesServed: number;
  rejectedFrames: number;
  layersHeld: number;
  paramsHeld: number;
}

export interface SessionEvents {
  phase: { phase: SessionPhase; why: string };
  gpu: { report: GpuReport; verdict: Verdict };
  registered: { peerId: string; chain?: ChainInfo };
  assigned: { stage: number; run: RunConfig; state: ServerMessageOf<'assign'>['state'] };
  /** Open channels, and the peers of this one's view with itself (`peers`). */
  neighbours: { connected: string[]; peers: PeerInfo[] };
  swarm: { phase: SwarmPhase; reason: string; step: number; steps: number };
  step: StepReport;
  evaluated: { step: number; valLoss: number };
  /** A step the swarm committed, with its training loss (whichever stage this peer trains). */
  committed: { step: number; loss?: number };
  /** Microbatches of a committed step this peer computed (the coordinator credits exactly these). */
  credited: { step: number; microbatches: number };
  settled: { epoch: number; account: string; cumulative: string; key: string };
  served: { requestId: number; tokens: number; ms: number };
  released: { ms: number };
  log: { line: string };
  done: { reason: string };
}

/** Every event a session emits, by name (a host that forwards them all, or checks a forwarded one, lists them from here). */
export const SESSION_EVENT_NAMES = [
  'phase',
  'gpu',
  'registered',
  'assigned',
  'neighbours',
  'swarm',
  'step',
  'committed',
  'evaluated',
  'credited',
  'settled',
  'served',
  'released',
  'log',
  'done',
] as const satisfies readonly (keyof SessionEvents)[];
// Fails to compile when an event is missing from the list above.
const _everyEventListed: Record<Exclude<keyof SessionEvents, (typeof SESSION_EVENT_NAMES)[number]>, never> = {};
void _everyEventListed;

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
  /**
   * Claim this speed instead of what was measured: GFLOP/s at registration, and milliseconds per
   * microbatch in every report of a round. What a hostile build could claim; only the adversarial
   * test peers set it.
   */
  claims?: { gflops: number; msPerMicrobatch: number };
  /** How long to keep trying to register again after the coordinator is lost. Default 10 min. */
  reconnectForMs?: number;
}

const HEARTBEAT_MS = 1000;
/** How long a peer that lost the coordinator keeps trying to register again. */
const RECONNECT_FOR_MS = 10 * 60_000;
/** How long a leaving peer waits for its heir to fetch its state. */
const HANDOFF_WAIT_MS = 60_000;

export class PeerSession extends Emitter<SessionEvents> {
  peerId?: string;
  private client?: CoordinatorClient;
  /** This session's signing key (identity.ts), and what it proves and checks of the frames it exchanges. */
  private key?: PeerKey;
  private readonly trust: FrameTrust;
  private gpu?: Gpu;
  private links?: NeighbourLinks;
  private seat?: StageSeat;
  private states: StateExchange;
  private queue: Promise<void> = Promise.resolve();
  private roundAbort?: AbortController;
  private pending?: { round: number; step: number; microbatches: number; lossSum?: number };
  private committed = 0;
  private members: PeerInfo[] = [];
  private phase_: SessionPhase = 'starting';
  private beat?: ReturnType<typeof setInterval>;
  private finished!: (reason: string) => void;
  private readonly done: Promise<string>;
  private corpus?: { runId: string; corpus: CharCorpus };
  private readonly t0: number;
  private busyMs = 0;
  private roundSpanMs = 0;
  private tokens = 0;
  private lastLoss?: number;
  private lastValLoss?: number;
  private handoffTo?: string;
  private chain?: ChainInfo;
  /** Assign messages received so far (a load that fails while a newer one waits is not fatal). */
  private assigns = 0;
  /** The stage the coordinator placed this peer on (set before its seat is built). */
  private placed?: number;
  /** Peers this one is loading its stage's state from: their channels stay open whatever the membership says. */
  private readonly stateSources = new Set<string>();
  private leaving = false;
  private generating?: { path: string[]; abort: AbortController };
  private evaluating?: { path: string[]; abort: AbortController };
  /** Peers the coordinator declared gone (ids are never reused). */
  private readonly gone = new Set<string>();
  /** Rounds the coordinator discarded (a round message still queued behind other work is skipped). */
  private readonly discarded = new Set<number>();
  readonly curves = { train: [] as [number, number][], val: [] as [number, number][] };
  private microbatches = 0;
  private kept?: PeerStats;
  private duty = 1;
  private capability?: ClientMessageOf<'register'>['capability'];
  private reconnecting = false;
  private joinedChain = false;

  constructor(
    private readonly host: PeerHost,
    private readonly o: SessionOptions,
  ) {
    super();
    this.t0 = host.now();
    this.done = new Promise((resolve) => (this.finished = resolve));
    this.states = new StateExchange({
      meta: () => this.seat && { runId: this.seat.run.runId, stage: this.seat.stage },
      send: (to, b) => this.links?.send(to, b),
      offer: () => this.seat?.snapshot,
      log: (l) => this.say(l),
    });
    this.trust = new FrameTrust({
      self: () => this.peerId!,
      key: () => this.key!,
      members: () => this.members,
      seat: () => this.seat,
      send: (to, b) => this.links?.send(to, b),
      report: (m) => this.send(m),
      timeoutMs: o.timeoutMs ?? 60_000,
      log: (l) => this.say(l),
      tamper: o.tamper,
    });
  }

  /** Train this fraction of the time (the app's GPU-usage limit or a power throttle); 1: flat out. */
  setDuty(duty: number): void {
    this.duty = Math.min(1, Math.max(0.05, duty));
  }

  get phase(): SessionPhase {
    return this.phase_;
  }

  get stage(): number | undefined {
    return this.seat?.stage;
  }

  /** What this peer did so far (kept from its last stage once the stage is given up). */
  stats(): PeerStats | undefined {
    const seat = this.seat;
    if (!seat) return this.kept;
    const w = seat.runner.wire;
    this.kept = {
      stage: seat.stage,
      steps: this.committed,
      microbatches: this.microbatches,
      wallMs: this.host.now() - this.t0,
      busyMs: this.busyMs,
      roundSpanMs: this.roundSpanMs,
      fwdBytesSent: w.fwdSent,
      bwdBytesSent: w.bwdSent,
      fwdTokens: w.fwdTokens,
      bwdTokens: w.bwdTokens,
      averagingBytesSent: seat.averager.bytesSent,
      stateBytesServed: this.states.served.bytes,
      rejectedFrames: seat.mailbox.rejected,
      layersHeld: seat.cfg.nLayer,
      paramsHeld: seat.runtime.layout.count,
    };
    return this.kept;
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
    const { peerId, chain } = await client.connect({ name: this.o.name, capability: this.capability!, ...(held.length && { held }) }, identity);
    this.peerId = peerId;
    this.chain = chain;
    // Heartbeats first: joining on chain waits for blocks, and silence would mark us lost.
    this.beat = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
    this.emit('registered', { peerId, chain });
    this.links = new NeighbourLinks({
      self: peerId,
      rtc: this.host.rtc,
      sendSignal: (to, data) => client.send({ type: 'signal', to, data }),
      onMessage: (from, bytes) => this.onPeerMessage(from, bytes),
      onChange: (connected) => {
        this.send({ type: 'links', connected });
        this.emit('neighbours', { connected, peers: this.known() });
      },
      log: (l) => this.say(l),
      maxMessageBytes: 1 << 30,
    });
    if (chain && !this.joinedChain) {
      this.joinedChain = true;
      await this.joinChain(chain);
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
    this.roundAbort?.abort(new Error(why));
    for (const w of [this.generating, this.evaluating]) w?.abort.abort(new Error(why));
    this.setPhase('registering', `${why}; keeping this peer's state`);
    await this.queue;
    this.links?.close();
    this.links = undefined;
    await this.keepLiveState();
    this.stats();
    this.seat?.destroy();
    this.seat = undefined;
    this.placed = undefined;
    this.members = [];
    const forMs = this.o.reconnectForMs ?? RECONNECT_FOR_MS;
    const deadline = this.host.now() + forMs;
    for (let n = 1; !this.leaving; n++) {
      const wait = Math.min(30, 2 ** (n - 1)) * 1000;
      if (this.host.now() + wait > deadline) return this.end('stopped', `${why}; no coordinator took this peer back within ${forMs / 1000} s`);
      this.setPhase('registering', `${why}; reconnecting in ${wait / 1000} s (attempt ${n})`);
      await new Promise((r) => setTimeout(r, wait));
      if (this.leaving) return;
      try {
        await this.register();
        this.reconnecting = false;
        this.say(`reconnected to ${this.o.coordinator} as ${this.peerId}`);
        return;
      } catch (e) {
        const message = (e as Error).message;
        if (message.startsWith('coordinator refused registration')) return this.end('stopped', message);
        this.say(`reconnecting (attempt ${n}): ${message}`);
      }
    }
  }

  /** Keep the stage's state at the last committed step on this machine, to offer when registering again. */
  private async keepLiveState(): Promise<void> {
    const seat = this.seat;
    if (!seat) return;
    if (this.pending) seat.runner.discard();
    this.pending = undefined;
    if (this.committed === 0) return;
    seat.snapshot = await seat.capture();
    await keepState(this.host.storage, seat.snapshot, seat.run.runId);
    this.say(`kept stage ${seat.stage}'s state at step ${seat.snapshot.step} to offer the coordinator`);
  }

  /**
   * Joining on chain is what makes this peer's work claimable, and a run can only be joined while
   * it trains. The first attempt is made before the peer says it is ready (so the run has a provider
   * when it starts on chain); a failed one (a busy RPC) is retried in the background, with backoff,
   * until it succeeds or the session ends.
   */
  private async joinChain(chain: ChainInfo): Promise<void> {
    const w = this.host.wallet;
    if (!w) return this.say(`the run settles on chain ${chain.chainId}, but this peer has no wallet: its work will not earn ownership`);
    const attempt = async (n: number): Promise<void> => {
      try {
        await w.joinRun(chain);
        this.say(`joined run ${chain.runId} on chain ${chain.chainId} as ${w.account}`);
      } catch (e) {
        const wait = Math.min(30, 2 ** (n - 1));
        this.say(
          `could not join run ${chain.runId} on chain (attempt ${n}): ${(e as Error).message}; trying again in ${wait} s (until it joins, this peer's work is not claimable)`,
        );
        setTimeout(() => !this.leaving && void attempt(n + 1), wait * 1000);
      }
    };
    await attempt(1);
  }

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
      this.members = m.peers;
      const seq = ++this.assigns;
      inOrder((x: typeof m) => this.onAssign(x, seq))(m);
    });
    const onRound = inOrder((m: ServerMessageOf<'round'>) => this.onRound(m));
    c.on('round', (m) => {
      // On arrival, not on its turn: it opens the window of rounds whose frames the mailbox holds.
      this.seat?.mailbox.setRound(m.round, m.step);
      onRound(m);
    });
    c.on('commit', (m) => {
      // A discarded round must stop now, not after the computation it discards; and if it has not
      // started yet (this peer was busy), it must not start at all.
      // The round is decided: an audit of it still waiting for its bundle is moot.
      this.trust.decided(m.round);
      if (!m.apply) {
        this.discarded.add(m.round);
        if (this.pending?.round === m.round) this.roundAbort?.abort(new Error(`round ${m.round} discarded`));
      }
      inOrder((x: typeof m) => this.onCommit(x))(m);
    });
    c.on(
      'generate',
      inOrder((m) => this.onGenerate(m)),
    );
    // Not queued: this peer may be witnessing the peer that witnesses it (each waits for the other's bundle).
    c.on('audit', (m) => void this.trust.audited(m).catch((e: Error) => this.say(`could not send the bundle of round ${m.round}: ${e.message}`)));
    c.on(
      'verify',
      inOrder((m) => this.trust.witness(m)),
    );
    c.on('peers', (m) => this.onPeers(applyViewChange(this.members, m)));
    c.on('signal', (m) => this.links?.signal(m.from, m.data));
    c.on('peer-lost', (m) => {
      this.gone.add(m.peerId);
      this.seat?.averager.forget(m.peerId);
      this.states.forget(m.peerId);
      // A request or an evaluation routed through a gone peer will never finish: end it now, so
      // what comes next (a retry, the next round) is not queued behind it.
      for (const w of [this.generating, this.evaluating]) if (w?.path.includes(m.peerId)) w.abort.abort(new Error(`${m.peerId} on the path is gone`));
    });
    c.on('status', ({ type: _, ...s }) => this.emit('swarm', s));
    c.on('handoff', (m) => {
      this.handoffTo = m.to;
      this.connectNeighbours();
    });
    c.on('settled', (m) => void this.keepProof(m));
    c.on('error', (m) => this.say(`coordinator: ${m.message}${m.ref ? ` (${m.ref})` : ''}`));
    c.on('stop', (m) => this.end('stopped', m.reason));
    c.on('close', (m) => {
      if (c === this.client && !this.leaving) void this.reconnect(`the coordinator connection closed (code ${m.code}${m.reason ? `: ${m.reason}` : ''})`);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Stage

  private async onAssign(m: ServerMessageOf<'assign'>, seq: number): Promise<void> {
    this.emit('assigned', { stage: m.stage, run: m.run, state: m.state });
    this.setPhase('setting-up', `placed on stage ${m.stage} of ${m.run.stages}; loading the stage`);
    if (this.seat && (this.seat.stage !== m.stage || this.seat.run.runId !== m.run.runId)) {
      this.stats();
      this.seat.destroy();
      this.seat = undefined;
    }
    this.placed = m.stage;
    this.stateSources.clear();
    if (m.state.from === 'replica') for (const p of m.state.peers) this.stateSources.add(p);
    this.connectNeighbours();
    this.seat ??= await StageSeat.create({
      gpu: this.gpu!,
      run: m.run,
      stage: m.stage,
      corpus: await this.corpusOf(m.run),
      self: this.peerId!,
      send: (to, b) => void this.trust.send(to, b),
      now: () => this.host.now(),
      log: (l) => this.say(l),
      timeoutMs: this.o.timeoutMs ?? 60_000,
      extraWarmup: this.o.extraWarmup ?? 0,
      autotune: this.o.autotune ?? false,
      onBoundary: this.o.onBoundary,
      slowdown: this.o.slowdown,
      onHostile: (from, what) => this.trust.refused(from, what),
      onSuspect: (from, what) => this.trust.suspect(from, what),
      progress: (what) => this.setPhase('setting-up', what),
    });
    // A newer assign is queued (a handoff naming where the stage's newest state is): it loads instead.
    if (this.assigns !== seq) return;
    let step: number;
    try {
      step = await this.loadState(m.state);
    } catch (e) {
      // Superseded while loading (its source left with a handoff): the newer assign decides.
      if (this.assigns !== seq) return this.say(`${(e as Error).message}; following the newer assignment`);
      throw e;
    }
    this.stateSources.clear();
    this.committed = step;
    this.setPhase('ready', `stage ${m.stage} loaded at step ${step}; waiting to be routed work`);
    this.send({ type: 'ready', step });
  }

  /** Load the stage's state from where the coordinator says; returns its step. */
  private async loadState(source: ServerMessageOf<'assign'>['state']): Promise<number> {
    const seat = this.seat!;
    if (source.from === 'seed') {
      seat.snapshot = await seat.capture();
      return 0;
    }
    if (source.from === 'own') {
      const c = await loadHeld(this.host.storage, { runId: seat.run.runId, stage: seat.stage }, source.step, source.hash);
      seat.runtime.loadState(c);
      seat.snapshot = await seat.capture();
      return c.step;
    }
    // From whichever replica's channel opens first; a replica that fails or is gone is skipped.
    const errors: string[] = [];
    const left = new Set(source.peers);
    while (left.size > 0) {
      const from = await this.firstChannel(left);
      if (!from) break;
      left.delete(from);
      try {
        this.setPhase('setting-up', `downloading stage ${seat.stage}'s state from ${from}`);
        const c = await this.states.fetch(from, seat.stage, this.o.timeoutMs ?? 60_000);
        seat.runtime.loadState(c);
        seat.snapshot = await seat.capture();
        await keepState(this.host.storage, seat.snapshot, seat.run.runId);
        this.say(`loaded stage ${seat.stage}'s state at step ${c.step} from ${from}`);
        return c.step;
      } catch (e) {
        errors.push(`${from}: ${(e as Error).message}`);
      }
    }
    throw new Error(
      `could not load stage ${seat.stage}'s state from ${source.peers.join(', ')}: ${errors.join('; ') || `no data channel opened within ${this.o.timeoutMs ?? 60_000} ms`}`,
    );
  }

  /** The first of `peers` with an open data channel (not one known to be gone), or undefined after the timeout. */
  private async firstChannel(peers: Set<string>, timeoutMs = this.o.timeoutMs ?? 60_000): Promise<string | undefined> {
    const deadline = this.host.now() + timeoutMs;
    for (;;) {
      for (const p of peers) if (this.gone.has(p)) peers.delete(p);
      const open = this.links!.connected().find((p) => peers.has(p));
      if (open || peers.size === 0 || this.host.now() > deadline) return open;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async corpusOf(run: RunConfig): Promise<CharCorpus> {
    if (this.corpus?.runId !== run.runId) this.corpus = { runId: run.runId, corpus: await runCorpus(run, await this.host.loadCorpus(run)) };
    return this.corpus.corpus;
  }

  /** Peers of the same stage and of the stages next to it. */
  private neighbourIds(stage: number): string[] {
    return this.members.filter((p) => p.peerId !== this.peerId && Math.abs(p.stage - stage) <= 1).map((p) => p.peerId);
  }

  private onPeers(peers: PeerInfo[]): void {
    this.members = peers;
    if (this.placed === undefined || !this.links) return;
    this.connectNeighbours();
    this.emit('neighbours', { connected: this.links.connected(), peers: this.known() });
  }

  /** The peers it was told of and itself: what a dashboard draws the stages from. */
  private known(): PeerInfo[] {
    const self = this.placed !== undefined && this.peerId && this.key ? [{ peerId: this.peerId, stage: this.placed, name: this.o.name, key: this.key.publicHex }] : [];
    return [...self, ...this.members];
  }

  /**
   * Channels to the peers of our stage and the stages next to it, and to the replicas we load state
   * from; once leaving, only to the heir of our state (the others have dropped us, and reconnecting
   * to them would only start channels that the end of the session cuts).
   */
  private connectNeighbours(): void {
    if (this.placed === undefined || !this.links) return;
    const heir = this.handoffTo ? [this.handoffTo] : [];
    this.links.set(this.leaving ? heir : [...this.neighbourIds(this.placed), ...heir, ...this.stateSources]);
  }

  private onPeerMessage(from: string, bytes: Uint8Array): void {
    if (isStateMessage(bytes)) return void this.states.onMessage(from, bytes);
    void this.trust.receive(from, bytes);
  }

  // -------------------------------------------------------------------------------------------
  // Rounds

  private async onRound(m: ServerMessageOf<'round'>): Promise<void> {
    const seat = this.seat;
    if (!seat || this.leaving || this.discarded.delete(m.round)) return;
    const work = roundWorkOf(m.round, m.step, m.routes, this.peerId!);
    this.setPhase('training', `step ${m.step}: ${work.items.length} microbatch(es) routed through this peer`);
    this.trust.begin(work);
    const abort = new AbortController();
    this.roundAbort = abort;
    this.pending = { round: m.round, step: m.step, microbatches: work.items.length };
    try {
      const r = await seat.runner.runRound(work, abort.signal);
      this.pending.lossSum = r.lossSum;
      this.busyMs += r.busyMs;
      this.roundSpanMs += r.spanMs;
      this.send({
        type: 'round-done',
        round: m.round,
        microbatches: r.microbatches,
        busyMs: this.o.claims ? this.o.claims.msPerMicrobatch * r.microbatches : r.busyMs,
        inputs: this.trust.inputs(work),
        ...(r.lossSum !== undefined && { lossSum: r.lossSum }),
      });
      // A GPU-usage limit: rest before taking the next message, so this GPU works `duty` of the time.
      const rest = restAfter(r.busyMs, this.duty);
      if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
    } catch (e) {
      if (abort.signal.aborted) return;
      if (e instanceof StallError) return void this.send({ type: 'stalled', round: m.round, from: e.from, reason: e.message.slice(0, 1000) });
      throw e;
    } finally {
      if (this.roundAbort === abort) this.roundAbort = undefined;
    }
  }

  private async onCommit(m: ServerMessageOf<'commit'>): Promise<void> {
    const seat = this.seat;
    if (!seat) return;
    const mine = this.pending?.round === m.round ? this.pending : undefined;
    this.pending = undefined;
    this.discarded.delete(m.round);
    if (mine && m.apply) await seat.runner.apply(m.step);
    else if (mine) seat.runner.discard();
    seat.mailbox.forgetRoundsBefore(m.round + 1);
    if (!m.apply) return;
    this.committed = m.step;
    this.emit('committed', { step: m.step, ...(m.loss !== undefined && { loss: m.loss }) });
    if (mine) this.reportStep(m.step, mine);
    if (m.average) await this.average(m.step, m.average);
    if (m.eval) await this.evaluate(m.round, m.step, m.eval);
  }

  private reportStep(step: number, mine: { microbatches: number; lossSum?: number }): void {
    const run = this.seat!.run;
    const tokensPerMb = run.model.batch * run.model.seq;
    this.tokens += mine.microbatches * tokensPerMb;
    this.microbatches += mine.microbatches;
    const secs = (this.host.now() - this.t0) / 1000;
    if (mine.lossSum !== undefined && mine.microbatches > 0) {
      this.lastLoss = mine.lossSum / mine.microbatches;
      this.curves.train.push([step, this.lastLoss]);
    }
    const bytes = this.links!.bytes;
    const w = this.seat!.runner.wire;
    const dense = (w.fwdTokens + w.bwdTokens) * run.model.dModel * 4;
    this.emit('credited', { step, microbatches: mine.microbatches });
    this.emit('step', {
      step,
      loss: this.lastLoss,
      microbatches: mine.microbatches,
      tokensPerSec: this.tokens / Math.max(secs, 1e-3),
      busyFraction: Math.min(1, this.busyMs / Math.max(1, this.host.now() - this.t0)),
      bytesSent: bytes.sent,
      bytesReceived: bytes.received,
      bytesSaved: Math.max(0, dense - w.fwdSent - w.bwdSent),
    });
    this.heartbeat();
  }

  private async average(step: number, a: NonNullable<ServerMessageOf<'commit'>['average']>): Promise<void> {
    const seat = this.seat!;
    const members = a.members[seat.stage] ?? [];
    const listeners = a.listeners[seat.stage] ?? [];
    if (!members.includes(this.peerId!) && !listeners.includes(this.peerId!)) return;
    const n = await seat.averager.average(step, members, listeners);
    if (n === 0) return this.say(`averaging at step ${step}: no replica's weights arrived; keeping this peer's own state`);
    if (!members.includes(this.peerId!)) this.committed = step;
    // Every peer keeps its stage's state at each averaging point: the run can resume from it if
    // this stage's last peer is lost.
    seat.snapshot = await seat.capture();
    await keepState(this.host.storage, seat.snapshot, seat.run.runId);
    this.send({ type: 'checkpoint', step, hash: seat.snapshot.paramsHash });
  }

  private async evaluate(round: number, step: number, e: NonNullable<ServerMessageOf<'commit'>['eval']>): Promise<void> {
    const at = e.path.indexOf(this.peerId!);
    if (at < 0) return;
    const abort = new AbortController();
    this.evaluating = { path: e.path, abort };
    try {
      // Tagged as the round after the commit: its frames must outlive the committed round's.
      const v = await this.seat!.runner.evaluate(round + 1, e.batches, { prev: e.path[at - 1], next: e.path[at + 1] }, abort.signal);
      if (v === undefined) return;
      this.lastValLoss = v;
      this.curves.val.push([step, v]);
      this.emit('evaluated', { step, valLoss: v });
      this.send({ type: 'evaluated', step, valLoss: v });
    } catch (err) {
      this.say(`evaluation after step ${step} failed: ${(err as Error).message}`);
    } finally {
      if (this.evaluating?.abort === abort) this.evaluating = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Serving

  private async onGenerate(m: ServerMessageOf<'generate'>): Promise<void> {
    const seat = this.seat;
    const at = m.path.indexOf(this.peerId!);
    if (!seat || at < 0) return;
    this.setPhase('serving', `serving request ${m.requestId}`);
    const hop = (id: string | undefined): Hop | undefined => (id === undefined ? undefined : { send: (b) => void this.trust.send(id, b), inbox: seat.mailbox.from(id).gen });
    const t0 = this.host.now();
    const abort = new AbortController();
    this.generating = { path: m.path, abort };
    const opts = { signal: abort.signal };
    try {
      let tokens: Uint32Array;
      if (at === 0) {
        let prompt: Uint32Array;
        try {
          prompt = encodeText(this.corpus!.corpus, m.prompt);
        } catch (e) {
          return void this.send({ type: 'generated', requestId: m.requestId, error: (e as Error).message.slice(0, 1000), refused: true });
        }
        tokens = await seat.generation.generate(m.requestId, prompt, m.maxTokens, { temperature: m.temperature, seed: m.seed >>> 0 }, hop(m.path[1]), opts);
        this.send({ type: 'generated', requestId: m.requestId, text: decodeText(this.corpus!.corpus, tokens) });
      } else {
        tokens = await seat.generation.serve(m.requestId, hop(m.path[at - 1])!, hop(m.path[at + 1]), { ...opts, maxTokens: m.maxTokens });
      }
      this.emit('served', { requestId: m.requestId, tokens: tokens.length, ms: this.host.now() - t0 });
    } catch (e) {
      const message = (e as Error).message.slice(0, 1000);
      this.say(`request ${m.requestId} failed: ${message}`);
      const refused = e instanceof GenerationError && e.reason === 2;
      if (at === 0) this.send({ type: 'generated', requestId: m.requestId, error: message, ...(refused && { refused }) });
    } finally {
      if (this.generating?.abort === abort) this.generating = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Leaving

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
    this.roundAbort?.abort(new Error(`leaving: ${reason}`));
    const seat = this.seat;
    let kept: StageSnapshot | undefined;
    let servedBefore = this.states.served.count;
    // The computation under way ends at its next GPU operation; wait for that, not for the round.
    await Promise.race([this.queue, new Promise((r) => setTimeout(r, 1500))]);
    if (seat) {
      this.pending = undefined;
      seat.runner.discard();
      kept = await seat.capture();
      seat.snapshot = kept;
      servedBefore = this.states.served.count;
      this.stats();
      seat.destroy();
    }
    const releasedMs = this.host.now() - t0;
    this.emit('released', { ms: releasedMs });
    if (kept && seat) await keepState(this.host.storage, kept, seat.run.runId);
    this.send({ type: 'leave', reason: reason.slice(0, 1000), ...(kept && this.committed > 0 && { kept: { step: kept.step, hash: kept.paramsHash } }) });
    await this.handOff(servedBefore);
    this.end('left', reason);
    return { releasedMs };
  }

  /**
   * If the coordinator names an heir (shortly after our leave), stay until it fetched our state: a
   * fetch served after `servedBefore` (counted from when the kept state was captured; the heir
   * may have fetched it before the coordinator named it).
   */
  private async handOff(servedBefore: number): Promise<void> {
    const deadline = this.host.now() + 1500;
    while (!this.handoffTo && this.host.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (!this.handoffTo) return;
    const until = this.host.now() + HANDOFF_WAIT_MS;
    this.say(`handing the stage's state to ${this.handoffTo}`);
    while (this.states.served.count === servedBefore && this.host.now() < until) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 500)); // let the last chunks drain from the channel
  }

  // -------------------------------------------------------------------------------------------

  private async keepProof(m: ServerMessageOf<'settled'>): Promise<void> {
    if (!this.chain) return;
    const { type: _, ...epoch } = m;
    const key = await keepProof(this.host.storage, this.chain, epoch, (l) => this.say(l));
    this.emit('settled', { epoch: m.epoch, account: m.account, cumulative: m.cumulative, key });
  }

  private heartbeat(): void {
    const bytes = this.links?.bytes ?? { sent: 0, received: 0 };
    const secs = (this.host.now() - this.t0) / 1000;
    this.send({
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

  private send(msg: ClientMessage): void {
    // While the coordinator is lost there is nobody to tell; a registration starts afresh.
    if (!this.client?.connected) return;
    try {
      this.client?.send(msg);
    } catch (e) {
      this.say(`BUG: ${(e as Error).message}`);
    }
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
    this.roundAbort?.abort(new Error(reason));
    clearInterval(this.beat);
    this.links?.close();
    this.stats();
    if (phase !== 'left') this.seat?.destroy();
    this.seat = undefined;
    this.leaving = true;
    this.client?.close();
    this.phase_ = phase;
    this.emit('phase', { phase, why: reason });
    this.emit('done', { reason });
    this.finished(reason);
  }
}
