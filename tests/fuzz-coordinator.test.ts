// The coordinator fuzzed over real sockets: a real Coordinator on 127.0.0.1, `ws` clients and raw
// TCP ones. Over ten thousand frames (tests/fuzz/frames.ts: random JSON, mutations of every client
// message type, text-level damage, frames over the cap, binary frames, valid messages aimed wrong)
// go to it from strangers and from registered peers on many connections at once. An oracle, the
// protocol's own parser plus what the coordinator must refuse, says which frames earn an error:
// each of those gets exactly one, in order, until the maxBadMessages-th cuts the connection, and
// what follows the cut is dropped unread; the signals it relays arrive byte for byte. Then socket-
// level abuse (protocol violations, half frames, dropped connections, clients that never read).
// Through all of it nothing throws, memory stays bounded, and afterwards an honest swarm joins and
// trains a whole run while hostile peers keep firing, and the coordinator closes promptly. Last, a
// peer's own side of the relay: its links and WebRTC adapter fed the garbage the coordinator passes on.
//
// `npm test` runs the short form. A long one: FUZZ_FRAMES=200000 FUZZ_SEED=7 npx vitest run tests/fuzz-coordinator.test.ts
// (the memory bound then fails for as long as the coordinator keeps every gone peer's record).
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { CommitEvent } from '../coordinator/run-control.js';
import { Coordinator } from '../coordinator/server.js';
import { Transport } from '../coordinator/transport.js';
import { NeighbourLinks } from '../shared/peer/links.js';
import type { RtcPeer } from '../shared/peer/rtc.js';
import { registerMessage } from '../shared/swarm/coordinator-client.js';
import { PeerKey } from '../shared/swarm/identity.js';
import {
  type ClientMessage,
  type ClientMessageOf,
  ClientMessageSchemas,
  MAX_MESSAGE_BYTES,
  MAX_SIGNAL_DATA_BYTES,
  type ServerMessage,
  type ServerMessageOf,
  type ServerMessageType,
} from '../shared/swarm/protocol.js';
import { CLIENT_TYPES, type Frame, SEEDS, type Targets, fuzzFrame, hostileFrame, randomValue, signalData } from './fuzz/frames.js';
import { HonestPeer } from './fuzz/honest-peer.js';
import { OP, RawClient, encodeFrame, handshake } from './fuzz/raw-ws.js';
import { Rng } from './fuzz/rng.js';
import { nodeRtc } from '../worker/node-rtc.js';
import { testRun } from './test-run.js';
import { holdOpen } from '../bench/local-attacks.js';
import type { RunConfig } from '../shared/run/config.js';
import { parseClientMessage, parseServerMessage } from '../shared/swarm/parse.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);
/** The coordinator's default maxBadMessages (left at its default here). */
const MAX_BAD = 20;
/** Frames the lanes send in all; the socket-level cases come on top. */
const FRAMES = Number(process.env.FUZZ_FRAMES ?? 11_000);
const LANES = 4;
/** Relayed signals of the largest size a client that never reads sends itself (about 100 MB). */
const FLOOD = 2000;
/** How the coordinator logs a signal it accepted but could not re-encode (see the nesting probe). */
const DEEP_DROP = /^BUG: not sending an invalid signal: invalid signal message: signal\.data: must be a JSON value$/;
/** Text frames above this are left to the socket-level cases (ws itself closes a socket above its hard cap). */
const LANE_MAX_BYTES = 3 * MAX_MESSAGE_BYTES;

const run: RunConfig = testRun({
  runId: 'fuzz-run',
  stages: 3,
  layersPerStage: [1, 1, 2],
  microbatches: 3,
  steps: 12,
  data: { name: 'tinyshakespeare', sha256: '0'.repeat(64), chars: 1115394 },
  averageEvery: 3,
});
const capability = { adapter: 'fuzz', kind: 'cpu', gflops: 1, memoryBytes: 1e9, maxLayers: 8 } as const;

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function within<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A `ws` client that keeps every server message, checking each against the protocol. */
class Client {
  readonly msgs: ServerMessage[] = [];
  /** Server frames that failed validation: the coordinator must never send one. */
  readonly invalid: string[] = [];
  readonly closed: Promise<number>;
  nonce = '';

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const p = isBinary ? { ok: false as const, error: 'a binary frame' } : parseServerMessage(String(data));
      if (p.ok) this.msgs.push(p.msg);
      else this.invalid.push(p.error);
    });
    // A socket the coordinator cut may be reset under our writes: that is the outcome under test.
    ws.on('error', () => {});
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  }

  static async open(url: string): Promise<Client> {
    const c = new Client(new WebSocket(url));
    await until(() => c.of('hello').length > 0, 'the hello');
    c.nonce = c.of('hello')[0].nonce;
    return c;
  }

  of<T extends ServerMessageType>(type: T): Array<ServerMessageOf<T>> {
    return this.msgs.filter((m): m is ServerMessageOf<T> => m.type === type);
  }

  send(f: Frame): void {
    this.ws.send(f.data, { binary: f.binary });
  }

  async register(name: string): Promise<{ peerId: string; stage: number }> {
    this.ws.send(JSON.stringify(await registerMessage({ name, capability }, { key: await PeerKey.generate() }, this.nonce)));
    await until(() => this.of('assign').length > 0, `${name}'s assign`);
    return { peerId: this.of('welcome')[0].peerId, stage: this.of('assign')[0].stage };
  }
}

