// The coordinator against real sockets: a real server on 127.0.0.1 (ephemeral port), real `ws`
// clients through CoordinatorClient, raw `ws` sockets for frames the client would refuse to send.
// Plus unit tests of the stage assignment and the message schemas.
import { afterEach, describe, expect, it } from 'vitest';
import { keccak256, toHex } from 'viem';
import { WebSocket } from 'ws';
import { Coordinator, type CoordinatorOptions, type InferenceDesk } from '../coordinator/server.js';
import { type Assignment, areNeighbours, assignStages, neighbours, splitLayers } from '../shared/swarm/assignment.js';
import { CoordinatorClient, type WebSocketConstructor } from '../shared/swarm/coordinator-client.js';
import {
  type Capability,
  type RunConfig,
  type ServerMessage,
  type ServerMessageOf,
  type ServerMessageType,
  MAX_MESSAGE_BYTES,
  MAX_SIGNAL_DATA_BYTES,
  RunConfigSchema,
  encodeClientMessage,
  parseClientMessage,
  parseServerMessage,
  utf8Length,
} from '../shared/swarm/protocol.js';

// Both WebSocket implementations must fit the client's constructor type (checked by tsc).
const _nodeWs: WebSocketConstructor = WebSocket;
const _browserWs: WebSocketConstructor | undefined = (globalThis as { WebSocket?: typeof globalThis.WebSocket }).WebSocket;
void _nodeWs;
void _browserWs;

function makeRun(over: Partial<RunConfig> = {}): RunConfig {
  return {
    runId: 'test-run',
    model: { vocab: 65, dModel: 64, nHead: 4, nLayer: 4, seq: 32, batch: 8 },
    stages: 2,
    layersPerStage: [1, 3],
    microbatches: 2,
    steps: 10,
    seed: 1,
    data: { name: 'tinyshakespeare', sha256: '86c4e6aa'.padEnd(64, '0'), chars: 1115394 },
    codec: { kind: 'subspace', k: 16, coeff: 'fp16' },
    optimizer: { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1, warmup: 2 },
    averageEvery: 5,
    evalEvery: 5,
    evalBatches: 2,
    ...over,
  };
}

const cap = (gflops: number, maxLayers = 8): Capability => ({ adapter: 'test', kind: 'cpu', gflops, memoryBytes: 1e9, maxLayers });

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const SERVER_TYPES: ServerMessageType[] = ['welcome', 'assign', 'signal', 'start', 'peer-lost', 'stop', 'error', 'generate', 'answer'];

/** Everything a peer received, in order; `take` removes and returns the first message of a type. */
class Inbox {
  msgs: ServerMessage[] = [];
  closed?: number;
  count(type: ServerMessageType): number {
    return this.msgs.filter((m) => m.type === type).length;
  }
  async take<T extends ServerMessageType>(type: T, timeoutMs = 5000): Promise<ServerMessageOf<T>> {
    await until(() => this.msgs.some((m) => m.type === type), `a ${type} message`, timeoutMs);
    const i = this.msgs.findIndex((m) => m.type === type);
    return this.msgs.splice(i, 1)[0] as ServerMessageOf<T>;
  }
}

interface TestPeer {
  name: string;
  client: CoordinatorClient;
  peerId: string;
  inbox: Inbox;
}

let coordinators: Coordinator[] = [];
let sockets: { close(): void }[] = [];

afterEach(async () => {
  for (const s of sockets) s.close();
  sockets = [];
  await Promise.all(coordinators.map((c) => c.close()));
  coordinators = [];
});

async function serve(opts: Partial<CoordinatorOptions> & { workers: number }): Promise<{ coord: Coordinator; url: string; logs: string[] }> {
  const logs: string[] = [];
  const coord = new Coordinator({ run: makeRun(), log: (l) => logs.push(l), ...opts });
  coordinators.push(coord);
  const port = await coord.listen(0);
  return { coord, url: `ws://127.0.0.1:${port}`, logs };
}

async function join(url: string, name: string, capability: Capability): Promise<TestPeer> {
  const client = new CoordinatorClient(url, WebSocket);
  sockets.push(client);
  const inbox = new Inbox();
  for (const t of SERVER_TYPES) client.on(t, (m) => inbox.msgs.push(m));
  client.on('close', (e) => (inbox.closed = e.code));
  const { peerId } = await client.connect({ name, capability });
  return { name, client, peerId, inbox };
}

