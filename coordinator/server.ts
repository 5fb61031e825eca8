// The coordinator (ARCHITECTURE §5): registers peers, assigns pipeline stages once the swarm is
// full, relays WebRTC signaling between neighbours, starts the run when every data channel is up,
// and watches heartbeats. It carries control messages only — JSON text frames under
// MAX_MESSAGE_BYTES. Weights and tensors travel peer-to-peer and never pass through here, so a
// binary frame is a client bug: it is answered with an error and counted, never processed.
//
// Every frame in is validated, every frame out is validated too; a bad frame gets an `error`
// reply and never takes the server down.
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { keccak256, toHex } from 'viem';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { type Assignment, areNeighbours, assignStages } from '../shared/swarm/assignment.js';
import {
  type Capability,
  type ClientMessageOf,
  type RunConfig,
  type ServerMessage,
  type ServerMessageOf,
  MAX_MESSAGE_BYTES,
  RunConfigSchema,
  encodeServerMessage,
  formatIssues,
  parseClientMessage,
} from '../shared/swarm/protocol.js';

export interface CoordinatorOptions {
  run: RunConfig;
  /** Peers to wait for before assigning stages; a multiple of run.stages. */
  workers: number;
  /** A registered peer silent for longer than this is lost. Default 15 s. */
  heartbeatTimeoutMs?: number;
  /** Bad frames one socket may send before it is closed. Default 20. */
  maxBadMessages?: number;
  log?: (line: string) => void;
  /** The chain the run settles on, announced to peers in `welcome` so they can join it there. */
  chain?: ServerMessageOf<'welcome'>['chain'];
  /** Serving inference after training (with `run.serve`): how a buyer's spend is checked and receipted. */
  inference?: InferenceDesk;
  /** Longest a generation may take before the buyer gets an error. Default 120 s. */
  generateTimeoutMs?: number;
}

/** The chain side of serving a query; the coordinator only routes it through the swarm. */
export interface InferenceDesk {
  /** Why this spend cannot be served with this prompt (unknown, wrong prompt, already served), or undefined. */
  check(spendId: string, prompt: string): Promise<string | undefined>;
  /** Record the answer's hash as the spend's receipt. */
  served(spendId: string, answerHash: `0x${string}`): Promise<void>;
  /** Sampling temperature for answers (0 = greedy). */
  temperature: number;
}

/**
 * registering → assigned (all workers in) → running (all ready) → finished | stopped, or with
 * `run.serve` → serving (trained, answering queries) → finished by stopServing(); closed by close().
 */
export type Phase = 'registering' | 'assigned' | 'running' | 'serving' | 'finished' | 'stopped' | 'closed';
export type PeerStatus = 'registered' | 'assigned' | 'ready' | 'done' | 'lost';

type Heartbeat = Omit<ClientMessageOf<'heartbeat'>, 'type'>;
export type DonePayload = Omit<ClientMessageOf<'done'>, 'type'>;

export interface PeerProgress extends Partial<Omit<Heartbeat, 'step' | 'bytesSent' | 'bytesReceived'>> {
  peerId: string;
  name: string;
  status: PeerStatus;
  stage?: number;
  replica?: number;
  step: number;
  bytesSent: number;
  bytesReceived: number;
  /** Milliseconds since the peer's last valid message. */
  silentMs: number;
  lostReason?: string;
}

export interface Progress {
  phase: Phase;
  /** The slowest live peer's step: the swarm is only as far as its last stage to finish a step. */
  step: number;
  steps: number;
  /** Mean of the latest losses reported (only last-stage peers compute the loss). */
  loss?: number;
  valLoss?: number;
  /** Tokens per second entering the pipeline: the sum over stage-0 peers. */
  tokensPerSec?: number;
  peers: PeerProgress[];
}

export interface PeerDone extends DonePayload {
  peerId: string;
  name: string;
  stage: number;
  replica: number;
}