// ---------------------------------------------------------------------------------------------
// The oracle: what the coordinator must answer to each frame.

type Reply =
  /** `bad: false`: answered, but not counted against the sender (a signal racing a neighbour's departure). */
  | { kind: 'error'; message: string | RegExp; ref?: string; bad?: false }
  | { kind: 'relay'; to: string; data: string }
  | { kind: 'none' }
  /** Not sent here: a stranger's valid register or a peer's ready (either changes who is in the run), and evidence and verdicts. */
  | { kind: 'skip' };

/** Who sends: a stranger, or a registered peer (its id and stage) and the sinks it may signal. */
interface Sender {
  peerId?: string;
  stage?: number;
  sinks: ReadonlyMap<string, number>;
}

const isBad = (r: Reply) => r.kind === 'error' && r.bad !== false;

function predict(f: Frame, who: Sender): Reply {
  if (f.binary) return { kind: 'error', message: /^binary frames are not accepted/ };
  if (f.data.length > MAX_MESSAGE_BYTES) return { kind: 'error', message: `message is ${f.data.length} bytes, above the ${MAX_MESSAGE_BYTES}-byte limit` };
  const p = parseClientMessage(f.data.toString('utf8'));
  if (!p.ok) return { kind: 'error', message: p.error.slice(0, 1024) };
  return who.peerId === undefined ? fromStranger(p.msg) : fromPeer(p.msg, who);
}

const noServing = (m: ClientMessage): Reply => ({
  kind: 'error',
  message: 'this swarm does not serve inference',
  ref: m.type === 'infer' ? `spend ${m.spendId}`.slice(0, 64) : m.type,
});

function fromStranger(m: ClientMessage): Reply {
  if (m.type === 'register') return { kind: 'skip' };
  if (m.type === 'infer') return noServing(m);
  return { kind: 'error', message: `send register before ${m.type}`, ref: m.type };
}

function fromPeer(m: ClientMessage, who: Sender): Reply {
  switch (m.type) {
    case 'register':
      return { kind: 'error', message: `already registered as ${who.peerId}`, ref: 'register' };
    case 'infer':
    case 'generated':
      return noServing(m);
    case 'signal':
      return relayOf(m, who);
    // No round is under way (nobody fuzzing is ever ready): these change nothing and are not answered.
    case 'heartbeat':
    case 'links':
    case 'stalled':
    case 'checkpoint':
    case 'evaluated':
    case 'leave':
      return { kind: 'none' };
    default:
      // Readiness, and evidence and verdicts (checked later, against signatures and audits): fuzzed in the live run below.
      return { kind: 'skip' };
  }
}

function relayOf(m: ClientMessageOf<'signal'>, who: Sender): Reply {
  const data = JSON.stringify(m.data);
  if (m.to === who.peerId) return { kind: 'relay', to: m.to, data };
  const stage = who.sinks.get(m.to);
  if (stage === undefined) return { kind: 'error', message: /^cannot relay signal: peer .* is not connected$/s, ref: 'signal', bad: false };
  if (Math.abs(stage - who.stage!) > 1) return { kind: 'error', message: /is not a neighbour of/, ref: 'signal' };
  return { kind: 'relay', to: m.to, data };
}

interface Shot {
  frame: Frame;
  reply: Reply;
}