/** A raw socket for frames CoordinatorClient would refuse to send. */
async function rawSocket(url: string): Promise<{ ws: WebSocket; inbox: Inbox }> {
  const ws = new WebSocket(url);
  sockets.push(ws);
  const inbox = new Inbox();
  ws.on('message', (data) => {
    const p = parseServerMessage(String(data));
    if (!p.ok) throw new Error(`server sent an invalid message: ${p.error}`);
    inbox.msgs.push(p.msg);
  });
  ws.on('close', (code) => (inbox.closed = code));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, inbox };
}

function heartbeat(step: number, extra: Record<string, number> = {}) {
  return { type: 'heartbeat' as const, step, bytesSent: 100 * step, bytesReceived: 50 * step, ...extra };
}

// ---------------------------------------------------------------------------------------------

describe('coordinator: full flow, 4 workers over 2 stages', () => {
  it('welcomes, assigns, relays signals between neighbours only, starts, tracks progress and finishes', async () => {
    const { coord, url } = await serve({ workers: 4 });
    const events: string[] = [];
    coord.on('assign', () => events.push('assign'));
    coord.on('start', () => events.push('start'));
    coord.on('done', () => events.push('done'));

    // layersPerStage [1, 3]: stage 1 (3 layers + head) outweighs stage 0 (1 layer + embedding),
    // so the two fastest peers go to stage 1.
    const a = await join(url, 'alpha', cap(40));
    const b = await join(url, 'bravo', cap(30));
    const c = await join(url, 'charlie', cap(20));
    expect(coord.stats.peers.registered).toBe(3);
    expect(a.inbox.count('assign')).toBe(0);
    const d = await join(url, 'delta', cap(10));
    const all = [a, b, c, d];
    expect(new Set(all.map((p) => p.peerId)).size).toBe(4);

    const assigns = await Promise.all(all.map((p) => p.inbox.take('assign')));
    const where = (p: TestPeer) => assigns[all.indexOf(p)];
    expect([where(a).stage, where(a).replica]).toEqual([1, 0]);
    expect([where(b).stage, where(b).replica]).toEqual([1, 1]);
    expect([where(c).stage, where(c).replica]).toEqual([0, 0]);
    expect([where(d).stage, where(d).replica]).toEqual([0, 1]);
    for (const m of assigns) {
      expect(m.run).toEqual(makeRun());
      expect(m.peers).toHaveLength(4);
      expect(m.peers).toContainEqual({ peerId: a.peerId, stage: 1, replica: 0, name: 'alpha' });
      expect(m.peers).toContainEqual({ peerId: d.peerId, stage: 0, replica: 1, name: 'delta' });
    }

    // Lane 0 is c → a, lane 1 is d → b. c may signal a (next stage, same lane) and d (its replica).
    const offer = { sdp: 'v=0 offer', candidates: [{ candidate: 'a=1', sdpMLineIndex: 0 }] };
    expect(c.client.send({ type: 'signal', to: a.peerId, data: offer })).toBe(true);
    const got = await a.inbox.take('signal');
    expect(got).toEqual({ type: 'signal', from: c.peerId, data: offer });
    c.client.send({ type: 'signal', to: d.peerId, data: { hello: 'replica' } });
    expect((await d.inbox.take('signal')).from).toBe(c.peerId);
    a.client.send({ type: 'signal', to: c.peerId, data: { answer: true } });
    expect((await c.inbox.take('signal')).data).toEqual({ answer: true });

    // b is stage 1 replica 1: another lane's next stage, not c's neighbour.
    c.client.send({ type: 'signal', to: b.peerId, data: offer });
    const refused = await c.inbox.take('error');
    expect(refused.message).toMatch(/is not a neighbour/);
    expect(refused.ref).toBe('signal');
    c.client.send({ type: 'signal', to: 'p999-nobody', data: 1 });
    expect((await c.inbox.take('error')).message).toMatch(/unknown peer p999-nobody/);
    expect(b.inbox.count('signal')).toBe(0);

    // Start only once everyone is ready.
    for (const p of [a, b, c]) p.client.send({ type: 'ready' });
    await until(() => coord.stats.peers.ready === 3, 'three ready peers');
    expect(coord.currentPhase).toBe('assigned');
    expect(all.some((p) => p.inbox.count('start') > 0)).toBe(false);
    d.client.send({ type: 'ready' });
    await Promise.all(all.map((p) => p.inbox.take('start')));
    expect(coord.currentPhase).toBe('running');

    // Heartbeats: stage 1 reports the loss, stage 0 the tokens it feeds in.
    a.client.send(heartbeat(3, { loss: 4.1, tokensPerSec: 900, busyFraction: 0.8 }));
    b.client.send(heartbeat(2, { loss: 4.3, valLoss: 4.4, tokensPerSec: 800 }));
    c.client.send(heartbeat(3, { tokensPerSec: 100 }));
    d.client.send(heartbeat(3, { tokensPerSec: 50 }));
    await until(() => coord.progress().peers.every((p) => p.bytesSent > 0), 'heartbeats in progress()');
    const prog = coord.progress();
    expect(prog.phase).toBe('running');
    expect(prog.step).toBe(2);
    expect(prog.steps).toBe(10);
    expect(prog.loss).toBeCloseTo(4.2, 10);
    expect(prog.valLoss).toBeCloseTo(4.4, 10);
    expect(prog.tokensPerSec).toBe(150);
    const pa = prog.peers.find((p) => p.peerId === a.peerId)!;
    expect(pa).toMatchObject({ name: 'alpha', stage: 1, replica: 0, status: 'ready', step: 3, loss: 4.1, busyFraction: 0.8, bytesSent: 300, bytesReceived: 150 });
    expect(prog.peers.map((p) => p.stage)).toEqual([0, 0, 1, 1]);

    // Done from everyone resolves `finished` with every payload; peers are told the run is over.
    for (const [i, p] of all.entries()) p.client.send({ type: 'done', finalValLoss: i < 2 ? 3.9 : undefined, stats: { steps: 10, i } });
    const report = await coord.finished;
    expect(report).toHaveLength(4);
    expect(report.find((r) => r.peerId === b.peerId)).toEqual({ peerId: b.peerId, name: 'bravo', stage: 1, replica: 1, finalValLoss: 3.9, stats: { steps: 10, i: 1 } });
    expect(report.find((r) => r.peerId === c.peerId)?.finalValLoss).toBeUndefined();
    for (const p of all) expect((await p.inbox.take('stop')).reason).toBe('run complete');
    expect(coord.currentPhase).toBe('finished');
    expect(events).toEqual(['assign', 'start', 'done']);
    expect(coord.stats.badMessages).toBe(2);
    expect(all.some((p) => p.inbox.count('peer-lost') > 0)).toBe(false);

    // Peers that finished may leave without being reported lost.
    for (const p of all) p.client.close();
    await until(() => coord.stats.connections === 0, 'all sockets closed');
    expect(coord.stats.peers.lost).toBe(0);
  });
});