export interface CoordinatorStats {
  messagesIn: number;
  messagesOut: number;
  /** Frames answered with an error (malformed, oversized, binary, or not allowed right now). */
  badMessages: number;
  binaryFrames: number;
  binaryBytesReceived: number;
  connections: number;
  peers: { registered: number; assigned: number; ready: number; done: number; lost: number };
}

export interface CoordinatorEvents {
  register: { peerId: string; name: string; capability: Capability; account?: `0x${string}` };
  assign: Assignment[];
  start: Record<string, never>;
  heartbeat: { peerId: string } & Heartbeat;
  'peer-lost': { peerId: string; reason: string };
  stop: { reason: string };
  done: PeerDone[];
}

interface Conn {
  ws: WebSocket;
  peer?: Peer;
  bad: number;
}

interface Peer {
  peerId: string;
  name: string;
  capability: Capability;
  account?: `0x${string}`;
  conn: Conn;
  assignment?: Assignment;
  ready: boolean;
  done?: DonePayload;
  lost?: string;
  lastSeen: number;
  hb?: Heartbeat;
}

/** ws closes a connection outright above this; between MAX_MESSAGE_BYTES and here we answer with an error instead. */
const HARD_PAYLOAD_BYTES = 4 * MAX_MESSAGE_BYTES;
const DEFAULT_HEARTBEAT_TIMEOUT_MS = 15_000;

export class Coordinator {
  readonly run: RunConfig;
  readonly workers: number;
  readonly heartbeatTimeoutMs: number;
  /** Resolves with every peer's `done` payload once all assigned peers sent one; rejects if the run stops or the server closes first. */
  readonly finished: Promise<PeerDone[]>;

  /** Where peers and buyers connect, once listening. */
  url?: string;
  private readonly maxBad: number;
  private readonly log: (line: string) => void;
  private wss?: WebSocketServer;
  private timer?: ReturnType<typeof setInterval>;
  private phase: Phase = 'registering';
  private readonly conns = new Set<Conn>();
  /** Registered peers in registration order; peers lost before assignment are removed. */
  private readonly peers = new Map<string, Peer>();
  private assignments: Assignment[] = [];
  private seq = 0;
  private readonly counters = { messagesIn: 0, messagesOut: 0, badMessages: 0, binaryFrames: 0, binaryBytesReceived: 0 };
  private readonly listeners = new Map<keyof CoordinatorEvents, Set<(payload: never) => void>>();
  private settle!: { resolve: (r: PeerDone[]) => void; reject: (e: Error) => void };
  private settled = false;
  private readonly chain?: ServerMessageOf<'welcome'>['chain'];
  private readonly inference?: InferenceDesk;
  private readonly generateTimeoutMs: number;
  /** Queries are served one at a time, in arrival order: the lane holds one generation at once. */
  private queue: Promise<void> = Promise.resolve();
  private readonly queued = new Set<string>();
  private requestSeq = 0;
  private readonly generating = new Map<number, (r: ClientMessageOf<'generated'>) => void>();

  constructor(opts: CoordinatorOptions) {
    const run = RunConfigSchema.safeParse(opts.run);
    if (!run.success) throw new Error(`invalid run config: ${formatIssues('run', run.error)}`);
    this.run = run.data;
    if (!Number.isInteger(opts.workers) || opts.workers < 1 || opts.workers % this.run.stages !== 0) {
      throw new Error(`workers (${opts.workers}) must be a positive multiple of stages (${this.run.stages})`);
    }
    this.workers = opts.workers;
    this.heartbeatTimeoutMs = opts.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    if (!(this.heartbeatTimeoutMs > 0)) throw new Error(`heartbeatTimeoutMs must be positive, got ${this.heartbeatTimeoutMs}`);
    this.maxBad = opts.maxBadMessages ?? 20;
    this.log = opts.log ?? (() => {});
    this.chain = opts.chain;
    this.inference = opts.inference;
    this.generateTimeoutMs = opts.generateTimeoutMs ?? 120_000;
    if (this.run.serve && !this.inference) throw new Error('run.serve needs an inference desk to check spends');
    this.finished = new Promise<PeerDone[]>((resolve, reject) => (this.settle = { resolve, reject }));
    // A stopped run rejects `finished`; without a listener that would be an unhandled rejection
    // that kills the process. Awaiting callers still see the rejection.
    this.finished.catch(() => {});
  }