/** Frames from `draw` with their replies, up to the `errors`-th frame that earns an error. */
function plan(who: Sender, errors: number, draw: () => Frame): Shot[] {
  const shots: Shot[] = [];
  let n = 0;
  while (n < errors) {
    const frame = draw();
    if (frame.data.length > LANE_MAX_BYTES) continue;
    const reply = predict(frame, who);
    if (reply.kind === 'skip') continue;
    shots.push({ frame, reply });
    if (isBad(reply)) n++;
  }
  return shots;
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping across lanes.

interface Tally {
  frames: number;
  cats: Map<string, number>;
  /** Predicted errors (the coordinator's badMessages must match). */
  errors: number;
  cut: number;
  mismatches: string[];
}

function count(t: Tally, frames: Frame[]): void {
  t.frames += frames.length;
  for (const f of frames) t.cats.set(f.cat, (t.cats.get(f.cat) ?? 0) + 1);
}

const show = (f: Frame) => (f.binary ? `<binary ${f.data.length} bytes>` : JSON.stringify(f.data.toString('utf8').slice(0, 160)));

/** The errors a client got against the shots' predicted ones, in order; `closing` is the cut's last word. */
function compareErrors(t: Tally, c: Client, shots: Shot[], closing: boolean): void {
  const want = shots.filter((s) => s.reply.kind === 'error');
  const got = c.of('error');
  if (got.length !== want.length + (closing ? 1 : 0))
    t.mismatches.push(`expected ${want.length} errors${closing ? ' and the closing one' : ''}, got ${got.length}: ${got.at(-1)?.message}`);
  const i = want.findIndex((s, i) => {
    const r = s.reply as Extract<Reply, { kind: 'error' }>;
    const g = got[i];
    return !(g && (typeof r.message === 'string' ? g.message === r.message : r.message.test(g.message)) && (r.ref === undefined || g.ref === r.ref));
  });
  // The first one out of line says it all (the rest shift behind it).
  if (i >= 0) {
    const r = want[i].reply as Extract<Reply, { kind: 'error' }>;
    const at = shots.indexOf(want[i]);
    const before = shots.slice(Math.max(0, at - 2), at).map((s) => `${s.frame.cat} ${show(s.frame)} (${s.reply.kind})`);
    t.mismatches.push(`${want[i].frame.cat} ${show(want[i].frame)}: expected ${r.message} (${r.ref}), got ${got[i]?.message} (${got[i]?.ref}); after ${before.join(', ')}`);
  }
  if (closing && got.at(-1)?.message !== `closing the connection after ${MAX_BAD} bad messages`) t.mismatches.push(`no closing error: ${got.at(-1)?.message}`);
  if (c.invalid.length) t.mismatches.push(`invalid server messages: ${c.invalid.join('; ')}`);
}

/** Signals relayed from `from` to `to` (as JSON text), against the shots' predicted ones. */
async function compareRelays(t: Tally, from: string, to: Client, toId: string, shots: Shot[]): Promise<void> {
  const want = shots.flatMap((s) => (s.reply.kind === 'relay' && s.reply.to === toId ? [s.reply.data] : []));
  const got = () => to.of('signal').filter((m) => m.from === from);
  await until(() => got().length >= want.length, `${want.length} signals from ${from} at ${toId}`).catch(() => {});
  const have = got().map((m) => JSON.stringify(m.data));
  if (have.length !== want.length || have.some((d, i) => d !== want[i]))
    t.mismatches.push(`signals ${from} → ${toId}: expected ${want.length}, got ${have.length} (or different data)`);
}

// ---------------------------------------------------------------------------------------------
// The lanes: each a deterministic stream of connections (its own Rng), several at once.

interface Fuzzed {
  coord: Coordinator;
  url: string;
  port: number;
  /** Registered, reading peers that fuzz peers may signal: peer id → stage, and their clients. */
  sinks: Map<string, number>;
  sinkClients: Map<string, Client>;
  tally: Tally;
  gone: Array<{ peerId: string; reason: string }>;
  aborted: string[];
  /** Log lines that must never appear (the coordinator's own bugs, throwing listeners). */
  alarms: string[];
}

const frameOf = (cat: string, text: string): Frame => ({ cat, data: Buffer.from(text, 'utf8'), binary: false });

/** A stranger (never registered) sends frames up to the cut, then more behind it that must be dropped unread. */
async function stranger(f: Fuzzed, rng: Rng): Promise<number> {
  const c = await Client.open(f.url);
  const targets: Targets = { known: [...f.sinks.keys()] };
  const shots = plan({ sinks: f.sinks }, MAX_BAD, () => fuzzFrame(rng, targets));
  const register = await registerMessage({ name: 'behind the cut', capability }, { key: await PeerKey.generate() }, c.nonce);
  const after = [fuzzFrame(rng, targets), frameOf('behind the cut', JSON.stringify(register))];
  for (const s of shots) c.send(s.frame);
  for (const a of after) c.send(a);
  const code = await within(c.closed, 'the cut of a stranger');
  if (code !== 1008) f.tally.mismatches.push(`a stranger was closed with ${code}, not 1008`);
  if (c.of('welcome').length) f.tally.mismatches.push('a connection registered behind its cut');
  compareErrors(f.tally, c, shots, true);
  return finish(f.tally, shots, after, true);
}

/** A registered peer mixes fuzz with valid messages aimed wrong; cut at the limit, or leaving just under it. */
async function hostilePeer(f: Fuzzed, rng: Rng, cut: boolean): Promise<number> {
  const c = await Client.open(f.url);
  const { peerId, stage } = await c.register(`fuzz-${rng.hex(4)}`);
  const who: Sender = { peerId, stage, sinks: f.sinks };
  const targets: Targets = { known: [peerId, ...f.sinks.keys()], self: peerId };
  const shots = plan(who, cut ? MAX_BAD : MAX_BAD - 2, () => (rng.chance(0.5) ? fuzzFrame(rng, targets) : hostileFrame(rng, targets, 'p0-000000')));
  // Not cut: one more error, the barrier's, says every frame before it was handled.
  const barrier = frameOf('barrier', '{"type":"barrier"}');
  if (!cut) shots.push({ frame: barrier, reply: predict(barrier, who) });
  for (const s of shots) c.send(s.frame);
  const errors = shots.filter((s) => s.reply.kind === 'error').length;
  if (cut && (await within(c.closed, 'the cut of a peer')) !== 1008) f.tally.mismatches.push(`${peerId} was not cut with 1008`);
  if (!cut) await until(() => c.of('error').length >= errors, `${peerId}'s ${errors} errors`).catch(() => {});
  compareErrors(f.tally, c, shots, cut);
  await compareRelays(f.tally, peerId, c, peerId, shots);
  for (const [id, sink] of f.sinkClients) await compareRelays(f.tally, peerId, sink, id, shots);
  if (!cut) {
    c.ws.close();
    await c.closed;
  }
  return finish(f.tally, shots, [], cut);
}

function finish(t: Tally, shots: Shot[], after: Frame[], cut: boolean): number {
  count(t, [...shots.map((s) => s.frame), ...after]);
  t.errors += shots.filter((s) => isBad(s.reply)).length;
  if (cut) t.cut++;
  return shots.length + after.length;
}

async function lane(f: Fuzzed, i: number): Promise<void> {
  const rng = new Rng(SEED + i);
  let sent = 0;
  for (let k = 0; sent < FRAMES / LANES; k++) {
    sent += k % 3 === 0 ? await stranger(f, rng) : await hostilePeer(f, rng, k % 3 === 1);
  }
}

// ---------------------------------------------------------------------------------------------

/** How deeply nested an array JSON.stringify serializes here before it runs out of stack. */
function stringifyDepth(): number {
  let lo = 1;
  let hi = 1e6;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    try {
      JSON.stringify(JSON.parse(`${'['.repeat(mid)}${']'.repeat(mid)}`));
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  return lo;
}

/** V8's collector, so memory is compared after collection; Jest gets it the same way without --expose-gc. */
function collector(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  try {
    v8.setFlagsFromString('--expose-gc');
    return vm.runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

/** Heap and buffers still held (after collection when we can collect). */
function retained(gc: (() => void) | undefined): number {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function serve(): Promise<Fuzzed> {
  const alarms: string[] = [];
  const coord = new Coordinator({ run, log: (l) => /BUG|threw/.test(l) && alarms.push(l) });
  const port = await coord.listen(0);
  const f: Fuzzed = {
    coord,
    url: `ws://127.0.0.1:${port}`,
    port,
    sinks: new Map(),
    sinkClients: new Map(),
    tally: { frames: 0, cats: new Map(), errors: 0, cut: 0, mismatches: [] },
    gone: [],
    aborted: [],
    alarms,
  };
  coord.on('peer-gone', (g) => f.gone.push({ peerId: g.peerId, reason: g.reason }));
  coord.on('round-aborted', (a) => f.aborted.push(a.reason));
  for (const name of ['sink-a', 'sink-b', 'sink-c']) {
    const c = await Client.open(f.url);
    const { peerId, stage } = await c.register(name);
    f.sinks.set(peerId, stage);
    f.sinkClients.set(peerId, c);
  }
  return f;
}

interface Harassed {
  sent: number;
  errors: string[];
  rounds: number;
  invalid: string[];
}

/** How a hostile peer of the honest run ends: by reporting the round under way with forged seals, accusing an honest peer falsely, or leaving. */
type Finale = 'forged report' | 'false evidence' | 'leave';

/**
 * A hostile registered peer during the honest run: valid messages aimed wrong, garbage signals to
 * its honest neighbours, as fast as it likes, staying just under the cut; after `act` it plays its
 * finale once and goes on with what draws no answer until `stop`. One departure each, not a churn
 * of them: every departure makes honest neighbours signal into the void, and the coordinator counts
 * each such refused signal against the honest peer (enough churn gets honest peers cut).
 */
async function harass(f: Fuzzed, rng: Rng, honest: HonestPeer[], finale: Finale, act: () => boolean, stop: () => boolean, seen: Harassed): Promise<void> {
  const c = await Client.open(f.url);
  const me = await c.register(`hostile-${rng.hex(4)}`);
  const targets: Targets = { known: [...honest.map((p) => p.peerId), me.peerId], self: me.peerId };
  let played = false;
  while (!stop() && c.ws.readyState === WebSocket.OPEN) {
    if (!played && act()) {
      c.send(finaleFrame(rng, finale, me.peerId, honest, targets));
      played = true;
    } else c.send(hostileFrame(rng, targets, 'p0-000000', played || c.of('error').length >= MAX_BAD - 5 ? 'quiet' : 'stay'));
    seen.sent++;
    await new Promise((r) => setTimeout(r, 3));
  }
  seen.errors.push(...c.of('error').map((e) => e.message));
  seen.rounds += c.of('round').length;
  seen.invalid.push(...c.invalid);
  c.ws.close();
}

function finaleFrame(rng: Rng, finale: Finale, me: string, honest: HonestPeer[], targets: Targets): Frame {
  if (finale === 'leave') return frameOf(finale, JSON.stringify({ type: 'leave', reason: 'done here' }));
  const victim = rng.pick(honest);
  const seal = { ...SEEDS.equivocation(rng, targets).seals[0], from: victim.peerId, to: me };
  if (finale === 'false evidence') return frameOf(finale, JSON.stringify({ type: 'equivocation', seals: [seal, { ...seal, hash: rng.hex(64) }] }));
  const round = victim.rounds.at(-1)?.round ?? 1;
  return frameOf(finale, JSON.stringify({ type: 'round-done', round, microbatches: 1, inputs: [{ ...seal, tag: round }] }));
}

/** Protocol violations ws must close a socket for, with the close code it must use. */
const VIOLATIONS: Array<{ what: string; bytes: () => Buffer; code: number }> = [
  { what: 'a text frame of invalid UTF-8', bytes: () => encodeFrame(OP.text, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), code: 1007 },
  { what: 'an unmasked frame', bytes: () => encodeFrame(OP.text, Buffer.from('{}'), { mask: false }), code: 1002 },
  { what: 'a reserved opcode', bytes: () => encodeFrame(3, Buffer.from('{}')), code: 1002 },
  { what: 'RSV1 without an extension', bytes: () => encodeFrame(OP.text, Buffer.from('{}'), { rsv: 4 }), code: 1002 },
  { what: 'a ping of 126 bytes', bytes: () => encodeFrame(OP.ping, Buffer.alloc(126)), code: 1002 },
  { what: 'a fragmented ping', bytes: () => encodeFrame(OP.ping, Buffer.alloc(4), { fin: false }), code: 1002 },
  { what: 'a continuation of nothing', bytes: () => encodeFrame(OP.continuation, Buffer.from('{}')), code: 1002 },
  {
    what: 'a new message inside a fragmented one',
    bytes: () => Buffer.concat([encodeFrame(OP.text, Buffer.from('{"ty'), { fin: false }), encodeFrame(OP.text, Buffer.from('pe"}'))]),
    code: 1002,
  },
  { what: 'a header claiming 2^63 - 1 bytes', bytes: () => encodeFrame(OP.text, Buffer.alloc(0), { claim: 2n ** 63n - 1n }), code: 1009 },
  { what: 'a frame above the hard cap', bytes: () => encodeFrame(OP.binary, Buffer.alloc(5 * MAX_MESSAGE_BYTES, 7)), code: 1009 },
  {
    what: 'fragments adding up past the hard cap',
    bytes: () => Buffer.concat(Array.from({ length: 5 }, (_, i) => encodeFrame(i ? OP.continuation : OP.text, Buffer.alloc(MAX_MESSAGE_BYTES, 0x20), { fin: i === 4 }))),
    code: 1009,
  },
  { what: 'a close frame with code 999', bytes: () => encodeFrame(OP.close, Buffer.from([0x03, 0xe7])), code: 1002 },
  { what: 'a close frame of one byte', bytes: () => encodeFrame(OP.close, Buffer.from([0x03])), code: 1002 },
];

/** Connections that end mid-way: what was written before the socket is destroyed. */
const DROPS: Array<{ what: string; upgrade: boolean; bytes: (port: number) => Buffer }> = [
  { what: 'a TCP connection, then nothing', upgrade: false, bytes: () => Buffer.alloc(0) },
  { what: 'half a handshake', upgrade: false, bytes: (port) => Buffer.from(handshake(port).slice(0, 40)) },
  { what: 'a handshake of the wrong version', upgrade: false, bytes: (port) => Buffer.from(handshake(port).replace('Version: 13', 'Version: 7')) },
  { what: 'a handshake, then gone without a close frame', upgrade: true, bytes: () => Buffer.alloc(0) },
  { what: 'one byte of a frame header', upgrade: true, bytes: () => encodeFrame(OP.text, Buffer.from('{}')).subarray(0, 1) },
  { what: 'a frame cut off halfway through its payload', upgrade: true, bytes: () => encodeFrame(OP.text, Buffer.alloc(4000, 0x20)).subarray(0, 2000) },
  { what: 'a fragment, never finished', upgrade: true, bytes: () => encodeFrame(OP.text, Buffer.from('{"type":'), { fin: false }) },
  { what: 'a close frame, then gone at once', upgrade: true, bytes: () => encodeFrame(OP.close, Buffer.from([0x03, 0xe8])) },
];

describe('the coordinator under fuzz', () => {
  let f: Fuzzed;
  const gc = collector();
  let before = 0;
  const crashes: unknown[] = [];
  const crashed = (e: unknown) => crashes.push(e);
  const honest: HonestPeer[] = [];

  beforeAll(async () => {
    process.on('uncaughtException', crashed);
    process.on('unhandledRejection', crashed);
    f = await serve();
    before = retained(gc);
  });

  afterAll(async () => {
    for (const p of honest) p.close();
    process.off('uncaughtException', crashed);
    process.off('unhandledRejection', crashed);
    await f?.coord.close();
  });

  it('has a valid seed for every client message type', () => {
    const rng = new Rng(SEED);
    expect([...CLIENT_TYPES].sort()).toEqual(Object.keys(ClientMessageSchemas).sort());
    for (const type of CLIENT_TYPES) {
      const p = parseClientMessage(JSON.stringify(SEEDS[type](rng, { known: ['p1-abcdef'] })));
      expect(p.ok ? p.msg.type : p.error).toBe(type);
    }
    expect([...f.sinks.values()].sort()).toEqual([0, 1, 2]);
  });

  it(`answers each of ${FRAMES} fuzzed frames as the protocol says, relays signals exactly, and cuts a connection at its ${MAX_BAD}th bad frame`, async () => {
    const bad = f.coord.stats.badMessages;
    await Promise.all(Array.from({ length: LANES }, (_, i) => lane(f, i)));
    const t = f.tally;
    expect(t.mismatches.slice(0, 10)).toEqual([]);
    expect(t.frames).toBeGreaterThanOrEqual(FRAMES);
    // Frames behind a cut are dropped unread: the coordinator counted exactly the predicted errors.
    expect(f.coord.stats.badMessages - bad).toBe(t.errors);
    expect(t.cut).toBeGreaterThan(FRAMES / 50);
    await until(() => f.coord.stats.connections === f.sinks.size, 'only the sinks connected');
    console.info(
      `fuzz: ${t.frames} frames, ${t.errors} errors, ${t.cut} cuts; ${[...t.cats]
        .sort()
        .map(([c, n]) => `${c}: ${n}`)
        .join(', ')}`,
    );
  });

  it('closes a socket for each WebSocket protocol violation with the right code, and forgets sockets dropped mid-way', async () => {
    const open = f.coord.stats.connections;
    for (const v of VIOLATIONS) {
      const c = await RawClient.open(f.port);
      c.write(v.bytes());
      expect([v.what, await within(c.closed, v.what)]).toEqual([v.what, v.code]);
      f.tally.frames++;
    }
    for (const d of DROPS) {
      const c = await RawClient.open(f.port, d.upgrade);
      c.write(d.bytes(f.port));
      await new Promise((r) => setTimeout(r, 5));
      c.socket.destroy();
      f.tally.frames++;
    }
    // A message in three fragments is one message: answered once.
    const c = await RawClient.open(f.port);
    const parts = ['{"ty', 'pe":"da', 'nce"}'];
    c.write(Buffer.concat(parts.map((p, i) => encodeFrame(i ? OP.continuation : OP.text, Buffer.from(p), { fin: i === 2 }))));
    await until(() => c.texts.some((t) => t.includes('unknown client message type \\"dance\\"')), 'the error for a fragmented message');
    c.socket.destroy();
    await until(() => f.coord.stats.connections === open, 'every dropped socket forgotten');
  });

  it('forgets hundreds of connections opened and dropped at once, at any point of their opening', async () => {
    const open = f.coord.stats.connections;
    const sockets = Array.from({ length: 300 }, (_, i) => {
      const ws = new WebSocket(f.url);
      ws.on('error', () => {});
      if (i % 3 === 0) ws.terminate();
      else ws.on('open', () => (i % 3 === 1 ? ws.terminate() : ws.close()));
      return ws;
    });
    await until(() => sockets.every((ws) => ws.readyState === WebSocket.CLOSED), 'every socket closed');
    await until(() => f.coord.stats.connections === open, 'every socket forgotten');
    f.tally.frames += sockets.length;
  });

  it('refuses signal data nested deeper than any signal needs (up to as deep as JSON.stringify can go), and relays a shallow one', async () => {
    const c = await Client.open(f.url);
    const { peerId } = await c.register('deep');
    const limit = stringifyDepth();
    const depths = [30, ...Array.from({ length: 18 }, (_, i) => limit - 200 + 25 * i)];
    for (const d of depths) c.ws.send(`{"type":"signal","to":"${peerId}","data":${'['.repeat(d)}${']'.repeat(d)}}`);
    c.ws.send('{"type":"barrier"}');
    await until(() => c.of('error').some((e) => e.message.includes('"barrier"')), 'the barrier');
    expect(c.of('signal')).toHaveLength(1);
    const refused = c.of('error').filter((e) => /signal\.data: (nests deeper than 32 levels|must be a JSON value)/.test(e.message));
    expect(refused).toHaveLength(depths.length - 1);
    expect(f.alarms.filter((l) => DEEP_DROP.test(l))).toEqual([]);
    f.tally.frames += depths.length + 1;
    c.ws.close();
  });

  it('cuts a client that never reads instead of queueing for it: a peer flooding itself with relayed signals', async () => {
    const c = await Client.open(f.url);
    const { peerId } = await c.register('never reads');
    c.ws.pause();
    const frame = JSON.stringify({ type: 'signal', to: peerId, data: 'x'.repeat(MAX_SIGNAL_DATA_BYTES - 2) });
    const cut = () => f.gone.some((g) => g.peerId === peerId);
    let sent = 0;
    for (; sent < FLOOD && !cut() && c.ws.readyState === WebSocket.OPEN; sent++) {
      c.ws.send(frame);
      while (c.ws.bufferedAmount > 2 ** 20 && c.ws.readyState === WebSocket.OPEN) await new Promise((r) => setTimeout(r, 1));
    }
    await until(cut, 'the peer that never reads dropped');
    expect(f.gone.find((g) => g.peerId === peerId)?.reason).toBe('connection closed');
    expect(sent).toBeLessThan(FLOOD);
    f.tally.frames += sent;
  });

  it(`holds no more memory after all that than it did before, give or take a bound`, () => {
    const grown = retained(gc) - before;
    console.info(`memory grew ${(grown / 2 ** 20).toFixed(1)} MiB (gc ${gc ? 'on' : 'off'})`);
    // What stays is mostly the records of the fuzz peers that registered and left (the coordinator
    // keeps them all). Without a collector, garbage not yet collected counts too: the bound is then generous.
    expect(grown).toBeLessThan((gc ? 32 : 160) * 2 ** 20);
  });

  it('then lets an honest swarm join and train the whole run while hostile peers keep firing', async () => {
    for (const sink of f.sinkClients.values()) sink.ws.close();
    await until(() => f.coord.progress().peers.every((p) => p.state === 'gone'), 'the sinks gone');
    const ring = new Map<string, PeerKey>();
    for (const name of ['honest-0', 'honest-1', 'honest-2']) honest.push(await new HonestPeer(name, f.url, ring).connect());
    await until(() => honest.every((p) => p.stage >= 0), 'the honest peers placed');
    expect(honest.map((p) => p.stage).sort()).toEqual([0, 1, 2]);
    const mark = f.gone.length;
    const commits: CommitEvent[] = [];
    f.coord.on('commit', (c) => commits.push(c));
    let over = false;
    const seen: Harassed = { sent: 0, errors: [], rounds: 0, invalid: [] };
    const midway = () => commits.length >= run.steps / 2;
    const hostile = (['forged report', 'false evidence', 'leave'] as const).map((finale, i) => harass(f, new Rng(SEED + 100 + i), honest, finale, midway, () => over, seen));
    const trained = await within(f.coord.trained, 'the honest run trained', 40_000);
    over = true;
    await Promise.all(hostile);
    f.tally.frames += seen.sent;

    expect(trained.step).toBe(run.steps);
    const ids = new Set(honest.map((p) => p.peerId));
    expect(commits.map((c) => c.step)).toEqual(Array.from({ length: run.steps }, (_, i) => i + 1));
    expect(commits.flatMap((c) => c.work.map((w) => w.peerId)).filter((id) => !ids.has(id))).toEqual([]);
    expect(f.aborted).toEqual([]);
    expect(f.gone.filter((g) => ids.has(g.peerId))).toEqual([]);
    // The forger and the false accuser are purged; nobody else is.
    expect(f.gone.slice(mark).filter((g) => g.reason.startsWith('purged')).length).toBe(2);
    for (const p of honest) {
      expect(p.signalThrows).toEqual([]);
      // The only refusals an honest peer may see: a signal racing a hostile peer's departure.
      expect(p.errors.filter((e) => !/^cannot relay signal: peer p\d+-[0-9a-f]{6} is not connected$/.test(e))).toEqual([]);
    }
    expect(honest.reduce((n, p) => n + p.signals, 0)).toBeGreaterThan(0);
    expect(seen.rounds).toBe(0);
    expect(seen.invalid).toEqual([]);
    expect(seen.errors.length).toBeGreaterThan(0);
  });

  it('closes promptly with peers still connected', async () => {
    const t0 = Date.now();
    await within(f.coord.close(), 'closing the coordinator', 5000);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(f.coord.stats.connections).toBe(0);
  });

  it('never threw, and never logged a bug of its own but the nesting one', () => {
    expect(crashes).toEqual([]);
    expect(f.alarms.filter((l) => !DEEP_DROP.test(l))).toEqual([]);
  });
});

describe('the transport on its own', () => {
  it(`forgives bad frames older than its window, and cuts a socket that sends maxBad within it`, async () => {
    const t = new Transport({ message: () => {}, close: () => {} }, () => {}, 3, 300);
    await t.listen(0, '127.0.0.1');
    const c = new Client(new WebSocket(t.url!));
    await new Promise((resolve) => c.ws.once('open', resolve));
    const bad = () => c.ws.send('{');
    bad();
    bad();
    await new Promise((r) => setTimeout(r, 400));
    bad();
    bad();
    await until(() => c.of('error').length === 4, 'four errors');
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    bad();
    expect(await within(c.closed, 'the cut')).toBe(1008);
    expect(c.of('error').at(-1)?.message).toBe('closing the connection after 3 bad messages');
    await t.close();
  });
});

describe('closing the transport', () => {
  it('takes under 2.5 s whatever its clients do: a half-sent handshake, a silent TCP socket, a peer that ignores the close handshake', async () => {
    const t = new Transport({ message: () => {}, close: () => {} }, () => {});
    const port = await t.listen(0, '127.0.0.1');
    // A half-sent handshake, a silent socket, and a client that never answers a close frame (issue 19 #13's attacker).
    const [halfOpen, silent, deaf] = await holdOpen(port);
    await until(() => t.conns.size === 1, 'the deaf client connected');
    const t0 = Date.now();
    await within(t.close(), 'closing', 5000);
    expect(Date.now() - t0).toBeLessThan(2500);
    for (const s of [halfOpen, silent, deaf]) await within(new Promise((r) => (s.destroyed ? r(0) : s.once('close', r))), 'the socket cut');
  });
});

describe("a receiving peer's links and WebRTC adapter, fed the garbage a coordinator relays", () => {
  const gc = collector();

  it('never throw, and a real channel still opens and carries a message through thousands of garbage signals', async () => {
    const rng = new Rng(SEED + 7);
    const got: number[] = [];
    const sides = {} as Record<'a' | 'b', NeighbourLinks>;
    const make = (self: 'a' | 'b') =>
      new NeighbourLinks({
        self,
        rtc: nodeRtc,
        sendSignal: (to, data) => setImmediate(() => (to === 'a' || to === 'b') && sides[to].signal(self, data)),
        onMessage: (_from, bytes) => got.push(bytes[0]),
        onChange: () => {},
        log: () => {},
        maxMessageBytes: 1 << 20,
        openTimeoutMs: 1500,
      });
    sides.a = make('a');
    sides.b = make('b');
    // b follows the attempts of "0" (a lower id) and initiates towards "h"; "x" is no neighbour of it.
    sides.a.set(['b']);
    sides.b.set(['a', '0', 'h']);
    let threw = 0;
    for (let i = 0; i < 3000; i++) {
      try {
        sides.b.signal(rng.pick(['0', 'h', 'x']), rng.chance(0.8) ? signalData(rng) : randomValue(rng, 3));
      } catch {
        threw++;
      }
    }
    expect(threw).toBe(0);
    await until(() => sides.a.connected().includes('b') && sides.b.connected().includes('a'), 'a real channel between a and b', 20_000);
    sides.a.send('b', Uint8Array.of(42));
    await until(() => got.includes(42), 'the message over it');
    sides.a.close();
    sides.b.close();
  });

  it('keep at most a few candidates a neighbour sends before its offer, and ignore requests to renegotiate or add transceivers', async () => {
    const p = nodeRtc({ initiator: false, sendSignal: () => {} });
    const before = retained(gc);
    // Each parsed from its own JSON text, as the coordinator's relay hands it over (no string shared among them).
    const candidate = (i: number) => JSON.parse(`{"type":"candidate","candidate":{"candidate":"${String(i).padEnd(40_000, 'x')}","sdpMLineIndex":0,"sdpMid":"0"}}`);
    for (let i = 0; i < 2000; i++) p.signal(candidate(i));
    // Kept without a cap, these would be 80 MB.
    expect(retained(gc) - before).toBeLessThan((gc ? 16 : 64) * 2 ** 20);
    p.destroy();

    const signals: unknown[][] = [[], []];
    const peers: RtcPeer[] = [];
    const relay = (to: number) => (data: unknown) => {
      signals[1 - to].push(data);
      setImmediate(() => peers[to].signal(data));
    };
    peers.push(nodeRtc({ initiator: true, sendSignal: relay(1) }), nodeRtc({ initiator: false, sendSignal: relay(0) }));
    await within(Promise.all(peers.map((q) => q.connected)), 'a real connection');
    await new Promise((r) => setTimeout(r, 200));
    const offered = signals[0].length;
    const rng = new Rng(SEED + 8);
    for (let i = 0; i < 50; i++)
      peers[0].signal(
        rng.pick([{ renegotiate: true }, { transceiverRequest: { kind: 'audio', init: {} } }, { type: 'transceiverRequest', transceiverRequest: { kind: 'video' } }]),
      );
    await new Promise((r) => setTimeout(r, 300));
    expect(signals[0].length).toBe(offered);
    for (const q of peers) q.destroy();
  });
});