describe('coordinator: serving inference after training', () => {
  it('checks each spend with the desk, routes it to lane 0, takes the answer from stage 0 only and receipts it', async () => {
    // The desk is the chain's port (tested against the real EVM in contracts.test.ts); here it
    // records what the coordinator asks of it.
    const served: Array<[string, string]> = [];
    const desk: InferenceDesk = {
      temperature: 0.5,
      async check(spendId, prompt) {
        if (served.some(([id]) => id === spendId)) return `spend ${spendId} was already served`;
        return prompt === 'wrong' ? 'the prompt does not match' : undefined;
      },
      async served(spendId, answerHash) {
        served.push([spendId, answerHash]);
      },
    };
    const { coord, url } = await serve({ workers: 4, run: makeRun({ serve: true }), inference: desk });
    const peers = [await join(url, 'a', cap(40)), await join(url, 'b', cap(30)), await join(url, 'c', cap(20)), await join(url, 'd', cap(10))];
    const assigns = await Promise.all(peers.map((p) => p.inbox.take('assign')));
    const at = (stage: number, replica: number) => peers[assigns.findIndex((m) => m.stage === stage && m.replica === replica)];
    const buyer = await rawSocket(url);
    const ask = (spendId: string, prompt: string) => buyer.ws.send(JSON.stringify({ type: 'infer', spendId, prompt, maxTokens: 3 }));

    ask('7', 'hello');
    expect((await buyer.inbox.take('error')).message).toMatch(/not trained yet/);
    for (const p of peers) p.client.send({ type: 'ready' });
    await Promise.all(peers.map((p) => p.inbox.take('start')));
    for (const p of peers) p.client.send({ type: 'done', stats: {} });
    await coord.finished;
    expect(coord.currentPhase).toBe('serving');
    expect(peers.some((p) => p.inbox.count('stop') > 0)).toBe(false);

    ask('7', 'hello');
    const g0 = await at(0, 0).inbox.take('generate');
    const g1 = await at(1, 0).inbox.take('generate');
    expect(g1).toEqual(g0);
    expect(g0).toMatchObject({ prompt: 'hello', maxTokens: 3, temperature: 0.5 });
    expect(at(0, 1).inbox.count('generate') + at(1, 1).inbox.count('generate')).toBe(0);
    // Only stage 0 of lane 0 may answer, and only the request it was given.
    at(1, 0).client.send({ type: 'generated', requestId: g0.requestId, text: 'forged' });
    expect((await at(1, 0).inbox.take('error')).message).toMatch(/only stage 0 of lane 0 answers/);
    at(0, 0).client.send({ type: 'generated', requestId: g0.requestId + 1, text: 'stray' });
    expect((await at(0, 0).inbox.take('error')).message).toMatch(/unexpected generated/);
    at(0, 0).client.send({ type: 'generated', requestId: g0.requestId, text: ' world' });
    const answer = await buyer.inbox.take('answer');
    expect(answer).toEqual({ type: 'answer', spendId: '7', text: ' world', answerHash: keccak256(toHex(' world')) });
    expect(served).toEqual([['7', keccak256(toHex(' world'))]]);

    // A spend served once is refused; a prompt the spend did not commit to is refused; both reach the buyer.
    ask('7', 'hello');
    expect((await buyer.inbox.take('error')).message).toMatch(/already served/);
    ask('8', 'wrong');
    expect((await buyer.inbox.take('error')).message).toMatch(/does not match/);
    buyer.ws.send(JSON.stringify({ type: 'infer', spendId: '-1', prompt: 'x', maxTokens: 3 }));
    expect((await buyer.inbox.take('error')).message).toMatch(/spendId/);
    // A failed generation is reported, not receipted.
    ask('9', 'again');
    const g2 = await at(0, 0).inbox.take('generate');
    at(0, 0).client.send({ type: 'generated', requestId: g2.requestId, error: 'NaN logits' });
    expect((await buyer.inbox.take('error')).message).toMatch(/generation failed: NaN logits/);
    expect(served).toHaveLength(1);

    coord.stopServing();
    for (const p of peers) expect((await p.inbox.take('stop')).reason).toBe('run complete');
    expect(coord.currentPhase).toBe('finished');
  });
});