  /** Start serving; resolves with the bound port (pass 0 for an ephemeral one). */
  async listen(port: number, host = '127.0.0.1'): Promise<number> {
    if (this.wss) throw new Error('coordinator is already listening');
    const wss = new WebSocketServer({ port, host, maxPayload: HARD_PAYLOAD_BYTES });
    this.wss = wss;
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    wss.on('error', (e) => this.log(`server error: ${e.message}`));
    wss.on('connection', (ws) => this.onConnection(ws));
    const tick = Math.max(10, Math.min(1000, this.heartbeatTimeoutMs / 4));
    this.timer = setInterval(() => this.checkHeartbeats(), tick);
    const actual = (wss.address() as AddressInfo).port;
    this.url = `ws://${host}:${actual}`;
    this.log(`listening on ws://${host}:${actual}, waiting for ${this.workers} workers (${this.run.stages} stages)`);
    return actual;
  }

  /** Close every connection and the server. A run not finished by then rejects `finished`. */
  async close(): Promise<void> {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    clearInterval(this.timer);
    this.settleWith(new Error('coordinator closed before the run finished'));
    const closing = [...this.conns].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.ws.readyState === WebSocket.CLOSED) return resolve();
          c.ws.once('close', () => resolve());
          c.ws.close(1001, 'coordinator shutting down');
          // A peer that does not answer the close handshake must not hold the shutdown up.
          setTimeout(() => {
            c.ws.terminate();
            resolve();
          }, 1000).unref();
        }),
    );
    await Promise.all(closing);
    const wss = this.wss;
    if (wss) await new Promise<void>((resolve) => wss.close(() => resolve()));
    this.log('closed');
  }

  on<K extends keyof CoordinatorEvents>(event: K, cb: (payload: CoordinatorEvents[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const fn = cb as (payload: never) => void;
    set.add(fn);
    return () => set.delete(fn);
  }

  get stats(): CoordinatorStats {
    const all = [...this.peers.values()];
    return {
      ...this.counters,
      connections: this.conns.size,
      peers: {
        registered: all.length,
        assigned: all.filter((p) => p.assignment).length,
        ready: all.filter((p) => p.ready).length,
        done: all.filter((p) => p.done).length,
        lost: all.filter((p) => p.lost).length,
      },
    };
  }

  get currentPhase(): Phase {
    return this.phase;
  }

  progress(): Progress {
    const now = Date.now();
    const peers = [...this.peers.values()].map((p): PeerProgress => ({
      ...p.hb,
      peerId: p.peerId,
      name: p.name,
      status: statusOf(p),
      stage: p.assignment?.stage,
      replica: p.assignment?.replica,
      step: p.hb?.step ?? 0,
      bytesSent: p.hb?.bytesSent ?? 0,
      bytesReceived: p.hb?.bytesReceived ?? 0,
      silentMs: now - p.lastSeen,
      lostReason: p.lost,
    }));
    peers.sort((a, b) => (a.stage ?? Infinity) - (b.stage ?? Infinity) || (a.replica ?? 0) - (b.replica ?? 0));
    const live = peers.filter((p) => p.status !== 'lost' && p.stage !== undefined);
    const mean = (xs: (number | undefined)[]): number | undefined => {
      const v = xs.filter((x): x is number => x !== undefined);
      return v.length ? v.reduce((a, b) => a + b, 0) / v.length : undefined;
    };
    const feeders = live.filter((p) => p.stage === 0 && p.tokensPerSec !== undefined);
    return {
      phase: this.phase,
      step: live.length ? Math.min(...live.map((p) => p.step)) : 0,
      steps: this.run.steps,
      loss: mean(live.map((p) => p.loss)),
      valLoss: mean(live.map((p) => p.valLoss)),
      tokensPerSec: feeders.length ? feeders.reduce((a, p) => a + (p.tokensPerSec ?? 0), 0) : undefined,
      peers,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Frames

  private onConnection(ws: WebSocket): void {
    const conn: Conn = { ws, bad: 0 };
    this.conns.add(conn);
    ws.on('message', (data, isBinary) => this.onFrame(conn, data, isBinary));
    // ws reports protocol violations (e.g. a frame above maxPayload) here, then closes the socket.
    ws.on('error', (e) => this.log(`socket error${conn.peer ? ` from ${conn.peer.peerId}` : ''}: ${e.message}`));
    ws.on('close', () => this.onClose(conn));
  }

  private onFrame(conn: Conn, data: RawData, isBinary: boolean): void {
    this.counters.messagesIn++;
    const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data instanceof ArrayBuffer ? data.byteLength : data.length;
    if (isBinary) {
      this.counters.binaryFrames++;
      this.counters.binaryBytesReceived += bytes;
      return this.reject(conn, `binary frames are not accepted (got ${bytes} bytes): the coordinator carries JSON control messages only; tensors go peer-to-peer`);
    }
    // Check before decoding so an oversized frame costs no string allocation.
    if (bytes > MAX_MESSAGE_BYTES) return this.reject(conn, `message is ${bytes} bytes, above the ${MAX_MESSAGE_BYTES}-byte limit`);
    const text = (Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)).toString('utf8');
    const parsed = parseClientMessage(text);
    if (!parsed.ok) return this.reject(conn, parsed.error);
    const msg = parsed.msg;
    if (msg.type === 'register') return this.onRegister(conn, msg);
    // Buyers do not register: they are not peers, only customers of the swarm.
    if (msg.type === 'infer') return void this.onInfer(conn, msg);
    const peer = conn.peer;
    if (!peer) return this.reject(conn, `send register before ${msg.type}`, msg.type);
    peer.lastSeen = Date.now();
    switch (msg.type) {
      case 'signal':
        return this.onSignal(peer, msg);
      case 'ready':
        return this.onReady(peer);
      case 'heartbeat': {
        const { type: _, ...hb } = msg;
        peer.hb = hb;
        return this.emit('heartbeat', { peerId: peer.peerId, ...hb });
      }
      case 'done':
        return this.onDone(peer, msg);
      case 'generated':
        return this.onGenerated(peer, msg);
    }
  }

  /** Answer a bad frame with an error; a socket that keeps sending them is closed. */
  private reject(conn: Conn, message: string, ref?: string): void {
    this.counters.badMessages++;
    conn.bad++;
    this.log(`rejected from ${conn.peer?.peerId ?? 'unregistered socket'}: ${message.slice(0, 300)}`);
    this.sendTo(conn, { type: 'error', message: message.slice(0, 1024), ...(ref ? { ref } : {}) });
    if (conn.bad >= this.maxBad) {
      this.sendTo(conn, { type: 'error', message: `closing the connection after ${conn.bad} bad messages` });
      conn.ws.close(1008, 'too many bad messages');
    }
  }

  private onRegister(conn: Conn, msg: ClientMessageOf<'register'>): void {
    if (conn.peer) return this.reject(conn, `already registered as ${conn.peer.peerId}`, 'register');
    if (this.phase !== 'registering' || this.peers.size >= this.workers) {
      this.reject(conn, `the swarm is full: all ${this.workers} workers are registered (run ${this.phase})`, 'register');
      conn.ws.close(1008, 'swarm full');
      return;
    }
    const peerId = `p${++this.seq}-${randomBytes(3).toString('hex')}`;
    const peer: Peer = { peerId, name: msg.name, capability: msg.capability, account: msg.account as `0x${string}` | undefined, conn, ready: false, lastSeen: Date.now() };
    conn.peer = peer;
    this.peers.set(peerId, peer);
    this.sendTo(conn, { type: 'welcome', peerId, ...(this.chain && { chain: this.chain }) });
    const c = msg.capability;
    this.log(`registered ${peerId} "${msg.name}" (${c.kind}, ${c.gflops} GFLOP/s, ≤${c.maxLayers} layers) [${this.peers.size}/${this.workers}]`);
    this.emit('register', { peerId, name: msg.name, capability: msg.capability, account: peer.account });
    if (this.peers.size === this.workers) this.assign();
  }

  private assign(): void {
    const peers = [...this.peers.values()];
    const res = assignStages(
      peers.map((p) => ({ peerId: p.peerId, capability: p.capability })),
      { stages: this.run.stages, layersPerStage: this.run.layersPerStage, workers: this.workers },
    );
    if (!res.ok) return this.stop(`cannot assign stages: ${res.error}`);
    this.assignments = res.assignments;
    this.phase = 'assigned';
    for (const a of res.assignments) this.peers.get(a.peerId)!.assignment = a;
    const list = res.assignments.map((a) => ({ ...a, name: this.peers.get(a.peerId)!.name }));
    for (const a of res.assignments) {
      this.sendTo(this.peers.get(a.peerId)!.conn, { type: 'assign', stage: a.stage, replica: a.replica, run: this.run, peers: list });
    }
    this.log(`assigned: ${list.map((a) => `${a.peerId}→s${a.stage}r${a.replica}`).join(' ')}`);
    this.emit('assign', res.assignments);
  }

  private onSignal(peer: Peer, msg: ClientMessageOf<'signal'>): void {
    if (this.phase !== 'assigned' && this.phase !== 'running') {
      return this.reject(peer.conn, `cannot relay signal: the run is ${this.phase}`, 'signal');
    }
    const target = this.peers.get(msg.to);
    if (!target?.assignment) return this.reject(peer.conn, `cannot relay signal: unknown peer ${msg.to}`, 'signal');
    if (!areNeighbours(this.assignments, peer.peerId, msg.to)) {
      const a = peer.assignment!;
      const b = target.assignment;
      return this.reject(
        peer.conn,
        `cannot relay signal: ${msg.to} (stage ${b.stage} replica ${b.replica}) is not a neighbour of ${peer.peerId} ` +
          `(stage ${a.stage} replica ${a.replica}); signal only your lane's previous/next stage and your stage's other replicas`,
        'signal',
      );
    }
    if (target.lost || target.conn.ws.readyState !== WebSocket.OPEN) {
      return this.reject(peer.conn, `cannot relay signal: peer ${msg.to} is not connected`, 'signal');
    }
    this.sendTo(target.conn, { type: 'signal', from: peer.peerId, data: msg.data });
  }

  private onReady(peer: Peer): void {
    if (!peer.assignment) return this.reject(peer.conn, 'ready before assign: wait for your stage assignment', 'ready');
    if (this.phase !== 'assigned' && this.phase !== 'running') return this.reject(peer.conn, `ready ignored: the run is ${this.phase}`, 'ready');
    peer.ready = true;
    const assigned = this.assignedPeers();
    if (this.phase === 'assigned' && assigned.every((p) => p.ready)) {
      this.phase = 'running';
      this.log('all peers ready: start');
      this.broadcast({ type: 'start' });
      this.emit('start', {});
    }
  }

  private onDone(peer: Peer, msg: ClientMessageOf<'done'>): void {
    if (!peer.assignment) return this.reject(peer.conn, 'done before assign', 'done');
    const { type: _, ...payload } = msg;
    peer.done = payload;
    this.log(`done: ${peer.peerId}${payload.finalValLoss !== undefined ? ` (val loss ${payload.finalValLoss.toFixed(4)})` : ''}`);
    if (this.phase !== 'running' && this.phase !== 'assigned') return;
    const assigned = this.assignedPeers();
    if (assigned.every((p) => p.done)) {
      const report = assigned.map((p) => ({ peerId: p.peerId, name: p.name, stage: p.assignment!.stage, replica: p.assignment!.replica, ...p.done! }));
      if (this.run.serve) {
        this.phase = 'serving';
        this.log('all peers done: training complete, serving inference');
      } else {
        this.phase = 'finished';
        this.log('all peers done: run complete');
        // Tells peers still connected that nothing more will come, so they can leave.
        this.broadcast({ type: 'stop', reason: 'run complete' });
      }
      this.settleWith(report);
      this.emit('done', report);
    }
  }

  /** Send a message to one peer (e.g. its settlement proof); false if it is gone. */
  sendToPeer(peerId: string, msg: ServerMessage): boolean {
    const p = this.peers.get(peerId);
    if (!p || p.lost || p.conn.ws.readyState !== WebSocket.OPEN) return false;
    this.sendTo(p.conn, msg);
    return true;
  }

  /** End serving: peers are told the run is complete and may leave. */
  stopServing(): void {
    if (this.phase !== 'serving') return;
    this.phase = 'finished';
    this.broadcast({ type: 'stop', reason: 'run complete' });
    for (const resolve of this.generating.values()) resolve({ type: 'generated', requestId: 0, error: 'the swarm stopped serving' });
  }

  // -------------------------------------------------------------------------------------------
  // Inference: a buyer's spend, checked on chain, served by lane 0 of the trained swarm

  private async onInfer(conn: Conn, msg: ClientMessageOf<'infer'>): Promise<void> {
    const fail = (m: string) => this.reject(conn, m, `spend ${msg.spendId}`.slice(0, 64));
    if (!this.inference || !this.run.serve) return fail('this swarm does not serve inference');
    if (this.phase !== 'serving') return fail(`the model is not trained yet (run ${this.phase}): try again when training has finished`);
    if (this.queued.has(msg.spendId)) return fail(`spend ${msg.spendId} is already being served`);
    this.queued.add(msg.spendId);
    let why: string | undefined;
    try {
      why = await this.inference.check(msg.spendId, msg.prompt);
    } catch (e) {
      why = `could not check spend ${msg.spendId} on chain: ${(e as Error).message}`;
    }
    if (why) {
      this.queued.delete(msg.spendId);
      return fail(why);
    }
    this.queue = this.queue.then(() => this.serve(conn, msg).finally(() => this.queued.delete(msg.spendId)));
  }

  private async serve(conn: Conn, msg: ClientMessageOf<'infer'>): Promise<void> {
    const t0 = Date.now();
    const fail = (m: string) => this.reject(conn, m, `spend ${msg.spendId}`.slice(0, 64));
    const lane = this.assignedPeers().filter((p) => p.assignment!.replica === 0);
    const down = lane.find((p) => p.lost);
    if (this.phase !== 'serving' || down) return fail(`the swarm cannot serve now: ${down ? `peer ${down.peerId} is gone` : `run ${this.phase}`}`);
    const requestId = ++this.requestSeq;
    const result = new Promise<ClientMessageOf<'generated'>>((resolve) => {
      this.generating.set(requestId, resolve);
      setTimeout(() => resolve({ type: 'generated', requestId, error: `no answer within ${this.generateTimeoutMs} ms` }), this.generateTimeoutMs).unref();
    });
    const seed = Number(BigInt(msg.spendId) % 2_147_483_647n);
    for (const p of lane) {
      this.sendTo(p.conn, { type: 'generate', requestId, prompt: msg.prompt, maxTokens: msg.maxTokens, temperature: this.inference!.temperature, seed });
    }
    const r = await result;
    this.generating.delete(requestId);
    if (r.error !== undefined || r.text === undefined) return fail(`generation failed: ${r.error ?? 'no text'}`);
    const answerHash = keccak256(toHex(r.text));
    try {
      await this.inference!.served(msg.spendId, answerHash);
    } catch (e) {
      return fail(`the answer could not be receipted on chain: ${(e as Error).message}`);
    }
    this.sendTo(conn, { type: 'answer', spendId: msg.spendId, text: r.text, answerHash });
    this.log(`served spend ${msg.spendId}: ${r.text.length} chars in ${Date.now() - t0} ms`);
  }

  private onGenerated(peer: Peer, msg: ClientMessageOf<'generated'>): void {
    const a = peer.assignment;
    const resolve = this.generating.get(msg.requestId);
    if (!a || a.stage !== 0 || a.replica !== 0 || !resolve) {
      return this.reject(peer.conn, `unexpected generated for request ${msg.requestId}: only stage 0 of lane 0 answers, and only what was asked`, 'generated');
    }
    resolve(msg);
  }

  // -------------------------------------------------------------------------------------------
  // Liveness

  private onClose(conn: Conn): void {
    this.conns.delete(conn);
    if (conn.peer) this.markLost(conn.peer, 'connection closed');
  }

  private checkHeartbeats(): void {
    if (this.phase !== 'registering' && this.phase !== 'assigned' && this.phase !== 'running') return;
    const now = Date.now();
    for (const p of [...this.peers.values()]) {
      const silent = now - p.lastSeen;
      if (silent > this.heartbeatTimeoutMs) this.markLost(p, `no message for ${silent} ms (heartbeat timeout ${this.heartbeatTimeoutMs} ms)`);
    }
  }

  private markLost(peer: Peer, reason: string): void {
    // A peer that finished may leave; one already lost is not lost twice.
    if (peer.lost || peer.done || this.phase === 'closed') return;
    peer.lost = reason;
    if (peer.conn.ws.readyState === WebSocket.OPEN || peer.conn.ws.readyState === WebSocket.CONNECTING) peer.conn.ws.terminate();
    if (this.phase === 'registering') {
      // No run depends on it yet: free its slot for the next volunteer.
      this.peers.delete(peer.peerId);
      this.log(`${peer.peerId} left before assignment (${reason}) [${this.peers.size}/${this.workers}]`);
      return;
    }
    const a = peer.assignment;
    this.log(`lost ${peer.peerId}${a ? ` (stage ${a.stage} replica ${a.replica})` : ''}: ${reason}`);
    if (this.phase !== 'assigned' && this.phase !== 'running') return;
    this.broadcast({ type: 'peer-lost', peerId: peer.peerId, reason: reason.slice(0, 1024) });
    this.emit('peer-lost', { peerId: peer.peerId, reason });
    // Stage takeover by a spare replica or a joiner is a later feature; until then a hole in the
    // pipeline ends the run.
    this.stop(`peer ${peer.peerId}${a ? ` (stage ${a.stage} replica ${a.replica})` : ''} was lost and stage takeover is not implemented`);
  }

  private stop(reason: string): void {
    this.phase = 'stopped';
    this.log(`stop: ${reason}`);
    this.broadcast({ type: 'stop', reason: reason.slice(0, 1024) });
    this.settleWith(new Error(reason));
    this.emit('stop', { reason });
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  private assignedPeers(): Peer[] {
    return this.assignments.map((a) => this.peers.get(a.peerId)!);
  }

  private settleWith(r: PeerDone[] | Error): void {
    if (this.settled) return;
    this.settled = true;
    if (r instanceof Error) this.settle.reject(r);
    else this.settle.resolve(r);
  }

  private broadcast(msg: ServerMessage): void {
    for (const p of this.peers.values()) if (!p.lost) this.sendTo(p.conn, msg);
  }

  private sendTo(conn: Conn, msg: ServerMessage): void {
    const enc = encodeServerMessage(msg);
    if (!enc.ok) {
      // Our own bug; refuse to put an invalid message on the wire rather than crash.
      this.log(`BUG: not sending an invalid ${msg.type}: ${enc.error}`);
      return;
    }
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    conn.ws.send(enc.text);
    this.counters.messagesOut++;
  }

  private emit<K extends keyof CoordinatorEvents>(event: K, payload: CoordinatorEvents[K]): void {
    for (const cb of this.listeners.get(event) ?? []) {
      try {
        (cb as (p: CoordinatorEvents[K]) => void)(payload);
      } catch (e) {
        this.log(`listener for ${event} threw: ${(e as Error).message}`);
      }
    }
  }
}

function statusOf(p: Peer): PeerStatus {
  if (p.lost) return 'lost';
  if (p.done) return 'done';
  if (p.ready) return 'ready';
  return p.assignment ? 'assigned' : 'registered';
}
