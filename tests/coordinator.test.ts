// The coordinator against real sockets: a real `Coordinator` on 127.0.0.1 (ephemeral port), real
// `ws` clients. Scripted peers (CoordinatorClient) behave like real peers at the protocol level —
// register, report their open data channels (`links`) to their neighbours, `ready`, answer each
// `round` with `round-done` for the microbatches routed through them, heartbeat, evaluate and
// checkpoint when a commit asks, answer `generate` at stage 0 — but compute nothing (no GPU).
// Raw `ws` sockets send the frames CoordinatorClient would refuse to. Serving uses an in-memory
// InferenceDesk (the chain desk is tested against a real EVM elsewhere).
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { keccak256, toHex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { WebSocket } from 'ws';
import { Coordinator, type CoordinatorOptions, type InferenceDesk } from '../coordinator/server.js';
import type { CommitEvent } from '../coordinator/run-control.js';
import { CoordinatorClient, type WebSocketConstructor, registerMessage } from '../shared/swarm/coordinator-client.js';
import { PeerKey } from '../shared/swarm/identity.js';
import { FrameKind, encodeFrame } from '../shared/wire/frame.js';
import { seal } from '../shared/trust/seal.js';
import {
  applyViewChange,
  type Capability,
  type ClientMessage,
  type PeerInfo,
  type Seal,
  type ServerMessage,
  type ServerMessageOf,
  type ServerMessageType,
  MAX_MESSAGE_BYTES,
  MAX_SIGNAL_DATA_BYTES,
  ServerMessageSchemas,
} from '../shared/swarm/protocol.js';
import { testRun } from './test-run.js';
import type { RunConfig } from '../shared/run/config.js';
import { parseServerMessage } from '../shared/swarm/parse.js';

// Both WebSocket implementations must fit the client's constructor type (checked by tsc).
const _nodeWs: WebSocketConstructor = WebSocket;
const _browserWs: WebSocketConstructor | undefined = (globalThis as { WebSocket?: typeof globalThis.WebSocket }).WebSocket;
void _nodeWs;
void _browserWs;

function makeRun(over: Partial<RunConfig> = {}): RunConfig {
  return testRun({
    runId: 'test-run',
    model: { vocab: 65, dModel: 64, nHead: 4, nLayer: 4, seq: 32, batch: 8 },
    layersPerStage: [1, 3],
    steps: 3,
    codec: { kind: 'subspace', k: 16, coeff: 'fp16' },
    optimizer: { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1, warmup: 2 },
    ...over,
  });
}

const cap = (maxLayers = 8, gflops = 10): Capability => ({ adapter: 'test', kind: 'cpu', gflops, memoryBytes: 1e9, maxLayers });

async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 3));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `p`, or a failure naming what did not happen within `ms` (instead of hanging on a long server-side timeout). */
async function within<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
const SERVER_TYPES = Object.keys(ServerMessageSchemas) as ServerMessageType[];
const hashOf = (s: string) => createHash('sha256').update(s).digest('hex');

/** Everything a socket received, in order. `take` removes and returns the first message of a type. */
class Inbox {
  msgs: ServerMessage[] = [];
  all: ServerMessage[] = [];
  closed?: number;
  push(m: ServerMessage): void {
    this.msgs.push(m);
    this.all.push(m);
  }
  count(type: ServerMessageType): number {
    return this.msgs.filter((m) => m.type === type).length;
  }
  async take<T extends ServerMessageType>(type: T, timeoutMs = 3000): Promise<ServerMessageOf<T>> {
    await until(() => this.msgs.some((m) => m.type === type), `a ${type} message`, timeoutMs);
    const i = this.msgs.findIndex((m) => m.type === type);
    return this.msgs.splice(i, 1)[0] as ServerMessageOf<T>;
  }
}

let cleanups: Array<() => void | Promise<void>> = [];
/** The seals scripted peers "sent" each other, by receiver (their data channels, reduced to what the coordinator checks). */
const wire = new Map<string, Seal[]>();

afterEach(async () => {
  // Peers first (stop their timers), then the coordinators.
  const cs = cleanups.reverse();
  cleanups = [];
  wire.clear();
  for (const c of cs) await c();
});

interface Served {
  coord: Coordinator;
  url: string;
  logs: string[];
  commits: CommitEvent[];
  aborted: Array<{ round: number; step: number; reason: string }>;
  gone: Array<{ peerId: string; reason: string; at: number }>;
}

async function serve(opts: Partial<CoordinatorOptions> = {}): Promise<Served> {
  const logs: string[] = [];
  // Spot checks only where a test asks for them (a scripted peer computes nothing to check).
  const coord = new Coordinator({ run: makeRun(), log: (l) => logs.push(l), auditRate: 0, ...opts });
  const commits: CommitEvent[] = [];
  const aborted: Served['aborted'] = [];
  const gone: Served['gone'] = [];
  coord.on('commit', (c) => commits.push(c));
  coord.on('round-aborted', (a) => aborted.push(a));
  coord.on('peer-gone', (g) => gone.push({ peerId: g.peerId, reason: g.reason, at: Date.now() }));
  cleanups.push(() => coord.close());
  const port = await coord.listen(0);
  expect(coord.url).toBe(`ws://127.0.0.1:${port}`);
  return { coord, url: `ws://127.0.0.1:${port}`, logs, commits, aborted, gone };
}

/** What a scripted stage 0 does with a `generate` it must answer. */
type GenerateReply = { text: string } | { error: string; refused?: boolean } | 'hang';

/**
 * A peer that speaks the protocol like a real one but computes nothing. It reports an open data
 * channel to every member of its own and adjacent stages (real peers open those channels, and the
 * coordinator needs both ends to report one), heartbeats every 40 ms and answers rounds at once.
 */
class ScriptedPeer {
  readonly inbox = new Inbox();
  readonly client: CoordinatorClient;
  peerId = '';
  stage = -1;
  members: PeerInfo[] = [];
  committed = 0;
  /** round → microbatches this peer reported. */
  readonly reported = new Map<number, number>();
  readonly rounds: Array<ServerMessageOf<'round'>> = [];
  readonly generates: Array<ServerMessageOf<'generate'>> = [];
  /** Stop answering rounds (a round routed through it never completes). */
  hangRounds = false;
  /** Send nothing any more (a frozen machine whose socket stays open). */
  silent = false;
  lastSentAt = 0;
  lossAt = (step: number) => 5 - step / 2;
  /** What this peer, as a witness, finds of an audited microbatch. */
  findings: (m: ServerMessageOf<'verify'>) => boolean = () => true;
  valLossAt = (step: number) => 6 - step / 2;
  replyToGenerate: (m: ServerMessageOf<'generate'>) => GenerateReply = (m) => ({ text: ` ${m.prompt} answered by ${this.name}` });
  private beat?: ReturnType<typeof setInterval>;
  private socket?: WebSocket;
  key?: PeerKey;

  constructor(
    readonly name: string,
    url: string,
    private readonly opts: { autoReady?: boolean } = {},
  ) {
    // Keep the `ws` socket so a test can kill it (a killed process's socket drops without a close handshake).
    const self = this;
    class Recorded extends WebSocket {
      constructor(u: string) {
        super(u);
        self.socket = this;
      }
    }
    this.client = new CoordinatorClient(url, Recorded);
    for (const t of SERVER_TYPES) this.client.on(t, (m) => this.inbox.push(m));
    this.client.on('close', (e) => (this.inbox.closed = e.code));
    this.client.on('assign', (m) => this.onAssign(m));
    this.client.on('peers', (m) => this.setMembers(applyViewChange(this.members, m)));
    this.client.on('round', (m) => void this.onRound(m));
    this.client.on('commit', (m) => this.onCommit(m));
    this.client.on('generate', (m) => this.onGenerate(m));
    this.client.on('verify', (m) => this.send({ type: 'verdict', round: m.round, microbatch: m.microbatch, peer: m.peer, ok: this.findings(m), reason: 'scripted' }));
    this.client.on('stop', () => this.stopBeating());
    cleanups.push(() => this.close());
  }

  async connect(capability = cap()): Promise<this> {
    this.key = await PeerKey.generate();
    const { peerId } = await this.client.connect({ name: this.name, capability }, { key: this.key });
    this.peerId = peerId;
    this.beat = setInterval(() => this.heartbeat(), 40);
    return this;
  }

  send(msg: ClientMessage): void {
    if (this.silent) return;
    this.lastSentAt = Date.now();
    this.client.send(msg);
  }

  ready(): void {
    this.send({ type: 'ready', step: this.committed });
  }

  heartbeat(): void {
    this.send({
      type: 'heartbeat',
      step: this.committed,
      bytesSent: 1000 * this.committed,
      bytesReceived: 500 * this.committed,
      ...(this.stage === 1 && this.committed > 0 && { loss: this.lossAt(this.committed) }),
    });
  }

  stopBeating(): void {
    clearInterval(this.beat);
  }

  /** A frame CoordinatorClient would never send (it sends validated JSON text only). */
  sendRaw(data: string | Buffer): void {
    this.socket!.send(data, { binary: Buffer.isBuffer(data) });
  }

