// The coordinator fuzzer's frames: random JSON, structure-aware mutations of a valid instance of
// every client message type, text-level mutations of their JSON, frames over the size cap and
// binary frames; and valid messages aimed wrong (the sequences a hostile registered peer sends).
// Deterministic for a seed (rng.ts). Deep nesting is spliced in as text: JSON.stringify itself
// gives up at a few thousand levels, and the point is to send what a serializer would not.
import { type ClientMessageOf, type ClientMessageType, MAX_MESSAGE_BYTES } from '../../shared/swarm/protocol.js';
import type { Rng } from './rng.js';

export interface Frame {
  cat: string;
  /** A text frame's exact bytes (as UTF-8 on the wire), or a binary frame. */
  data: Buffer;
  binary: boolean;
}

/** Peer ids a frame may name (ones that exist), and the sender's own once it has one. */
export interface Targets {
  known: readonly string[];
  self?: string;
}

const HOSTILE_STRINGS = [
  '',
  ' ',
  '\u0000',
  '\ud800',
  '\udc00',
  '\udc00\ud800',
  '😀'.repeat(40),
  '\u202eevil',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'NaN',
  'Infinity',
  '-0',
  '1e309',
  '0x1f',
  '9'.repeat(80),
  'F'.repeat(64),
  `0x${'f'.repeat(40)}`,
  'a'.repeat(65),
  '<script>alert(1)</script>',
  '../../etc/passwd',
];
const HOSTILE_NUMBERS = [-1, -0, 0.5, 1.5, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308, -1e308, 5e-324, -Number.MAX_SAFE_INTEGER];
const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toJSON', 'then', 'valueOf', '', '\ud800', 'type', 'extra'];
/** Number literals JSON does not have, or that overflow a double. */
const BAD_LITERALS = ['NaN', 'Infinity', '-Infinity', '1e999', '-1e999', '0x10', '01', '+1', '.5', '1.', '-', '1e', '1E400', '-0.0e-999'];
const JUNK = ['\u0000', '\\', '"', '}', ']', ',', ':', '\ufeff', '\u2028', '\ud800', '{', '[', 'null', '\t'];
const TYPE_NAMES = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'REGISTER',
  'register ',
  'register\u0000',
  '',
  'hello',
  'welcome',
  'assign',
  'error',
  'x'.repeat(200),
];

const hex = (rng: Rng, n: number) => rng.hex(n);
const capability = { adapter: 'fuzz', kind: 'cpu', gflops: 1, memoryBytes: 1e9, maxLayers: 8 } as const;

/** Shapes a WebRTC stack might be fed: simple-peer's own signals, envelopes around them, and garbage. */
export function signalData(rng: Rng): unknown {
  const s = rng.pick([
    () => ({ type: 'offer', sdp: `v=0\r\no=- ${rng.int(0, 1e9)} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n` }),
    () => ({ type: 'answer', sdp: rng.pick(HOSTILE_STRINGS) }),
    () => ({ type: 'candidate', candidate: { candidate: `candidate:${rng.int(0, 9)} 1 udp 1 10.0.0.${rng.int(0, 255)} 9 typ host`, sdpMLineIndex: 0, sdpMid: '0' } }),
    () => ({ candidate: 'a'.repeat(rng.int(1, 4000)) }),
    () => ({ renegotiate: true }),
    () => ({ transceiverRequest: { kind: 'audio', init: {} } }),
    () => randomValue(rng, 3),
  ])();
  return rng.chance(0.7) ? { n: rng.pick([0, 1, -1, 0.5, 2 ** 53, 1e300]), s } : s;
}

const sealOf = (rng: Rng, t: Targets) => ({ kind: 1, tag: rng.int(0, 9), microbatch: 0, hash: hex(rng, 64), from: rng.pick(t.known), to: rng.pick(t.known), sig: hex(rng, 128) });

const stateSealOf = (rng: Rng, t: Targets) => ({ from: rng.pick(t.known), stage: rng.int(0, 2), step: rng.int(0, 9), hash: hex(rng, 64), sig: hex(rng, 128) });