describe('coordinator: bad input never crashes it', () => {
  it('answers every malformed frame with a clear error, counts it and keeps the connection open', async () => {
    const { coord, url } = await serve({ workers: 2 });
    const { ws, inbox } = await rawSocket(url);
    const expectError = async (frame: string | Buffer, pattern: RegExp, binary = false): Promise<void> => {
      ws.send(frame, { binary });
      const e = await inbox.take('error');
      expect(e.message).toMatch(pattern);
    };

    await expectError('{"type": "register", ', /not valid JSON/);
    await expectError('[1,2,3]', /must be a JSON object/);
    await expectError('{"name": "x"}', /no string "type" field/);
    await expectError('{"type": "dance"}', /unknown client message type "dance" \(expected one of register, signal, ready, heartbeat, done, generated, infer\)/);
    await expectError(JSON.stringify({ type: 'heartbeat', step: 'three', bytesSent: 0, bytesReceived: 0 }), /invalid heartbeat message: heartbeat\.step: .*expected number/);
    await expectError(JSON.stringify({ type: 'register', name: 'x', capability: { ...cap(1), gflops: -1 } }), /invalid register message: register\.capability\.gflops/);
    await expectError(JSON.stringify({ type: 'ready', extra: 1 }), /invalid ready message: .*extra/);
    await expectError(JSON.stringify({ type: 'signal', to: 'p1', data: 'x'.repeat(MAX_SIGNAL_DATA_BYTES) }), /signal\.data: is \d+ bytes, above the 49152-byte cap/);
    await expectError('x'.repeat(MAX_MESSAGE_BYTES + 1), /65537 bytes, above the 65536-byte limit/);
    await expectError(Buffer.alloc(1000, 7), /binary frames are not accepted \(got 1000 bytes\)/, true);
    // Well-formed but out of order: nothing but register before registering.
    await expectError(JSON.stringify({ type: 'ready' }), /send register before ready/);
    await expectError(JSON.stringify(heartbeat(1)), /send register before heartbeat/);

    expect(coord.stats.badMessages).toBe(12);
    expect(coord.stats.binaryFrames).toBe(1);
    expect(coord.stats.binaryBytesReceived).toBe(1000);
    expect(coord.stats.messagesIn).toBe(12);

    // Still open and usable after all that.
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.send(JSON.stringify({ type: 'register', name: 'survivor', capability: cap(5) }));
    expect((await inbox.take('welcome')).peerId).toMatch(/^p\d+-/);
    ws.send(JSON.stringify({ type: 'register', name: 'again', capability: cap(5) }));
    expect((await inbox.take('error')).message).toMatch(/already registered/);
    ws.send(JSON.stringify({ type: 'ready' }));
    expect((await inbox.take('error')).message).toMatch(/ready before assign/);
  });

  it('closes a socket after 20 bad messages and one above the hard frame cap, and keeps serving others', async () => {
    const { coord, url } = await serve({ workers: 2 });
    const spammer = await rawSocket(url);
    for (let i = 0; i < 20; i++) spammer.ws.send('nope');
    await until(() => spammer.inbox.closed !== undefined, 'spammer closed');
    expect(spammer.inbox.closed).toBe(1008);
    expect(spammer.inbox.count('error')).toBe(21);
    expect(spammer.inbox.msgs.at(-1)).toMatchObject({ type: 'error', message: 'closing the connection after 20 bad messages' });

    const huge = await rawSocket(url);
    huge.ws.send('x'.repeat(8 * MAX_MESSAGE_BYTES));
    await until(() => huge.inbox.closed !== undefined, 'oversized socket closed');
    expect(huge.inbox.closed).toBe(1009);

    const ok = await join(url, 'fine', cap(1));
    expect(ok.peerId).toBeTruthy();
    expect(coord.stats.badMessages).toBe(20);
  });

  it('refuses registrations beyond `workers` and closes them; a peer leaving before assignment frees its slot', async () => {
    const { coord, url } = await serve({ workers: 2 });
    const early = await join(url, 'early', cap(1));
    early.client.close();
    await until(() => coord.stats.peers.registered === 0, 'slot freed');

    const a = await join(url, 'a', cap(2));
    const b = await join(url, 'b', cap(1));
    await a.inbox.take('assign');
    await b.inbox.take('assign');

    const late = new CoordinatorClient(url, WebSocket);
    sockets.push(late);
    const closed = new Promise<number>((r) => late.on('close', (e) => r(e.code)));
    await expect(late.connect({ name: 'late', capability: cap(100) })).rejects.toThrow(/refused registration: the swarm is full: all 2 workers are registered/);
    expect(await closed).toBe(1008);
    expect(coord.stats.peers.registered).toBe(2);
    expect(a.inbox.count('peer-lost')).toBe(0);

    // The client validates before sending: an invalid message is a caller bug and throws.
    expect(() => a.client.send({ type: 'heartbeat', step: 1, loss: NaN, bytesSent: 0, bytesReceived: 0 })).toThrow(/heartbeat\.loss/);
  });
});