  /** The process dies: its socket drops at once, no close handshake, no leave. */
  kill(): void {
    this.stopBeating();
    this.socket!.terminate();
  }

  close(): void {
    this.stopBeating();
    this.client.close();
  }

  private onAssign(m: ServerMessageOf<'assign'>): void {
    this.stage = m.stage;
    this.setMembers(m.peers);
    if (this.opts.autoReady) this.ready();
  }

  private setMembers(peers: PeerInfo[]): void {
    this.members = peers;
    if (this.stage < 0) return;
    const connected = peers.filter((p) => p.peerId !== this.peerId && Math.abs(p.stage - this.stage) <= 1).map((p) => p.peerId);
    this.send({ type: 'links', connected });
  }

  /**
   * Send each neighbour of the round a sealed (dummy) frame, as a real peer sends its boundaries;
   * report once every input the routes give it has arrived, citing their seals.
   */
  private async onRound(m: ServerMessageOf<'round'>): Promise<void> {
    this.rounds.push(m);
    if (this.hangRounds) return;
    const microbatches = m.routes.filter((path) => path.includes(this.peerId)).length;
    let expected = 0;
    for (const [mb, path] of m.routes.entries()) {
      const s = path.indexOf(this.peerId);
      if (s < 0) continue;
      if (s < path.length - 1) await this.post(FrameKind.Activation, m.round, mb, path[s + 1]);
      if (s > 0) await this.post(FrameKind.Gradient, m.round, mb, path[s - 1]);
      expected += Number(s > 0) + Number(s < path.length - 1);
    }
    const inputs = () => (wire.get(this.peerId) ?? []).filter((x) => x.tag === m.round);
    // Inputs that never come (a neighbour hangs) leave it waiting, as a real peer would stall: no report.
    const arrived = await until(() => inputs().length >= expected, `round ${m.round}'s inputs at ${this.name}`, 10_000).then(
      () => true,
      () => false,
    );
    if (!arrived || this.hangRounds) return;
    this.reported.set(m.round, microbatches);
    const last = this.stage === m.routes[0].length - 1;
    this.send({ type: 'round-done', round: m.round, microbatches, inputs: inputs(), ...(last && { lossSum: microbatches * this.lossAt(m.step) }) });
  }

  private async post(kind: FrameKind, round: number, mb: number, to: string): Promise<void> {
    const frame = encodeFrame({ kind, tag: round, microbatch: mb, rows: 1, cols: 1, dtype: 'fp32', tensor: Float32Array.of(1) });
    const { seal: s } = await seal(frame, this.key!, this.peerId, to);
    wire.set(to, [...(wire.get(to) ?? []), s]);
  }

  private onCommit(m: ServerMessageOf<'commit'>): void {
    if (!m.apply) return;
    this.committed = m.step;
    if (m.average && (m.average.members[this.stage]?.includes(this.peerId) || m.average.listeners[this.stage]?.includes(this.peerId))) {
      this.send({ type: 'checkpoint', step: m.step, hash: hashOf(`stage ${this.stage} at ${m.step}`) });
    }
    if (m.eval && m.eval.path.at(-1) === this.peerId) this.send({ type: 'evaluated', step: m.step, valLoss: this.valLossAt(m.step) });
    this.heartbeat();
  }

  private onGenerate(m: ServerMessageOf<'generate'>): void {
    this.generates.push(m);
    if (m.path[0] !== this.peerId) return;
    const r = this.replyToGenerate(m);
    if (r === 'hang') return;
    setTimeout(() => this.send({ type: 'generated', requestId: m.requestId, ...r }), 5);
  }
}

async function peer(url: string, name: string, capability = cap(), opts: { autoReady?: boolean } = {}): Promise<ScriptedPeer> {
  return new ScriptedPeer(name, url, opts).connect(capability);
}

/**
 * Make `peers` ready so that training starts with all of them active: every peer but the last
 * first, then the last (whose stage must need it to start).
 */
async function startTogether(s: Served, peers: ScriptedPeer[]): Promise<void> {
  await until(() => peers.every((p) => p.stage >= 0), 'every peer assigned');
  for (const p of peers.slice(0, -1)) p.ready();
  await until(() => s.coord.stats.peers.ready === peers.length - 1, `${peers.length - 1} ready peers`);
  expect(s.coord.phase).toBe('waiting');
  peers.at(-1)!.ready();
  await until(() => s.coord.stats.peers.active === peers.length, `${peers.length} active peers`);
}

/** A raw socket for frames CoordinatorClient would refuse to send (or a buyer, who does not register). */
async function rawSocket(url: string, localAddress?: string): Promise<{ ws: WebSocket; inbox: Inbox; nonce: string; send(m: unknown): void }> {
  const ws = new WebSocket(url, { localAddress });
  const inbox = new Inbox();
  ws.on('message', (data) => {
    const p = parseServerMessage(String(data));
    if (!p.ok) throw new Error(`server sent an invalid message: ${p.error}`);
    inbox.push(p.msg);
  });
  ws.on('close', (code) => (inbox.closed = code));
  cleanups.push(() => ws.close());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const { nonce } = await inbox.take('hello');
  return { ws, inbox, nonce, send: (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)) };
}

/** Per peer, the microbatches it computed in the round `c` committed. */
const workOf = (c: CommitEvent) => Object.fromEntries(c.work.map((w) => [w.peerId, w.microbatches]));

// ---------------------------------------------------------------------------------------------

describe('coordinator transport: bad input never crashes it', () => {
  it('answers every malformed frame with an error naming the problem, counts it and keeps the socket open', async () => {
    const s = await serve();
    const { ws, inbox, send, nonce } = await rawSocket(s.url);
    const expectError = async (frame: string | Buffer, pattern: RegExp, ref?: string): Promise<void> => {
      ws.send(frame, { binary: Buffer.isBuffer(frame) });
      const e = await inbox.take('error');
      expect(e.message).toMatch(pattern);
      expect(e.ref).toBe(ref);
    };

    await expectError('{"type": "register", ', /^message is not valid JSON/);
    await expectError('[1,2,3]', /must be a JSON object with a "type" field/);
    await expectError('{"name": "x"}', /no string "type" field/);
    await expectError(
      '{"type": "dance"}',
      /^unknown client message type "dance" \(expected one of register, signal, links, ready, bad-state, heartbeat, round-done, equivocation, evidence, verdict, evaluated, checkpoint, suspect, stalled, leave, generated, generating, infer\)$/,
    );
    // Schema violations name the message and the field.
    await expectError(JSON.stringify({ type: 'heartbeat', step: 'three', bytesSent: 0, bytesReceived: 0 }), /^invalid heartbeat message: heartbeat\.step: .*expected number/);
    await expectError(JSON.stringify({ type: 'register', name: 'x', capability: { ...cap(), gflops: -1 } }), /^invalid register message: register\.capability\.gflops/);
    await expectError(JSON.stringify({ type: 'ready', step: 0, extra: 1 }), /^invalid ready message: .*extra/);
    await expectError(JSON.stringify({ type: 'round-done', round: 1, microbatches: 1.5 }), /^invalid round-done message: round-done\.microbatches/);
    await expectError(JSON.stringify({ type: 'signal', to: 'p1', data: 'x'.repeat(MAX_SIGNAL_DATA_BYTES) }), /signal\.data: is \d+ bytes, above the 49152-byte cap/);
    await expectError(JSON.stringify({ type: 'infer', spendId: '-1', prompt: 'hi', maxTokens: 3 }), /^invalid infer message: infer\.spendId: must be a decimal integer string/);
    // Oversized text (under ws's hard cap): an error, the socket stays.
    await expectError('x'.repeat(MAX_MESSAGE_BYTES + 1), /^message is 65537 bytes, above the 65536-byte limit$/);
    // Binary frames: the coordinator never takes tensors.
    await expectError(Buffer.alloc(1000, 7), /^binary frames are not accepted \(got 1000 bytes\)/);
    // Well-formed but out of order: nothing but register (or a buyer's infer) before registering.
    for (const m of [
      { type: 'ready', step: 0 },
      { type: 'heartbeat', step: 1, bytesSent: 0, bytesReceived: 0 },
      { type: 'links', connected: [] },
      { type: 'round-done', round: 1, microbatches: 1, inputs: [] },
    ]) {
      await expectError(JSON.stringify(m), new RegExp(`^send register before ${m.type}$`), m.type);
    }
    await expectError(JSON.stringify({ type: 'signal', to: 'p1-abc', data: {} }), /^send register before signal$/, 'signal');

    // Out: the hello, then one error each.
    expect(s.coord.stats).toMatchObject({ badMessages: 17, binaryFrames: 1, binaryBytesReceived: 1000, messagesIn: 17, messagesOut: 18, connections: 1 });
    expect(inbox.closed).toBeUndefined();

    // Still open and usable: it may register now, once.
    expect(ws.readyState).toBe(WebSocket.OPEN);
    const key = await PeerKey.generate();
    send(await registerMessage({ name: 'survivor', capability: cap() }, { key }, nonce));
    const welcome = await inbox.take('welcome');
    expect(welcome.peerId).toMatch(/^p\d+-[0-9a-f]{6}$/);
    expect((await inbox.take('assign')).stage).toBe(0);
    send(await registerMessage({ name: 'again', capability: cap() }, { key: await PeerKey.generate() }, nonce));
    const again = await inbox.take('error');
    expect(again).toEqual({ type: 'error', message: `already registered as ${welcome.peerId}`, ref: 'register' });
    expect(s.coord.stats.peers).toEqual({ setup: 1, ready: 0, active: 0, gone: 0 });
    send({ type: 'ready', step: 0 });
    await until(() => s.coord.stats.peers.ready === 1, 'the survivor ready');
    expect(s.coord.stats.badMessages).toBe(18);
  });

  it('closes a socket after too many bad frames, and one above the hard frame cap, and keeps serving the others', async () => {
    const s = await serve({ maxBadMessages: 5 });
    const good = await peer(s.url, 'good');
    const spammer = await rawSocket(s.url);
    for (let i = 0; i < 8; i++) spammer.send('nope');
    await until(() => spammer.inbox.closed !== undefined, 'the spammer closed');
    expect(spammer.inbox.closed).toBe(1008);
    const errors = spammer.inbox.all.filter((m) => m.type === 'error').map((m) => (m as ServerMessageOf<'error'>).message);
    expect(errors.slice(0, 6)).toEqual([...Array(5).fill(expect.stringMatching(/not valid JSON/)), 'closing the connection after 5 bad messages']);

    // A frame above ws's hard cap (4 × the message limit) is a protocol violation: ws closes with 1009.
    const huge = await rawSocket(s.url);
    huge.ws.send('x'.repeat(4 * MAX_MESSAGE_BYTES + 1));
    await until(() => huge.inbox.closed !== undefined, 'the oversized socket closed');
    expect(huge.inbox.closed).toBe(1009);
    // A binary flood from a registered peer is refused frame by frame, then closed; it is a lost peer.
    const flood = await peer(s.url, 'flood');
    for (let i = 0; i < 5; i++) flood.sendRaw(Buffer.alloc(2048));
    await until(() => flood.inbox.closed !== undefined, 'the binary flooder closed');
    expect(flood.inbox.closed).toBe(1008);
    await until(() => s.gone.length === 1, 'the flooder gone');
    expect(s.gone[0]).toMatchObject({ peerId: flood.peerId, reason: 'connection closed' });
    expect(s.coord.stats.binaryFrames).toBe(5);
    expect(s.coord.stats.binaryBytesReceived).toBe(5 * 2048);

    // The server is fine: the good peer's socket is open and a newcomer is placed.
    expect(good.client.connected).toBe(true);
    const late = await peer(s.url, 'late');
    await until(() => late.stage >= 0, 'the newcomer assigned');
    expect(s.coord.stats.connections).toBe(2);
    expect(s.logs.some((l) => /socket error .*Max payload size exceeded/.test(l))).toBe(true);
  });
});