/** A valid instance of every client message type: tsc checks each against protocol.ts. */
export const SEEDS: { [K in ClientMessageType]: (rng: Rng, t: Targets) => ClientMessageOf<K> } = {
  register: (rng) => ({
    type: 'register',
    name: `fuzz-${hex(rng, 4)}`,
    capability,
    key: hex(rng, 64),
    keyProof: hex(rng, 128),
    held: [{ runId: 'fuzz-run', stage: 0, step: 0, hash: hex(rng, 64) }],
  }),
  signal: (rng, t) => ({ type: 'signal', to: rng.pick(t.known), data: signalData(rng) }),
  links: (rng, t) => ({ type: 'links', connected: t.known.slice(0, rng.int(0, t.known.length + 1)) }),
  ready: (rng, t) => ({ type: 'ready', step: rng.int(0, 5), ...(rng.chance(0.5) && { hash: hex(rng, 64), seal: stateSealOf(rng, t) }) }),
  'bad-state': (rng, t) => ({ type: 'bad-state', seal: stateSealOf(rng, t) }),
  heartbeat: (rng) => ({ type: 'heartbeat', step: rng.int(0, 9), loss: 2.5, valLoss: 2.6, tokensPerSec: 100, bytesSent: 10, bytesReceived: 20, busyFraction: 0.5 }),
  'round-done': (rng, t) => ({
    type: 'round-done',
    round: rng.int(0, 9),
    microbatches: rng.int(0, 4),
    lossSum: 3,
    inputs: [sealOf(rng, t)],
  }),
  equivocation: (rng, t) => ({ type: 'equivocation', seals: [sealOf(rng, t), sealOf(rng, t)] }),
  evidence: (rng, t) => ({ type: 'evidence', seal: sealOf(rng, t), frame: Buffer.from(Array.from({ length: rng.int(0, 64) }, () => rng.int(0, 255))).toString('base64') }),
  verdict: (rng, t) => ({ type: 'verdict', round: rng.int(0, 9), microbatch: rng.int(0, 3), peer: rng.pick(t.known), ok: rng.chance(0.5), reason: 'fuzz' }),
  evaluated: (rng) => ({ type: 'evaluated', step: rng.int(0, 9), valLoss: 2.5 }),
  checkpoint: (rng) => ({ type: 'checkpoint', step: rng.int(0, 9), hash: hex(rng, 64) }),
  stalled: (rng, t) => ({ type: 'stalled', round: rng.int(0, 9), from: rng.pick(t.known), reason: 'no activation' }),
  suspect: (rng, t) => ({ type: 'suspect', round: rng.int(0, 9), peer: rng.pick(t.known), microbatch: rng.int(0, 3), reason: 'RMS out of band' }),
  leave: (rng) => ({ type: 'leave', reason: 'pause', kept: { step: rng.int(0, 9), hash: hex(rng, 64) } }),
  generated: (rng) => ({ type: 'generated', requestId: rng.int(0, 9), text: 'hello', refused: false }),
  generating: (rng) => ({ type: 'generating', requestId: rng.int(0, 9), from: rng.int(0, 8), text: 'hel' }),
  infer: (rng) => ({ type: 'infer', spendId: String(rng.int(0, 1e6)), prompt: 'To be', maxTokens: 8 }),
};
export const CLIENT_TYPES = Object.keys(SEEDS) as ClientMessageType[];

export function randomValue(rng: Rng, depth: number): unknown {
  if (depth <= 0 || rng.chance(0.4)) {
    return rng.pick([
      () => null,
      () => rng.chance(0.5),
      () => rng.int(-1e6, 1e6),
      () => rng.next() * 10 ** rng.int(-5, 300),
      () => rng.pick(HOSTILE_NUMBERS),
      () => rng.pick(HOSTILE_STRINGS),
      () => String.fromCharCode(...Array.from({ length: rng.int(0, 12) }, () => rng.int(0, 0xffff))),
    ])();
  }
  if (rng.chance(0.5)) return Array.from({ length: rng.int(0, 5) }, () => randomValue(rng, depth - 1));
  const o: Record<string, unknown> = {};
  for (let i = rng.int(0, 5); i > 0; i--) setOwn(o, rng.chance(0.3) ? rng.pick(HOSTILE_KEYS) : rng.pick(['type', 'to', 'data', 'step', 'name']), randomValue(rng, depth - 1));
  if (rng.chance(0.5)) o.type = rng.pick(CLIENT_TYPES);
  return o;
}