describe('coordinator: liveness', () => {
  async function runningSwarm(heartbeatTimeoutMs: number) {
    const served = await serve({ workers: 4, heartbeatTimeoutMs });
    // Everyone heartbeats from its welcome on (the timeout applies from registration); a test
    // silences one of them later.
    const peers: TestPeer[] = [];
    const beating = new Map<string, ReturnType<typeof setInterval>>();
    for (const [name, g] of [['a', 4], ['b', 3], ['c', 2], ['d', 1]] as const) {
      const p = await join(served.url, name, cap(g));
      beating.set(p.peerId, setInterval(() => p.client.send(heartbeat(1)), 40));
      peers.push(p);
    }
    for (const p of peers) await p.inbox.take('assign');
    for (const p of peers) p.client.send({ type: 'ready' });
    for (const p of peers) await p.inbox.take('start');
    const silence = (p: TestPeer) => clearInterval(beating.get(p.peerId));
    return { ...served, peers, silence, stopAll: () => peers.forEach(silence) };
  }

  it('detects a peer that stops heartbeating: others get peer-lost, then stop; finished rejects', async () => {
    const { coord, peers, silence, stopAll } = await runningSwarm(400);
    const lost: string[] = [];
    coord.on('peer-lost', (e) => lost.push(e.peerId));
    const [victim, ...others] = [peers[2], peers[0], peers[1], peers[3]];
    const t0 = Date.now();
    silence(victim);
    try {
      for (const p of others) {
        const pl = await p.inbox.take('peer-lost');
        expect(pl.peerId).toBe(victim.peerId);
        expect(pl.reason).toMatch(/heartbeat timeout 400 ms/);
        expect((await p.inbox.take('stop')).reason).toMatch(new RegExp(`peer ${victim.peerId} \\(stage \\d replica \\d\\) was lost`));
      }
      expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
      await expect(coord.finished).rejects.toThrow(/was lost/);
      expect(lost).toEqual([victim.peerId]);
      expect(coord.currentPhase).toBe('stopped');
      const pv = coord.progress().peers.find((p) => p.peerId === victim.peerId)!;
      expect(pv.status).toBe('lost');
      expect(coord.stats.peers.lost).toBe(1);
      await until(() => victim.inbox.closed !== undefined, 'victim socket closed');
    } finally {
      stopAll();
    }
  });

  it('treats a closed socket as lost', async () => {
    const { coord, peers, stopAll } = await runningSwarm(15_000);
    try {
      const victim = peers[0];
      victim.client.close();
      for (const p of peers.slice(1)) {
        expect(await p.inbox.take('peer-lost')).toEqual({ type: 'peer-lost', peerId: victim.peerId, reason: 'connection closed' });
        await p.inbox.take('stop');
      }
      await expect(coord.finished).rejects.toThrow(/not implemented/);
    } finally {
      stopAll();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('assignStages', () => {
  const peer = (peerId: string, gflops: number, maxLayers = 8) => ({ peerId, capability: { gflops, maxLayers } });
  const placement = (as: Assignment[]) => Object.fromEntries(as.map((a) => [a.peerId, `s${a.stage}r${a.replica}`]));

  it('spreads the fastest peers over equally heavy stages, fastest replica first', () => {
    const r = assignStages([peer('a', 40), peer('b', 30), peer('c', 20), peer('d', 10)], { stages: 2, layersPerStage: [2, 2], workers: 4 });
    expect(r.ok && placement(r.assignments)).toEqual({ a: 's0r0', c: 's0r1', b: 's1r0', d: 's1r1' });
  });

  it('puts faster peers on heavier stages, counting embedding and head as a layer each', () => {
    const r = assignStages([peer('a', 40), peer('b', 30), peer('c', 20), peer('d', 10)], { stages: 2, layersPerStage: [1, 3], workers: 4 });
    expect(r.ok && placement(r.assignments)).toEqual({ c: 's0r0', d: 's0r1', a: 's1r0', b: 's1r1' });
    // Three stages of 2 layers: the ends weigh 3, the middle 2 → the slowest peer sits in the middle.
    const r3 = assignStages([peer('a', 3), peer('b', 2), peer('c', 1)], { stages: 3, layersPerStage: [2, 2, 2], workers: 3 });
    expect(r3.ok && placement(r3.assignments)).toEqual({ a: 's0r0', c: 's1r0', b: 's2r0' });
  });

  it('respects maxLayers even when that moves a fast peer to a lighter stage', () => {
    const r = assignStages([peer('a', 40, 1), peer('b', 30), peer('c', 20), peer('d', 10)], { stages: 2, layersPerStage: [1, 3], workers: 4 });
    expect(r.ok && placement(r.assignments)).toEqual({ a: 's0r0', d: 's0r1', b: 's1r0', c: 's1r1' });
    // First-fit by speed would give `fast` stage 0 and then find nobody for stage 1's 3 layers.
    const tight = assignStages([peer('fast', 30, 3), peer('mid', 20, 2), peer('slow', 10, 2)], { stages: 3, layersPerStage: [2, 3, 2], workers: 3 });
    expect(tight.ok && placement(tight.assignments)).toEqual({ mid: 's0r0', fast: 's1r0', slow: 's2r0' });
    for (const a of tight.ok ? tight.assignments : []) expect([2, 3, 2][a.stage]).toBeLessThanOrEqual({ fast: 3, mid: 2, slow: 2 }[a.peerId]!);
  });

  it('names a peer when capacity makes placement impossible', () => {
    const r = assignStages([peer('a', 40, 3), peer('b', 30, 1), peer('c', 20, 1), peer('d', 10, 1)], { stages: 2, layersPerStage: [1, 3], workers: 4 });
    expect(r).toEqual({ ok: false, error: 'cannot place peer b (maxLayers 1): 2 replica slot(s) need 3 or more layers but only 1 peer(s) can hold that many' });
    const none = assignStages([peer('a', 1, 0)], { stages: 1, layersPerStage: [2], workers: 1 });
    expect(!none.ok && none.error).toMatch(/cannot place peer a \(maxLayers 0\)/);
  });

  it('rejects bad shapes', () => {
    const four = [peer('a', 1), peer('b', 1), peer('c', 1), peer('d', 1)];
    const err = (r: ReturnType<typeof assignStages>) => (r.ok ? '' : r.error);
    expect(err(assignStages(four.slice(0, 3), { stages: 2, layersPerStage: [2, 2], workers: 3 }))).toMatch(/workers \(3\) must be a multiple of stages \(2\)/);
    expect(err(assignStages(four.slice(0, 2), { stages: 2, layersPerStage: [2, 2], workers: 4 }))).toMatch(/expected 4 peers, got 2/);
    expect(err(assignStages(four, { stages: 2, layersPerStage: [4], workers: 4 }))).toMatch(/1 entries for 2 stages/);
    expect(err(assignStages(four, { stages: 2, layersPerStage: [4, 0], workers: 4 }))).toMatch(/at least one layer/);
    expect(err(assignStages([peer('a', 1), peer('a', 2)], { stages: 1, layersPerStage: [2], workers: 2 }))).toMatch(/not unique/);
  });

  it('is deterministic: input order does not matter, ties break by peerId', () => {
    const ps = [peer('d', 5), peer('b', 5), peer('a', 5), peer('c', 5), peer('f', 9), peer('e', 9)];
    const run = { stages: 3, layersPerStage: [1, 2, 1], workers: 6 };
    const first = assignStages(ps, run);
    // Every stage weighs 2 (the ends add embedding/head), so first replicas go round before second ones.
    expect(first.ok && placement(first.assignments)).toEqual({ e: 's0r0', f: 's1r0', a: 's2r0', b: 's0r1', c: 's1r1', d: 's2r1' });
    for (let i = 0; i < 5; i++) {
      const shuffled = [...ps].sort(() => Math.random() - 0.5);
      expect(assignStages(shuffled, run)).toEqual(first);
    }
  });

  it('neighbours: lane partners in the stages either side, replicas of the own stage', () => {
    const r = assignStages(['a', 'b', 'c', 'd', 'e', 'f'].map((id, i) => peer(id, 10 - i)), { stages: 3, layersPerStage: [1, 1, 1], workers: 6 });
    if (!r.ok) throw new Error(r.error);
    const at = (s: number, rep: number) => r.assignments.find((a) => a.stage === s && a.replica === rep)!;
    const mid = at(1, 1);
    const n = neighbours(r.assignments, mid.peerId)!;
    expect(n.prev).toEqual(at(0, 1));
    expect(n.next).toEqual(at(2, 1));
    expect(n.replicas).toEqual([at(1, 0)]);
    expect(neighbours(r.assignments, at(0, 0).peerId)!.prev).toBeUndefined();
    expect(neighbours(r.assignments, at(2, 0).peerId)!.next).toBeUndefined();
    expect(neighbours(r.assignments, 'nobody')).toBeUndefined();
    for (const x of r.assignments) {
      for (const y of r.assignments) {
        expect(areNeighbours(r.assignments, x.peerId, y.peerId)).toBe(areNeighbours(r.assignments, y.peerId, x.peerId));
      }
    }
    expect(areNeighbours(r.assignments, at(0, 0).peerId, at(1, 1).peerId)).toBe(false);
    expect(areNeighbours(r.assignments, at(0, 0).peerId, at(2, 0).peerId)).toBe(false);
  });

  it('splitLayers gives spare layers to the inner stages first', () => {
    expect(splitLayers(4, 2)).toEqual([2, 2]);
    expect(splitLayers(7, 3)).toEqual([2, 3, 2]);
    expect(splitLayers(5, 3)).toEqual([2, 2, 1]);
    expect(splitLayers(6, 4)).toEqual([1, 2, 2, 1]);
    expect(() => splitLayers(1, 2)).toThrow(/cannot fill 2 stages/);
  });
});

describe('protocol schemas', () => {
  const runIssue = (over: Partial<RunConfig>): string => {
    const r = RunConfigSchema.safeParse(makeRun(over));
    return r.success ? '' : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  };

  it('accepts a valid run config and every codec', () => {
    expect(RunConfigSchema.safeParse(makeRun()).success).toBe(true);
    for (const codec of [{ kind: 'fp32' }, { kind: 'bf16' }, { kind: 'int8' }, { kind: 'subspace', k: 64, coeff: 'int4' }] as const) {
      expect(runIssue({ codec })).toBe('');
    }
  });

  it('rejects inconsistent run configs with the field named', () => {
    expect(runIssue({ model: { ...makeRun().model, nHead: 5 } })).toMatch(/model\.dModel: dModel 64 is not divisible by nHead 5/);
    expect(runIssue({ layersPerStage: [2, 3] })).toMatch(/layersPerStage: sums to 5 but model\.nLayer is 4/);
    expect(runIssue({ layersPerStage: [4] })).toMatch(/layersPerStage: has 1 entries but stages is 2/);
    expect(runIssue({ layersPerStage: [0, 4] })).toMatch(/layersPerStage\.0/);
    expect(runIssue({ data: { name: 'x', sha256: 'abc', chars: 1 } })).toMatch(/data\.sha256: must be 64 lowercase hex digits/);
    expect(runIssue({ codec: { kind: 'subspace', k: 65, coeff: 'fp16' } })).toMatch(/codec\.k: subspace rank 65 exceeds dModel 64/);
    expect(runIssue({ codec: { kind: 'topk' } as never })).toMatch(/codec/);
    expect(runIssue({ codec: { kind: 'fp32', k: 3 } as never })).toMatch(/codec/);
    expect(runIssue({ steps: 1.5 })).toMatch(/steps/);
    expect(runIssue({ optimizer: { ...makeRun().optimizer, beta2: 1 } })).toMatch(/optimizer\.beta2/);
  });

  it('parses every client message and rejects bad ones without throwing', () => {
    const good = [
      { type: 'register', name: 'n', capability: cap(1) },
      { type: 'signal', to: 'p1', data: { sdp: 'x', nested: [1, null, true] } },
      { type: 'ready' },
      heartbeat(3, { loss: 2, valLoss: 2.5, tokensPerSec: 10, busyFraction: 1 }),
      { type: 'done', finalValLoss: 1.5, stats: { a: 1 } },
      { type: 'done', stats: {} },
    ];
    for (const m of good) expect(parseClientMessage(JSON.stringify(m))).toEqual({ ok: true, msg: m });
    const bad: [string, RegExp][] = [
      ['', /not valid JSON/],
      ['null', /JSON object/],
      ['{"type": 7}', /no string "type"/],
      ['{"type": "welcome", "peerId": "p1"}', /unknown client message type "welcome"/],
      ['{"type": "signal", "to": "p1"}', /signal\.data: must be a JSON value/],
      ['{"type": "heartbeat", "step": -1, "bytesSent": 0, "bytesReceived": 0}', /heartbeat\.step/],
      ['{"type": "heartbeat", "step": 1, "bytesSent": 0, "bytesReceived": 0, "busyFraction": 2}', /heartbeat\.busyFraction/],
      ['{"type": "done", "stats": {"a": "b"}}', /done\.stats\.a/],
      ['{"type": "register", "name": "", "capability": {}}', /register\.name.*; register\.capability/],
    ];
    for (const [text, pattern] of bad) {
      const r = parseClientMessage(text);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toMatch(pattern);
    }
    expect(parseClientMessage(undefined as unknown as string)).toEqual({ ok: false, error: 'message must be a JSON text frame' });
  });

  it('parses server messages and validates outgoing ones', () => {
    const assign = { type: 'assign', stage: 1, replica: 0, run: makeRun(), peers: [{ peerId: 'p1', stage: 1, replica: 0, name: 'a' }] };
    expect(parseServerMessage(JSON.stringify(assign))).toEqual({ ok: true, msg: assign });
    expect(parseServerMessage(JSON.stringify({ type: 'error', message: 'm', ref: 'signal' })).ok).toBe(true);
    const badAssign = parseServerMessage(JSON.stringify({ ...assign, run: { ...makeRun(), stages: 3 } }));
    expect(!badAssign.ok && badAssign.error).toMatch(/assign\.run\.layersPerStage: has 2 entries but stages is 3/);
    expect(parseServerMessage('{"type": "register"}').ok).toBe(false);
    expect(encodeClientMessage({ type: 'ready' })).toEqual({ ok: true, text: '{"type":"ready"}' });
    const enc = encodeClientMessage({ type: 'heartbeat', step: 1, bytesSent: 0, bytesReceived: 0, tokensPerSec: Infinity });
    expect(!enc.ok && enc.error).toMatch(/heartbeat\.tokensPerSec/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(encodeClientMessage({ type: 'signal', to: 'p1', data: cyclic }).ok).toBe(false);
  });

  it('measures message size in UTF-8 bytes', () => {
    for (const s of ['', 'abc', 'é', '€uro', '𝄞 clef', 'mixed ñ 😀 text']) expect(utf8Length(s)).toBe(Buffer.byteLength(s, 'utf8'));
    const big = JSON.stringify({ type: 'ready', pad: 'é'.repeat(MAX_MESSAGE_BYTES / 2) });
    expect(parseClientMessage(big)).toMatchObject({ ok: false, error: expect.stringMatching(/above the 65536-byte limit/) });
  });
});