describe('coordinator: registration', () => {
  it('takes at most 4 peers from one address, however many register at once; 127.0.0.1 (the local swarm) is no address', async () => {
    const s = await serve({ run: makeRun({ steps: 2 }) });
    // Every registration signed first, then all sent in one tick: their proofs are checked side by side.
    const registerAtOnce = async (n: number, localAddress: string) => {
      const socks = await Promise.all(Array.from({ length: n }, () => rawSocket(s.url, localAddress)));
      const msgs = await Promise.all(socks.map(async (x, i) => registerMessage({ name: `p${i}`, capability: cap() }, { key: await PeerKey.generate() }, x.nonce)));
      socks.forEach((x, i) => x.send(msgs[i]));
      return Promise.all(socks.map((x) => Promise.race([x.inbox.take('welcome').then(() => 'welcome'), x.inbox.take('error').then((e) => e.message)])));
    };
    const flood = await registerAtOnce(10, '127.0.0.2');
    expect(flood.filter((a) => a === 'welcome')).toHaveLength(4);
    for (const a of flood.filter((a) => a !== 'welcome')) expect(a).toBe('cannot take part: 127.0.0.2 already takes part with 4 peers; at most 4 per address');
    expect(await registerAtOnce(6, '127.0.0.1')).toEqual(Array(6).fill('welcome'));
  });

  it('takes a peer only with proofs made for its own connection: its key signed the nonce, its account signed the key; one live peer per account and per key', async () => {
    const s = await serve({ run: makeRun({ steps: 2 }) });
    const alice = privateKeyToAccount(generatePrivateKey());
    const aliceSigns = { address: alice.address, signMessage: (message: string) => alice.signMessage({ message }) };
    const info = { name: 'w', capability: cap() };
    const refused = async (m: unknown, why: RegExp) => {
      const { inbox, send } = await rawSocket(s.url);
      send(m);
      expect((await inbox.take('error')).message).toMatch(why);
      await until(() => inbox.closed !== undefined, 'the refused socket closed');
    };
    // A proof made for another connection (a replay) is refused, for the key and for the account.
    const key = await PeerKey.generate();
    await refused(await registerMessage(info, { key }, '0'.repeat(32)), /^cannot take part: the key proof is not this connection's nonce signed by the key$/);
    const first = await rawSocket(s.url);
    const mine = await registerMessage(info, { key, account: aliceSigns }, first.nonce);
    const other = await rawSocket(s.url);
    const replayed = { ...(await registerMessage(info, { key: await PeerKey.generate() }, other.nonce)), account: alice.address, accountProof: mine.accountProof };
    other.send(replayed);
    expect((await other.inbox.take('error')).message).toMatch(/^cannot take part: the account proof is not 0x[0-9a-fA-F]{40}'s signature of this key and session$/);
    // An account named without its signature, or signed by someone else.
    const bob = privateKeyToAccount(generatePrivateKey());
    const u = await rawSocket(s.url);
    const { accountProof: _, ...unsigned } = await registerMessage(info, { key: await PeerKey.generate(), account: aliceSigns }, u.nonce);
    u.send(unsigned);
    expect((await u.inbox.take('error')).message).toMatch(/^cannot take part: account 0x[0-9a-fA-F]{40} given without its signature \(accountProof\)$/);
    const c = await rawSocket(s.url);
    c.send({
      ...(await registerMessage(
        info,
        { key: await PeerKey.generate(), account: { address: alice.address, signMessage: (message: string) => bob.signMessage({ message }) } },
        c.nonce,
      )),
    });
    expect((await c.inbox.take('error')).message).toMatch(/the account proof is not/);
    // The real owner gets in; the same account or the same key a second time does not.
    first.send(mine);
    expect((await first.inbox.take('welcome')).peerId).toMatch(/^p\d+-/);
    const again = await rawSocket(s.url);
    again.send(await registerMessage(info, { key: await PeerKey.generate(), account: aliceSigns }, again.nonce));
    expect((await again.inbox.take('error')).message).toMatch(
      /^cannot take part: account 0x[0-9a-fA-F]{40} is already taking part as p\d+-[0-9a-f]{6}: one live peer per account$/,
    );
    const twin = await rawSocket(s.url);
    twin.send(await registerMessage(info, { key }, twin.nonce));
    expect((await twin.inbox.take('error')).message).toBe('cannot take part: this key is already registered: every session makes its own key');
    expect(s.coord.stats.peers).toEqual({ setup: 1, ready: 0, active: 0, gone: 0 });
  });

  it('welcomes, then assigns stage, run, peers and state source, and says the run’s phase; refuses a GPU that holds no stage, and the rest still train', async () => {
    const s = await serve({ run: makeRun({ steps: 2 }) });
    const registered: Array<{ name: string; stage: number }> = [];
    s.coord.on('register', (r) => registered.push({ name: r.name, stage: r.stage }));
    const a = await peer(s.url, 'alpha');
    await until(() => a.inbox.all.length >= 3, 'welcome, assign and status');
    expect(a.inbox.all.map((m) => m.type).slice(0, 3)).toEqual(['welcome', 'assign', 'status']);
    // A newcomer hears the run's phase and progress at once, not at the phase's next change.
    expect(a.inbox.all[2]).toMatchObject({ type: 'status', phase: 'waiting', step: 0, steps: 2 });
    const assignA = a.inbox.all[1] as ServerMessageOf<'assign'>;
    expect(assignA).toEqual({
      type: 'assign',
      stage: 0,
      run: makeRun({ steps: 2 }),
      // Its view: the peers it opens channels to, none yet (it is not in its own).
      peers: [],
      state: { from: 'seed' },
    });

    // Stage 1 needs 3 layers: a GPU that holds 1 goes to stage 0 even though stage 1 is empty.
    const small = await peer(s.url, 'small', cap(1));
    expect(small.stage).toBe(0);
    const b = await peer(s.url, 'bravo');
    await until(() => b.stage >= 0, 'bravo assigned');
    expect(b.stage).toBe(1);
    expect(b.members.map(({ key: _, ...m }) => m)).toEqual([
      { peerId: a.peerId, stage: 0, name: 'alpha' },
      { peerId: small.peerId, stage: 0, name: 'small' },
    ]);
    expect(b.members[0].key).toMatch(/^[0-9a-f]{64}$/);
    // Those already there hear of each newcomer.
    await until(() => a.members.length === 2, 'alpha told of bravo');

    // A GPU that cannot hold any stage is told why, before any welcome, and closed.
    const none = new ScriptedPeer('tiny', s.url);
    await expect(none.connect(cap(0))).rejects.toThrow(/refused registration: cannot take part: this GPU can hold 0 layer\(s\); the smallest stage of this run has 1/);
    await until(() => none.inbox.closed !== undefined, 'the refused peer closed');
    expect(none.inbox.closed).toBe(1008);
    expect(none.inbox.all.map((m) => m.type)).toEqual(['error']);
    expect(s.coord.progress().peers.map((p) => p.name)).toEqual(['alpha', 'small', 'bravo']);
    expect(registered).toEqual([
      { name: 'alpha', stage: 0 },
      { name: 'small', stage: 0 },
      { name: 'bravo', stage: 1 },
    ]);
    expect(a.members.map((p) => p.name)).toEqual(['small', 'bravo']);

    await startTogether(s, [a, small, b]);
    await within(s.coord.trained, 'training over');
    expect(s.commits.map((c) => c.step)).toEqual([1, 2]);
    expect(s.coord.phase).toBe('finished');
    expect(s.gone).toEqual([]);
  });
});

describe('coordinator: signaling relay', () => {
  it('relays between peers of the same or adjacent stages only; refuses unknown and distant peers', async () => {
    const s = await serve({ run: makeRun({ stages: 3, layersPerStage: [1, 1, 2] }) });
    const a = await peer(s.url, 'a'); // stage 0
    const b = await peer(s.url, 'b'); // stage 1
    const c = await peer(s.url, 'c'); // stage 2
    const d = await peer(s.url, 'd'); // stage 0 again (equal capacity everywhere: the first stage)
    await until(() => [a, b, c, d].every((p) => p.stage >= 0), 'all assigned');
    expect([a, b, c, d].map((p) => p.stage)).toEqual([0, 1, 2, 0]);

    const offer = { sdp: 'v=0 offer', candidates: [{ candidate: 'a=1', sdpMLineIndex: 0 }] };
    a.send({ type: 'signal', to: b.peerId, data: offer });
    expect(await b.inbox.take('signal')).toEqual({ type: 'signal', from: a.peerId, data: offer });
    c.send({ type: 'signal', to: b.peerId, data: { answer: true } });
    expect(await b.inbox.take('signal')).toEqual({ type: 'signal', from: c.peerId, data: { answer: true } });
    a.send({ type: 'signal', to: d.peerId, data: 'same stage' });
    expect(await d.inbox.take('signal')).toEqual({ type: 'signal', from: a.peerId, data: 'same stage' });

    // Stage 0 and stage 2 are not neighbours.
    a.send({ type: 'signal', to: c.peerId, data: offer });
    const far = await a.inbox.take('error');
    expect(far.ref).toBe('signal');
    expect(far.message).toBe(`cannot relay signal: ${c.peerId} (stage 2) is not a neighbour of ${a.peerId} (stage 0); signal only peers of your stage and the stages next to it`);
    a.send({ type: 'signal', to: 'p999-nobody', data: 1 });
    expect(await a.inbox.take('error')).toEqual({ type: 'error', message: 'cannot relay signal: peer p999-nobody is not connected', ref: 'signal' });
    // A peer that is gone cannot be signalled either.
    b.kill();
    await until(() => s.gone.length === 1, 'b gone');
    a.send({ type: 'signal', to: b.peerId, data: offer });
    expect((await a.inbox.take('error')).message).toBe(`cannot relay signal: peer ${b.peerId} is not connected`);

    await sleep(30);
    expect(c.inbox.count('signal')).toBe(0);
    expect(a.inbox.count('signal')).toBe(0);
    // Only the distant one counts against a: signalling a peer that has just gone is a race an honest peer cannot avoid.
    expect(s.coord.stats.badMessages).toBe(1);
  });
});

describe('coordinator: a whole run with scripted peers', () => {
  it('routes every step, commits each peer’s work, averages, evaluates, reports progress and never sees a byte of weights', async () => {
    const run = makeRun({ steps: 4, minPerStage: 2, averageEvery: 2, evalEvery: 2, evalBatches: 1 });
    const s = await serve({ run });
    const evaluated: number[] = [];
    s.coord.on('evaluated', (e) => evaluated.push(e.step));
    const phases: string[] = [];
    s.coord.on('phase', (p) => phases.at(-1) !== p.phase && phases.push(p.phase));
    const peers = [await peer(s.url, 'a'), await peer(s.url, 'b'), await peer(s.url, 'c'), await peer(s.url, 'd')];
    await until(() => peers.every((p) => p.stage >= 0), 'all assigned');
    expect(peers.map((p) => p.stage).sort()).toEqual([0, 0, 1, 1]);

    const waiting = s.coord.progress();
    expect(waiting).toMatchObject({ phase: 'waiting', reason: 'waiting for peers (ready stage 0: 0/2, stage 1: 0/2)', step: 0, steps: 4 });
    expect(waiting.peers.map((p) => [p.name, p.state])).toEqual([
      ['a', 'setup'],
      ['b', 'setup'],
      ['c', 'setup'],
      ['d', 'setup'],
    ]);

    for (const p of peers) p.ready();
    const trained = await within(s.coord.trained, 'training over');
    expect(trained).toEqual({ step: 4, valLoss: peers[0].valLossAt(4) });
    expect(phases).toEqual(['waiting', 'training', 'finished']);
    expect(evaluated).toEqual([2, 4]);
    for (const p of peers) expect((await p.inbox.take('stop')).reason).toBe('run complete');

    // One commit per step, in order, crediting exactly what each peer reported for that round.
    expect(s.commits.map((c) => c.step)).toEqual([1, 2, 3, 4]);
    expect(s.aborted).toEqual([]);
    for (const c of s.commits) {
      const reported = Object.fromEntries(peers.filter((p) => p.reported.has(c.round)).map((p) => [p.peerId, p.reported.get(c.round)]));
      expect(workOf(c)).toEqual(reported);
      for (const stage of [0, 1]) expect(c.work.filter((w) => w.stage === stage).reduce((n, w) => n + w.microbatches, 0)).toBe(run.microbatches);
      // Two equally fast replicas per stage share the microbatches evenly.
      expect(Object.values(workOf(c))).toEqual([2, 2, 2, 2]);
      expect(c.loss).toBeCloseTo(peers[0].lossAt(c.step), 10);
      expect(c.ms).toBeGreaterThanOrEqual(0);
    }
    // Every peer saw each round, committed each step, and averaged at steps 2 and 4.
    for (const p of peers) {
      expect(p.rounds.map((r) => r.step)).toEqual([1, 2, 3, 4]);
      const commits = p.inbox.all.filter((m): m is ServerMessageOf<'commit'> => m.type === 'commit');
      expect(commits.map((m) => [m.step, m.apply, !!m.average])).toEqual([
        [1, true, false],
        [2, true, true],
        [3, true, false],
        [4, true, true],
      ]);
      const avg = commits[1].average!;
      expect(avg.members[p.stage].sort()).toEqual(
        peers
          .filter((q) => q.stage === p.stage)
          .map((q) => q.peerId)
          .sort(),
      );
      expect(avg.listeners).toEqual([[], []]);
    }

    // Progress, once the last heartbeats are in.
    await until(() => s.coord.progress().peers.every((p) => p.step === 4), 'heartbeats at step 4');
    const prog = s.coord.progress();
    expect(prog).toMatchObject({ phase: 'finished', reason: 'run complete', step: 4, steps: 4, loss: peers[0].lossAt(4), valLoss: peers[0].valLossAt(4) });
    expect(prog.tokensPerSec).toBeGreaterThan(0);
    for (const p of prog.peers) {
      const sp = peers.find((q) => q.peerId === p.peerId)!;
      expect(p).toMatchObject({ name: sp.name, stage: sp.stage, state: 'active', step: 4, bytesSent: 4000, bytesReceived: 2000 });
      // Timed by the coordinator (its reports carry no time): at least 1 ms, at most the whole run.
      expect(p.msPerMicrobatch).toBeGreaterThanOrEqual(1);
      expect(p.msPerMicrobatch).toBeLessThan(60_000);
      expect(p.silentMs).toBeLessThan(500);
      if (sp.stage === 1) expect(p.loss).toBe(sp.lossAt(4));
    }
    // Control messages only: not one binary frame, not one refused message.
    expect(s.coord.stats).toMatchObject({ binaryBytesReceived: 0, binaryFrames: 0, badMessages: 0, connections: 4 });
    expect(s.coord.stats.peers).toEqual({ setup: 0, ready: 0, active: 4, gone: 0 });
    // Registering into a finished run is refused.
    await expect(new ScriptedPeer('late', s.url).connect()).rejects.toThrow(/cannot take part: the run is finished/);
  });
});

describe('coordinator: liveness', () => {
  // Stage 0: two replicas sharing the microbatches; stage 1: one peer. Placement fills the empty
  // stages first, then (all equally fast) the first stage.
  async function threePeers(opts: Partial<CoordinatorOptions>) {
    const s = await serve(opts);
    const first = await peer(s.url, 'first');
    const last = await peer(s.url, 'last');
    const second = await peer(s.url, 'second');
    await until(() => [first, last, second].every((p) => p.stage >= 0), 'all assigned');
    expect([first.stage, second.stage, last.stage]).toEqual([0, 0, 1]);
    return { s, first, second, last };
  }

  it('declares an active peer that stops heartbeating gone after heartbeatTimeoutMs; its round is discarded and routed again', async () => {
    const { s, first, second, last } = await threePeers({ heartbeatTimeoutMs: 300 });
    // The victim freezes in step 1: its round never completes and it says nothing more.
    second.hangRounds = true;
    await startTogether(s, [first, second, last]);
    await until(() => second.rounds.length === 1, 'round 1 reached the victim');
    second.silent = true;
    const frozeAt = second.lastSentAt;
    expect(second.rounds[0]).toMatchObject({ round: 1, step: 1 });

    await within(s.coord.trained, 'training over');
    expect(s.gone).toHaveLength(1);
    const g = s.gone[0];
    expect(g.peerId).toBe(second.peerId);
    expect(g.reason).toMatch(/^no message for \d+ ms \(timeout 300 ms while active\)$/);
    const detectedMs = g.at - frozeAt;
    expect(detectedMs).toBeGreaterThanOrEqual(300);
    expect(detectedMs).toBeLessThan(800);
    // Round 1 is discarded (everyone still active drops its gradients) and step 1 routed again without the victim.
    expect(s.aborted).toEqual([{ round: 1, step: 1, reason: expect.stringMatching(new RegExp(`^${second.peerId} was lost \\(no message for`)) }]);
    for (const p of [first, last]) {
      expect(p.inbox.all.find((m) => m.type === 'commit')).toEqual({ type: 'commit', round: 1, step: 1, apply: false });
      expect(p.inbox.all.find((m) => m.type === 'peer-lost')).toMatchObject({ peerId: second.peerId });
    }
    expect(s.commits.map((c) => [c.round, c.step])).toEqual([
      [2, 1],
      [3, 2],
      [4, 3],
    ]);
    for (const c of s.commits) expect(workOf(c)).toEqual({ [first.peerId]: 4, [last.peerId]: 4 });
    // Its socket was cut, so it does not linger half-alive.
    await until(() => second.inbox.closed !== undefined, 'the victim socket closed');
    expect(s.coord.progress().peers.find((p) => p.peerId === second.peerId)).toMatchObject({ state: 'gone', goneReason: g.reason });
    expect(s.coord.stats.peers).toEqual({ setup: 0, ready: 0, active: 2, gone: 1 });
  });

  it('declares a peer whose socket drops gone at once, far sooner than the heartbeat timeout', async () => {
    const heartbeatTimeoutMs = 2000;
    const { s, first, second, last } = await threePeers({ heartbeatTimeoutMs });
    second.hangRounds = true;
    await startTogether(s, [first, second, last]);
    await until(() => second.rounds.length === 1, 'round 1 reached the victim');
    const t0 = Date.now();
    second.kill();
    await until(() => s.gone.length === 1, 'the killed peer gone', heartbeatTimeoutMs);
    const detectedMs = s.gone[0].at - t0;
    expect(s.gone[0]).toMatchObject({ peerId: second.peerId, reason: 'connection closed' });
    expect(detectedMs).toBeLessThan(heartbeatTimeoutMs / 10);
    await within(s.coord.trained, 'training over');
    expect(s.aborted).toEqual([{ round: 1, step: 1, reason: `${second.peerId} was lost (connection closed)` }]);
    expect(s.commits.map((c) => [c.step, workOf(c)])).toEqual([1, 2, 3].map((step) => [step, { [first.peerId]: 4, [last.peerId]: 4 }]));
  });

  it('holds a peer still setting up to setupTimeoutMs, not heartbeatTimeoutMs', async () => {
    const s = await serve({ run: makeRun({ steps: 1000 }), heartbeatTimeoutMs: 250, setupTimeoutMs: 900 });
    const a = await peer(s.url, 'a', cap(), { autoReady: true });
    const b = await peer(s.url, 'b', cap(), { autoReady: true });
    // Training stays on step 1 (b does not answer), with both heartbeating.
    b.hangRounds = true;
    await until(() => s.coord.phase === 'training' && b.rounds.length === 1, 'training started');
    // A joiner that falls silent while setting up (a CPU peer compiling kernels blocks its event loop).
    const joinedAt = Date.now();
    const joiner = await peer(s.url, 'joiner');
    joiner.silent = true;
    joiner.stopBeating();
    // And an active peer that falls silent at the same time.
    a.silent = true;
    const frozeAt = a.lastSentAt;
    await until(() => s.gone.length === 1, 'the silent active peer gone');
    expect(s.gone[0]).toMatchObject({ peerId: a.peerId, reason: expect.stringMatching(/timeout 250 ms while active/) });
    expect(s.gone[0].at - frozeAt).toBeGreaterThanOrEqual(250);
    await sleep(Math.max(0, frozeAt + 600 - Date.now()));
    expect(s.coord.progress().peers.find((p) => p.peerId === joiner.peerId)?.state).toBe('setup');
    await until(() => s.gone.length === 2, 'the silent joiner gone', 2000);
    expect(s.gone[1]).toMatchObject({ peerId: joiner.peerId, reason: expect.stringMatching(/^no message for \d+ ms \(timeout 900 ms while setup\)$/) });
    expect(s.gone[1].at - joinedAt).toBeGreaterThanOrEqual(900);
    expect(s.gone[1].at - joinedAt).toBeLessThan(1500);
    // b kept heartbeating: it is still there (the run is paused, waiting for a stage 0 peer).
    expect(s.coord.progress().peers.find((p) => p.peerId === b.peerId)?.state).toBe('active');
    expect(s.coord.phase).toBe('paused');
  });

  it('drops a peer that registers and only heartbeats (never ready) after readyTimeoutMs, and the stage it held goes to a real peer', async () => {
    const s = await serve({ run: makeRun({ steps: 2 }), readyTimeoutMs: 700 });
    const lurker = await peer(s.url, 'lurker');
    const placedAt = Date.now();
    // It heartbeats (ScriptedPeer beats every 40 ms) but never reports ready: the run waits for stage 0.
    await until(() => s.gone.length === 1, 'the lurker dropped', 3000);
    expect(s.gone[0]).toMatchObject({ peerId: lurker.peerId, reason: expect.stringMatching(/^not ready \d+ ms after it was placed \(limit 700 ms\)$/) });
    expect(s.gone[0].at - placedAt).toBeGreaterThanOrEqual(700);
    await until(() => lurker.inbox.closed !== undefined, 'the lurker cut off');
    const a = await peer(s.url, 'a', cap(), { autoReady: true });
    const b = await peer(s.url, 'b', cap(), { autoReady: true });
    expect([a.stage, b.stage].sort()).toEqual([0, 1]);
    await within(s.coord.trained, 'training over');
    expect(s.commits.map((c) => Object.keys(workOf(c)).sort())).toEqual([1, 2].map(() => [a.peerId, b.peerId].sort()));
  });
});

describe('coordinator: evidence in seals', () => {
  /** a on stage 0 and b on stage 1, training round 1; b holds its report back. */
  async function pair() {
    const s = await serve({ run: makeRun({ steps: 5 }) });
    const a = await peer(s.url, 'a', cap(), { autoReady: true });
    const b = await peer(s.url, 'b', cap(), { autoReady: true });
    b.hangRounds = true;
    await until(() => b.rounds.length === 1 && (wire.get(b.peerId) ?? []).length === 4, "round 1 under way, a's activations at b");
    return { s, a, b, round: b.rounds[0].round, fromA: wire.get(b.peerId)! };
  }
  const purgedOf = (s: Served) => s.gone.filter((g) => g.reason.startsWith('purged: '));

  it('purges a peer whose report cites a seal its sender never made; the honest sender is not blamed', async () => {
    const { s, a, b, round, fromA } = await pair();
    const forged = { ...fromA[0], sig: '0'.repeat(128) };
    b.send({ type: 'round-done', round, microbatches: 4, lossSum: 8, inputs: [forged, ...fromA.slice(1)] });
    await until(() => purgedOf(s).length === 1, 'b purged');
    expect(purgedOf(s)[0]).toMatchObject({
      peerId: b.peerId,
      reason: expect.stringMatching(/^purged: its report cites a seal p\d+-[0-9a-f]{6} never made \(kind 1, round \d+, microbatch 0\)$/),
    });
    expect(s.coord.control.peer(a.peerId)?.state).not.toBe('gone');
    await until(() => b.inbox.closed !== undefined, 'b cut off');
    expect(b.inbox.all).toContainEqual({ type: 'stop', reason: expect.stringMatching(/^purged from the run: /) });
    expect(s.aborted.map((x) => x.round)).toEqual([round]);
  });

  it('audits at the rate asked: each witness is sent the frames its neighbours proved, the round commits once they agree', async () => {
    const s = await serve({ run: makeRun({ steps: 3, minPerStage: 2 }), auditRate: 1 });
    const verifies: Array<ServerMessageOf<'verify'>> = [];
    const peers = await Promise.all(['a', 'b', 'c', 'd'].map((n) => peer(s.url, n, cap(), { autoReady: true })));
    for (const p of peers) p.client.on('verify', (m) => verifies.push(m));
    await within(s.coord.trained, 'training over');
    expect(s.commits.map((c) => c.step)).toEqual([1, 2, 3]);
    // Every routed peer was audited in every round, by the other replica of its stage.
    expect(verifies.length).toBe(3 * 4);
    for (const v of verifies) expect(Object.keys(v.frames).sort()).toEqual(s.coord.control.peer(v.peer)!.stage === 0 ? ['gIn', 'yOut'] : ['dxOut', 'xIn']);
    expect(s.logs.filter((l) => / audits .*'s microbatch /.test(l))).toHaveLength(12);
  });

  it('a frame shown with its sender’s seal purges the sender when it is plainly defective (NaN, wrong shape, all zero); a fine one proves nothing; a seal of other bytes purges the one showing it', async () => {
    const run = makeRun();
    const rows = run.model.batch * run.model.seq;
    const good = (round: number, fill = 0.5) =>
      encodeFrame({ kind: FrameKind.Activation, tag: round, microbatch: 1, rows, cols: 16, dtype: 'fp16', tensor: new Float32Array(rows * 16).fill(fill) });
    const withNaN = (round: number) => {
      const f = good(round);
      new DataView(f.buffer).setUint16(40, 0x7e00, true);
      return f;
    };
    const show = async (t: Awaited<ReturnType<typeof pair>>, frame: Uint8Array, sealedFrame = frame) => {
      const { seal: sl } = await seal(sealedFrame, t.a.key!, t.a.peerId, t.b.peerId);
      t.b.send({ type: 'evidence', seal: sl, frame: Buffer.from(frame).toString('base64') });
    };
    for (const [what, frame] of [
      ['NaN', (r: number) => withNaN(r)],
      ['wrong shape', (r: number) => encodeFrame({ kind: FrameKind.Activation, tag: r, microbatch: 1, rows: 1, cols: 1, dtype: 'fp16', tensor: Float32Array.of(1) })],
      ['all zero', (r: number) => good(r, 0)],
    ] as const) {
      const t = await pair();
      await show(t, frame(t.round));
      await until(() => purgedOf(t.s).length === 1, `a purged for a ${what} frame`);
      expect(purgedOf(t.s)[0]).toMatchObject({
        peerId: t.a.peerId,
        reason: expect.stringMatching(new RegExp(`^purged: sent ${t.b.peerId} a defective frame \\(round \\d+, microbatch 1\\): `)),
      });
      expect(t.s.coord.control.peer(t.b.peerId)?.state).not.toBe('gone');
    }
    const fine = await pair();
    await show(fine, good(fine.round));
    await until(() => fine.s.logs.some((l) => l.includes('with nothing plainly wrong with it')), 'the unproven claim logged');
    expect(purgedOf(fine.s)).toEqual([]);
    // An honest sender's evaluation frame shown as evidence: receivers never show one, so it frames nobody but the one showing it.
    const framer = await pair();
    const evalFrame = encodeFrame({
      kind: FrameKind.EvalActivation,
      tag: framer.round,
      microbatch: 0,
      rows,
      cols: 16,
      dtype: 'fp16',
      tensor: new Float32Array(rows * 16).fill(0.5),
    });
    await show(framer, evalFrame);
    await until(() => purgedOf(framer.s).length === 1, 'the framer purged');
    expect(purgedOf(framer.s)[0]).toMatchObject({ peerId: framer.b.peerId, reason: 'purged: it showed a frame of kind 3 as evidence: only training frames are ever shown' });
    expect(framer.s.coord.control.peer(framer.a.peerId)?.state).not.toBe('gone');
    const liar = await pair();
    await show(liar, withNaN(liar.round), good(liar.round));
    await until(() => purgedOf(liar.s).length === 1, 'the liar purged');
    expect(purgedOf(liar.s)[0]).toMatchObject({ peerId: liar.b.peerId, reason: 'purged: the frame it showed is not the one the seal it cites vouches for' });
  });

  it('purges a sender that sealed two different frames for one slot; a false claim of it purges the claimant', async () => {
    const { s, a, b, round } = await pair();
    const twoFrames = await Promise.all(
      [1, 2].map(
        async (v) =>
          (
            await seal(
              encodeFrame({ kind: FrameKind.Activation, tag: round, microbatch: 0, rows: 1, cols: 1, dtype: 'fp32', tensor: Float32Array.of(v) }),
              a.key!,
              a.peerId,
              b.peerId,
            )
          ).seal,
      ),
    );
    b.send({ type: 'equivocation', seals: [twoFrames[0], twoFrames[1]] });
    await until(() => purgedOf(s).length === 1, 'a purged');
    expect(purgedOf(s)[0]).toMatchObject({ peerId: a.peerId, reason: `purged: sealed two different frames for round ${round} microbatch 0 (kind 1) to ${b.peerId}` });
    expect(s.coord.control.peer(b.peerId)?.state).not.toBe('gone');

    const t = await pair();
    const [x, y] = t.fromA;
    t.b.send({ type: 'equivocation', seals: [x, y] });
    await until(() => purgedOf(t.s).length === 1, 'the false claimant purged');
    expect(purgedOf(t.s)[0]).toMatchObject({ peerId: t.b.peerId, reason: 'purged: its equivocation claim names two seals of different slots, or one frame twice' });
  });

  it('purges a sender shown to have sent one payload as two pieces of work (a replay); the same work twice proves nothing; frames the seals do not vouch for purge the one showing them', async () => {
    const run = makeRun();
    const rows = run.model.batch * run.model.seq;
    const frame = (round: number, mb: number) =>
      encodeFrame({ kind: FrameKind.Activation, tag: round, microbatch: mb, rows, cols: 16, dtype: 'fp16', tensor: new Float32Array(rows * 16).map((_, i) => Math.sin(i)) });
    const showReplay = async (t: Awaited<ReturnType<typeof pair>>, earlier: Uint8Array, later: Uint8Array, shownHeader = later) => {
      const e = await seal(earlier, t.a.key!, t.a.peerId, t.b.peerId);
      const l = await seal(later, t.a.key!, t.a.peerId, t.b.peerId);
      const b64 = (x: Uint8Array) => Buffer.from(x).toString('base64');
      t.b.send({ type: 'evidence', seal: l.seal, frame: b64(earlier), replay: { of: e.seal, header: b64(shownHeader.subarray(0, 32)) } });
    };
    const t = await pair();
    await showReplay(t, frame(t.round, 1), frame(t.round, 2));
    await until(() => purgedOf(t.s).length === 1, 'the replayer purged');
    expect(purgedOf(t.s)[0]).toMatchObject({
      peerId: t.a.peerId,
      reason: `purged: sent ${t.b.peerId} the payload of its round ${t.round} microbatch 1 again as round ${t.round} microbatch 2 (a replay)`,
    });
    expect(t.s.coord.control.peer(t.b.peerId)?.state).not.toBe('gone');

    const same = await pair();
    await showReplay(same, frame(same.round, 1), frame(same.round, 1));
    await until(() => same.s.logs.some((l) => l.includes('as a replay that prove none')), 'the unproven claim logged');
    expect(purgedOf(same.s)).toEqual([]);

    const liar = await pair();
    await showReplay(liar, frame(liar.round, 1), frame(liar.round, 2), frame(liar.round, 3));
    await until(() => purgedOf(liar.s).length === 1, 'the liar purged');
    expect(purgedOf(liar.s)[0]).toMatchObject({ peerId: liar.b.peerId, reason: 'purged: the frames it showed as a replay are not those the seals it cites vouch for' });
  });
});

describe('coordinator: serving inference', () => {
  /** The chain's side, in memory: spends with their prompts; `served` records receipts. */
  function memoryDesk(spends: Record<string, string>, checkDelayMs: Record<string, number> = {}) {
    const receipts: Array<[string, string]> = [];
    const checked: string[] = [];
    const desk: InferenceDesk = {
      temperature: 0.5,
      async check(spendId, prompt) {
        checked.push(spendId);
        await sleep(checkDelayMs[spendId] ?? 0);
        if (!(spendId in spends)) return `spend ${spendId} does not exist on chain`;
        if (receipts.some(([id]) => id === spendId)) return `spend ${spendId} was already served`;
        if (spends[spendId] !== prompt) return `the prompt does not match the hash spend ${spendId} committed to on chain`;
        return undefined;
      },
      async served(spendId, answerHash) {
        receipts.push([spendId, answerHash]);
      },
    };
    return { desk, receipts, checked };
  }

  /** Two stages × two peers, trained for 2 steps, serving. */
  async function servingSwarm(desk: InferenceDesk, opts: Partial<CoordinatorOptions> = {}) {
    const s = await serve({ run: makeRun({ steps: 2, minPerStage: 2, serve: true }), inference: desk, ...opts });
    const peers = [await peer(s.url, 'a'), await peer(s.url, 'b'), await peer(s.url, 'c'), await peer(s.url, 'd')];
    await until(() => peers.every((p) => p.stage >= 0), 'all assigned');
    const buyer = await rawSocket(s.url);
    const ask = (spendId: string, prompt: string, maxTokens = 8) => buyer.send({ type: 'infer', spendId, prompt, maxTokens });
    // Not trained yet: refused with the reason.
    ask('1', 'early');
    expect((await buyer.inbox.take('error')).message).toMatch(/^the swarm cannot serve now: the run is waiting \(.+\); try again once it trains$/);
    for (const p of peers) p.ready();
    await within(s.coord.trained, 'training over');
    expect(s.coord.phase).toBe('serving');
    expect(peers.some((p) => p.inbox.count('stop') > 0)).toBe(false);
    const byId = (id: string) => peers.find((p) => p.peerId === id)!;
    /** The next generate sent to stage 0 of a path (every peer of the path gets the same one). */
    const nextGenerate = async (): Promise<ServerMessageOf<'generate'>> => {
      await until(() => peers.some((p) => p.inbox.count('generate') > 0), 'a generate');
      const g = peers.find((p) => p.inbox.count('generate') > 0)!.inbox.msgs.find((m) => m.type === 'generate') as ServerMessageOf<'generate'>;
      for (const id of g.path) expect(await byId(id).inbox.take('generate')).toEqual(g);
      expect(peers.filter((p) => !g.path.includes(p.peerId)).every((p) => p.inbox.count('generate') === 0)).toBe(true);
      return g;
    };
    return { s, peers, buyer, ask, byId, nextGenerate };
  }

  it('checks the spend, routes it down one path, takes the answer from stage 0 only and receipts its hash', async () => {
    const { desk, receipts, checked } = memoryDesk({ '7': 'hello', '8': 'right' });
    const { s, buyer, ask, byId, nextGenerate } = await servingSwarm(desk);

    ask('7', 'hello', 5);
    const g = await nextGenerate();
    expect(g).toMatchObject({ prompt: 'hello', maxTokens: 5, temperature: 0.5, seed: 7 });
    expect(g.path.map((id) => byId(id).stage)).toEqual([0, 1]);
    const answer = await buyer.inbox.take('answer');
    const text = ` hello answered by ${byId(g.path[0]).name}`;
    expect(answer).toEqual({ type: 'answer', spendId: '7', text, answerHash: keccak256(toHex(text)) });
    expect(receipts).toEqual([['7', keccak256(toHex(text))]]);

    // The desk refuses: a served spend, a prompt the spend did not commit to, an unknown spend.
    ask('7', 'hello');
    expect((await buyer.inbox.take('error')).message).toBe('spend 7 was already served');
    ask('8', 'wrong');
    expect((await buyer.inbox.take('error')).message).toBe('the prompt does not match the hash spend 8 committed to on chain');
    ask('9', 'x');
    expect(await buyer.inbox.take('error')).toEqual({ type: 'error', message: 'spend 9 does not exist on chain', ref: 'spend 9' });
    expect(checked).toEqual(['7', '7', '8', '9']);
    expect(receipts).toHaveLength(1);
    expect(s.coord.stats.binaryBytesReceived).toBe(0);
  });

  it('serves a spend while the swarm trains, and training goes on', async () => {
    const { desk, receipts } = memoryDesk({ '3': 'mid-run' });
    const s = await serve({ run: makeRun({ steps: 100_000, minPerStage: 2, serve: true }), inference: desk });
    const peers = [await peer(s.url, 'a'), await peer(s.url, 'b'), await peer(s.url, 'c'), await peer(s.url, 'd')];
    await until(() => peers.every((p) => p.stage >= 0), 'all assigned');
    for (const p of peers) p.ready();
    await until(() => s.coord.phase === 'training' && s.coord.control.step > 0, 'training');
    const buyer = await rawSocket(s.url);
    buyer.send({ type: 'infer', spendId: '3', prompt: 'mid-run', maxTokens: 4 });
    const answer = await buyer.inbox.take('answer');
    expect(answer.text).toMatch(/^ mid-run answered by [abcd]$/);
    expect(receipts.map(([id]) => id)).toEqual(['3']);
    const step = s.coord.control.step;
    await until(() => s.coord.control.step > step, 'a step after the answer');
    expect(s.coord.phase).toBe('training');
  });

  it('refuses a generated from a peer that is not stage 0 of the path, and one for another request', async () => {
    const { desk, receipts } = memoryDesk({ '5': 'prompt' });
    const { peers, buyer, ask, byId, nextGenerate } = await servingSwarm(desk);
    for (const p of peers) p.replyToGenerate = () => 'hang';
    ask('5', 'prompt');
    const g = await nextGenerate();
    const [head, tail] = g.path.map(byId);
    tail.send({ type: 'generated', requestId: g.requestId, text: 'forged' });
    const forged = await tail.inbox.take('error');
    expect(forged).toEqual({
      type: 'error',
      message: `unexpected generated for request ${g.requestId}: only stage 0 of the request's path answers, and only what was asked`,
      ref: 'generated',
    });
    const other = peers.find((p) => p.stage === 0 && p !== head)!;
    other.send({ type: 'generated', requestId: g.requestId, text: 'forged' });
    expect((await other.inbox.take('error')).ref).toBe('generated');
    head.send({ type: 'generated', requestId: g.requestId + 1, text: 'stray' });
    expect((await head.inbox.take('error')).message).toMatch(/^unexpected generated for request/);
    await sleep(20);
    expect(buyer.inbox.count('answer')).toBe(0);
    // The real answer still goes through.
    head.send({ type: 'generated', requestId: g.requestId, text: 'genuine' });
    expect((await buyer.inbox.take('answer')).text).toBe('genuine');
    expect(receipts.map(([id]) => id)).toEqual(['5']);
  });

  it('retries on another path when a peer of the path is lost mid-generation, without waiting out the attempt timeout', async () => {
    const { desk, receipts } = memoryDesk({ '11': 'retry me' });
    const generateTimeoutMs = 3000;
    const { s, peers, buyer, ask, byId, nextGenerate } = await servingSwarm(desk, { generateTimeoutMs });
    const answering = new Map(peers.map((p) => [p, p.replyToGenerate]));
    for (const p of peers) p.replyToGenerate = () => 'hang';
    const t0 = Date.now();
    ask('11', 'retry me');
    const first = await nextGenerate();
    const tail1 = byId(first.path[1]);
    // Stage 0 is generating (it waits on stage 1's tokens) when stage 1's process dies; a real
    // stage 0 then aborts its side of the request and can serve the retry.
    for (const p of peers) if (p !== tail1) p.replyToGenerate = answering.get(p)!;
    // Its first three tokens reached the buyer before the peer died.
    byId(first.path[0]).send({ type: 'generating', requestId: first.requestId, from: 0, text: 'abc' });
    expect((await buyer.inbox.take('answer-part')).text).toBe('abc');
    tail1.kill();
    const second = await nextGenerate();
    expect(second.requestId).toBeGreaterThan(first.requestId);
    // Only the gone peer is avoided, and the new path continues after the tokens already sent.
    expect(second.path).not.toContain(tail1.peerId);
    expect([second.resume, second.maxTokens]).toEqual(['abc', first.maxTokens - 3]);
    // A part the retry repeats reaches the buyer once: only what is new.
    byId(second.path[0]).send({ type: 'generating', requestId: second.requestId, from: 2, text: 'cde' });
    expect(await buyer.inbox.take('answer-part')).toMatchObject({ from: 3, text: 'de' });
    const answer = await buyer.inbox.take('answer');
    const elapsed = Date.now() - t0;
    expect(answer.text).toBe(`abc retry me answered by ${byId(second.path[0]).name}`);
    expect(elapsed).toBeLessThan(generateTimeoutMs / 3);
    expect(receipts).toEqual([['11', answer.answerHash]]);
    expect(s.logs.some((l) => l.includes(`attempt 1 on ${first.path.join('→')} failed after 3 tokens: peer ${tail1.peerId} on the path is gone`))).toBe(true);
  });

  it('believes no more streamed text than was asked for, and starts again from the prompt when a path refuses to resume what a liar streamed', async () => {
    const { desk, receipts } = memoryDesk({ '12': 'lied to' });
    const { peers, buyer, ask, byId, nextGenerate } = await servingSwarm(desk);
    for (const p of peers) p.replyToGenerate = () => 'hang';
    ask('12', 'lied to', 4);
    const first = await nextGenerate();
    // Stage 0 streams three characters, one of them no token of the model; then it dies.
    byId(first.path[0]).send({ type: 'generating', requestId: first.requestId, from: 0, text: 'ab☠' });
    expect((await buyer.inbox.take('answer-part')).text).toBe('ab☠');
    byId(first.path[0]).kill();
    const second = await nextGenerate();
    expect([second.resume, second.maxTokens]).toEqual(['ab☠', 1]);
    // Three more characters for the one token left: only one is passed on.
    byId(second.path[0]).send({ type: 'generating', requestId: second.requestId, from: 3, text: 'xyz' });
    expect(await buyer.inbox.take('answer-part')).toMatchObject({ from: 3, text: 'x' });
    byId(second.path[0]).send({ type: 'generated', requestId: second.requestId, error: 'the model has no token for "☠"', refused: true });
    const third = await nextGenerate();
    expect([third.resume, third.maxTokens]).toEqual([undefined, 4]);
    byId(third.path[0]).send({ type: 'generated', requestId: third.requestId, text: 'good' });
    expect((await buyer.inbox.take('answer')).text).toBe('good');
    expect(receipts.map(([id]) => id)).toEqual(['12']);
  });

  it('asks a path again re-forwarding windows when one of its stages keeps no KV cache, and only once', async () => {
    const { desk, receipts } = memoryDesk({ '31': 'hi', '32': 'hi' });
    const { peers, buyer, ask, byId, nextGenerate } = await servingSwarm(desk);
    for (const p of peers) p.replyToGenerate = () => 'hang';
    ask('31', 'hi');
    const first = await nextGenerate();
    expect(first.recompute).toBeUndefined();
    byId(first.path[0]).send({ type: 'generated', requestId: first.requestId, error: 'request 1 asks for a KV cache and this stage keeps none', uncached: true });
    const second = await nextGenerate();
    expect([second.path, second.recompute]).toEqual([first.path, true]);
    byId(second.path[0]).send({ type: 'generated', requestId: second.requestId, text: 'ok' });
    expect((await buyer.inbox.take('answer')).text).toBe('ok');
    expect(receipts.map(([id]) => id)).toEqual(['31']);
    // A path that says so again while re-forwarding (a liar) is avoided like any failed one.
    ask('32', 'hi');
    const third = await nextGenerate();
    byId(third.path[0]).send({ type: 'generated', requestId: third.requestId, error: 'no cache', uncached: true });
    const fourth = await nextGenerate();
    expect(fourth.path).toEqual(third.path);
    byId(fourth.path[0]).send({ type: 'generated', requestId: fourth.requestId, error: 'no cache', uncached: true });
    const fifth = await nextGenerate();
    expect(fifth.path.some((id) => third.path.includes(id))).toBe(false);
    expect(fifth.recompute).toBeUndefined();
  });

  it('retries a path whose stage 0 errs or does not answer in time, but not a refused request', async () => {
    const { desk, receipts } = memoryDesk({ '21': 'p', '22': 'p', '23': 'p' });
    const generateTimeoutMs = 250;
    const { peers, buyer, ask, nextGenerate } = await servingSwarm(desk, { generateTimeoutMs });

    // An error: retried on the other path, answered.
    for (const p of peers) p.replyToGenerate = () => ({ error: 'NaN logits' });
    ask('21', 'p');
    const g1 = await nextGenerate();
    const g2 = await nextGenerate();
    expect(g2.path.some((id) => g1.path.includes(id))).toBe(false);
    // Both paths failed: the buyer is told what happened on each.
    const failed = await buyer.inbox.take('error');
    expect(failed.message).toBe(
      `generation failed: path ${g1.path.join('→')}: NaN logits; path ${g2.path.join('→')}: NaN logits; no complete path avoiding ${[...g1.path, ...g2.path].join(', ')} (trained: serving inference)`,
    );
    expect(failed.ref).toBe('spend 21');

    // No answer within the attempt timeout: retried on the other path.
    // (Paths are drawn at random: whichever stage 0 is asked first hangs, the next answers.)
    let asked = 0;
    for (const p of peers) p.replyToGenerate = (m) => (asked++ === 0 ? 'hang' : { text: `late ${m.requestId}` });
    const t0 = Date.now();
    ask('22', 'p');
    const h1 = await nextGenerate();
    const h2 = await nextGenerate();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(generateTimeoutMs - 10);
    expect(h2.path.some((id) => h1.path.includes(id))).toBe(false);
    expect((await buyer.inbox.take('answer')).text).toBe(`late ${h2.requestId}`);

    // A refused request (e.g. a character the model has no token for) fails at once: no other path is tried.
    for (const p of peers) p.replyToGenerate = () => ({ error: 'the prompt has a character the model has no token for', refused: true });
    ask('23', 'p');
    const r1 = await nextGenerate();
    const refused = await buyer.inbox.take('error');
    expect(refused.message).toBe(`generation failed: path ${r1.path.join('→')}: the prompt has a character the model has no token for`);
    await sleep(50);
    expect(peers.every((p) => p.inbox.count('generate') === 0)).toBe(true);
    expect(receipts.map(([id]) => id)).toEqual(['22']);
  });

  it('when the run is stopped, ends every query under way with the reason, and refuses new ones', async () => {
    const { desk, receipts, checked } = memoryDesk({ '41': 'a', '42': 'b' });
    const { s, peers, buyer, ask, nextGenerate } = await servingSwarm(desk);
    for (const p of peers) p.replyToGenerate = () => 'hang';
    ask('41', 'a');
    await nextGenerate();
    ask('42', 'b');
    await until(() => checked.length === 2, 'spend 42 checked');
    s.coord.stopRun('the operator ended serving');
    for (let i = 0; i < 2; i++) expect((await buyer.inbox.take('error')).message).toMatch(/^generation failed: path .*: the swarm stopped serving$/);
    for (const p of peers) expect((await p.inbox.take('stop')).reason).toBe('the operator ended serving');
    expect(s.coord.phase).toBe('finished');
    ask('43', 'c');
    expect((await buyer.inbox.take('error')).message).toBe('the run is finished: this swarm no longer serves inference');
    expect(receipts).toEqual([]);
  });

  it('serves spends at once up to its cap, streams stage 0’s text to each buyer, and tells a buyer beyond the cap when to retry', async () => {
    const { desk, receipts } = memoryDesk({ '31': 'one', '32': 'two', '33': 'three' });
    const { peers, buyer, ask } = await servingSwarm(desk, { serveConcurrency: 2 });
    for (const p of peers) p.replyToGenerate = () => 'hang';
    /** The generates sent so far, one per request (every peer of a path gets the same). */
    const generates = async (n: number) => {
      const sent = () => new Map(peers.flatMap((p) => p.inbox.msgs.filter((m) => m.type === 'generate') as ServerMessageOf<'generate'>[]).map((g) => [g.prompt, g]));
      await until(() => sent().size >= n, `${n} generates`);
      return sent();
    };
    const stage0 = (g: ServerMessageOf<'generate'>) => peers.find((p) => p.peerId === g.path[0])!;
    const other = await rawSocket(buyer.ws.url);
    ask('31', 'one');
    other.send({ type: 'infer', spendId: '32', prompt: 'two', maxTokens: 4 });
    // Both are generating before either is answered.
    const g = await generates(2);
    ask('33', 'three');
    expect((await buyer.inbox.take('error')).message).toBe('busy: the swarm is answering 2 spends, the most it serves at once; retry in about 30 s');
    // Stage 0's text reaches its buyer as it comes; a part from a peer that is not stage 0 is refused.
    stage0(g.get('one')!).send({ type: 'generating', requestId: g.get('one')!.requestId, from: 0, text: 're' });
    expect(await buyer.inbox.take('answer-part')).toEqual({ type: 'answer-part', spendId: '31', from: 0, text: 're' });
    const notStage0 = peers.find((p) => p.peerId === g.get('two')!.path[1])!;
    notStage0.send({ type: 'generating', requestId: g.get('two')!.requestId, from: 0, text: 'x' });
    expect((await notStage0.inbox.take('error')).message).toMatch(/^unexpected generating for request \d+: only stage 0/);
    stage0(g.get('two')!).send({ type: 'generated', requestId: g.get('two')!.requestId, text: 're two' });
    expect((await other.inbox.take('answer')).text).toBe('re two');
    stage0(g.get('one')!).send({ type: 'generated', requestId: g.get('one')!.requestId, text: 're one' });
    expect((await buyer.inbox.take('answer')).text).toBe('re one');
    expect(receipts.map(([id]) => id).sort()).toEqual(['31', '32']);
    expect(other.inbox.count('answer-part')).toBe(0);

    // A place is free again; the same spend twice at once: the second is refused while the first is served.
    ask('33', 'three');
    expect((await generates(3)).get('three')).toBeDefined();
    ask('33', 'three');
    expect((await buyer.inbox.take('error')).message).toBe('spend 33 is already being served');
  });
});