/** An own, enumerable property even for `__proto__` (an assignment would set the prototype instead). */
function setOwn(o: object, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

// ---------------------------------------------------------------------------------------------
// Structure-aware mutation: a path into the message, then one operator there.

type Node = Record<string, unknown> | unknown[];
const DEEP = '\u0001DEEP\u0001';

/** Every container in `v` with the keys it holds, root first. */
function containers(v: unknown, out: Array<{ node: Node; keys: string[] }> = []): Array<{ node: Node; keys: string[] }> {
  if (typeof v !== 'object' || v === null) return out;
  const node = v as Node;
  out.push({ node, keys: Object.keys(node) });
  for (const k of Object.keys(node)) containers((node as Record<string, unknown>)[k], out);
  return out;
}

const MUTATORS: Record<string, (rng: Rng, node: Node, key: string | undefined) => void> = {
  drop: (_rng, node, key) => key !== undefined && (Array.isArray(node) ? node.splice(Number(key), 1) : delete node[key]),
  wrongType: (rng, node, key) => key !== undefined && put(node, key, randomValue(rng, 2)),
  extra: (rng, node) => (Array.isArray(node) ? node.push(randomValue(rng, 1)) : setOwn(node, rng.pick(HOSTILE_KEYS), randomValue(rng, 2))),
  hugeString: (rng, node, key) => put(node, key ?? 'extra', rng.pick(['x', 'é', '😀', '\ud800']).repeat(rng.int(1000, 30_000))),
  hugeArray: (rng, node, key) =>
    put(
      node,
      key ?? 'extra',
      Array.from({ length: rng.int(257, 20_000) }, () => rng.pick(['', 'p1', 0, null])),
    ),
  deep: (_rng, node, key) => put(node, key ?? 'extra', DEEP),
  number: (rng, node, key) => put(node, key ?? 'step', rng.pick(HOSTILE_NUMBERS)),
  string: (rng, node, key) => put(node, key ?? 'name', rng.pick(HOSTILE_STRINGS)),
  type: (rng, node) => !Array.isArray(node) && (node.type = rng.chance(0.5) ? rng.pick(CLIENT_TYPES) : rng.pick(TYPE_NAMES)),
  protoKey: (rng, node) => !Array.isArray(node) && setOwn(node, rng.pick(['__proto__', 'constructor', 'prototype']), { type: 'ready', polluted: true }),
};

function put(node: Node, key: string, value: unknown): void {
  if (Array.isArray(node)) node[Number(key) || 0] = value;
  else setOwn(node, key, value);
}

/** One to three structural mutations of `msg`, as JSON text (deep nesting spliced in). */
export function mutate(rng: Rng, msg: object): { cat: string; text: string } {
  const root = JSON.parse(JSON.stringify(msg)) as Node;
  const ops: string[] = [];
  for (let i = rng.int(1, 4); i > 0; i--) {
    const { node, keys } = rng.pick(containers(root));
    const op = rng.pick(Object.keys(MUTATORS));
    MUTATORS[op](rng, node, keys.length ? rng.pick(keys) : undefined);
    ops.push(op);
  }
  let text = JSON.stringify(root);
  const depth = rng.pick(NESTING);
  const open = rng.chance(0.5) ? '['.repeat(depth) : '{"a":'.repeat(depth);
  const close = open[0] === '[' ? ']'.repeat(depth) : '}'.repeat(depth);
  text = text.replaceAll(JSON.stringify(DEEP), () => `${open}1${close}`);
  return { cat: `mutated ${(msg as { type: string }).type}: ${ops.sort().join('+')}`, text };
}

/**
 * Nesting depths, clear of the band where JSON.stringify runs out of stack (a few thousand levels,
 * depending on how deep the caller already is): below it every parser and serializer copes, above
 * it every one refuses. The band itself is probed on its own, where the outcome may go either way.
 */
const NESTING = [2, 40, 600, 1500, 12_000, 30_000];

// ---------------------------------------------------------------------------------------------
// Text-level mutation of a message's JSON.

const TEXT_MUTATORS: Record<string, (rng: Rng, text: string) => string> = {
  literal: (rng, text) => text.replace(/-?\d+(\.\d+)?([eE][-+]?\d+)?/, rng.pick(BAD_LITERALS)),
  truncate: (rng, text) => text.slice(0, rng.int(0, text.length)),
  junk: (rng, text) => {
    const at = rng.int(0, text.length + 1);
    return text.slice(0, at) + rng.pick(JUNK) + text.slice(at);
  },
  duplicateKey: (rng, text) => text.replace('{', `{"type":${JSON.stringify(rng.pick([...CLIENT_TYPES, ...TYPE_NAMES]))},`),
  bom: (_rng, text) => `\ufeff${text}`,
  trailing: (rng, text) => text + rng.pick([' // comment', ',', '}', ' {"type":"ready","step":0}', '\u0000']),
  escape: (rng, text) => text.replace(/"([a-z])/, `"${rng.pick(['\\x41', '\\u12', '\\ud800', '\\', '\\0'])}$1`),
  padToCap: (rng, text) => text + ' '.repeat(Math.max(0, MAX_MESSAGE_BYTES + rng.int(-1, 2) - Buffer.byteLength(text))),
};

export function textMutate(rng: Rng, text: string): { cat: string; text: string } {
  const op = rng.pick(Object.keys(TEXT_MUTATORS));
  return { cat: `text ${op}`, text: TEXT_MUTATORS[op](rng, text) };
}

// ---------------------------------------------------------------------------------------------

const textFrame = (cat: string, t: string): Frame => ({ cat, data: Buffer.from(t, 'utf8'), binary: false });

/** One fuzz frame: the categories in the proportions a run draws them. */
export function fuzzFrame(rng: Rng, t: Targets): Frame {
  const seed = () => SEEDS[rng.pick(CLIENT_TYPES)](rng, t);
  const roll = rng.next();
  if (roll < 0.14) return textFrame('random JSON', JSON.stringify(randomValue(rng, rng.int(0, 5))) ?? 'undefined');
  if (roll < 0.6) {
    const m = mutate(rng, seed());
    return textFrame(m.cat.split(':')[0], m.text);
  }
  if (roll < 0.82) {
    const m = textMutate(rng, JSON.stringify(rng.chance(0.7) ? seed() : randomValue(rng, 3)));
    return textFrame(m.cat, m.text);
  }
  if (roll < 0.88) return textFrame('hostile type', JSON.stringify({ ...seed(), type: rng.pick(TYPE_NAMES) }));
  if (roll < 0.9) return textFrame('over the size cap', JSON.stringify({ ...seed(), pad: 'x'.repeat(rng.int(MAX_MESSAGE_BYTES, 3 * MAX_MESSAGE_BYTES)) }));
  if (roll < 0.93) return { cat: 'binary', data: Buffer.from(Array.from({ length: rng.int(0, 3000) }, () => rng.int(0, 256))), binary: true };
  return textFrame('valid', JSON.stringify(seed()));
}

/** How far a hostile peer goes: anything; only what is refused or unanswered (it stays); only what is unanswered. */
export type Hostility = 'any' | 'stay' | 'quiet';

/**
 * A valid message aimed wrong, as a hostile registered peer sends it: quiet ones draw no answer
 * (reports of rounds it is not in, links and stalls naming others, signals to itself, absurd
 * heartbeats), refused ones an error, parting ones make it leave (a report citing forged seals gets
 * it purged).
 */
export function hostileFrame(rng: Rng, t: Targets, unknown: string, how: Hostility = 'any'): Frame {
  const quiet: Array<() => object> = [
    () => ({ type: 'signal', to: t.self ?? rng.pick(t.known), data: signalData(rng) }),
    () => ({ type: 'stalled', round: rng.int(0, 3), from: rng.pick([...t.known, unknown]), reason: rng.pick(HOSTILE_STRINGS) }),
    // Of a round no coordinator is in: nothing to audit, nothing to answer.
    () => ({ type: 'suspect', round: 2 ** 31 + rng.int(0, 1000), peer: rng.pick([...t.known, unknown]), microbatch: rng.int(0, 1 << 20), reason: rng.pick(HOSTILE_STRINGS) }),
    () => ({ type: 'links', connected: [...t.known, unknown, ...Array.from({ length: rng.int(0, 200) }, (_, i) => `p${i}`)] }),
    () => ({ type: 'checkpoint', step: Number.MAX_SAFE_INTEGER - rng.int(0, 1e6), hash: hex(rng, 64) }),
    () => ({ type: 'evaluated', step: rng.int(0, 3), valLoss: rng.pick([-1e308, 1e308, -0, 0]) }),
    () => ({ type: 'heartbeat', step: Number.MAX_SAFE_INTEGER, loss: -1e308, bytesSent: 1e308, bytesReceived: 0, tokensPerSec: 1e308, busyFraction: 1 }),
  ];
  const refused: Array<() => object> = [
    () => SEEDS.register(rng, t),
    () => ({ type: 'signal', to: rng.pick([...t.known, unknown, `${unknown}x`]), data: signalData(rng) }),
    () => SEEDS.generated(rng, t),
    () => SEEDS.infer(rng, t),
  ];
  const parting: Array<() => object> = [
    () => ({ ...SEEDS['round-done'](rng, t), round: rng.pick([0, 1, 2, 2 ** 31, Number.MAX_SAFE_INTEGER]) }),
    () => ({ type: 'leave', reason: '\ud800'.repeat(1024) }),
  ];
  const m = rng.pick({ quiet, stay: [...quiet, ...refused], any: [...quiet, ...refused, ...parting] }[how])();
  return textFrame(`hostile ${(m as { type: string }).type}`, JSON.stringify(m));
}
