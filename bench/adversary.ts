// `node --import tsx bench/adversary.ts --attack NAME [worker flags]`: a worker (worker/worker.ts)
// that cheats in one way, for the adversarial tests and `npm run bench:chaos`. Each attack is what
// a hostile build of the client could do to the frames it sends its neighbours; everything else
// (registration, reports, heartbeats) is the honest client's, so what catches it is the swarm's
// checks, not a tell of the test.
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import WebSocket from 'ws';
import type { SessionOptions } from '../shared/peer/session.js';
import type { StageSnapshot } from '../shared/peer/state-sync.js';
import { decodeCheckpoint, encodeCheckpoint } from '../shared/engine/checkpoint.js';
import { CoordinatorClient, type WebSocketConstructor } from '../shared/swarm/coordinator-client.js';
import { PeerKey } from '../shared/swarm/identity.js';
import { FrameKind, HEADER_BYTES } from '../shared/wire/frame.js';
import { rng } from '../shared/base/random.js';
import { Colluders, MISREPORTS } from './misreports.js';

export const ATTACKS = [
  'scale-outputs',
  'zero-outputs',
  'nan-outputs',
  'scale-activations',
  'garbage-activations',
  'zero-activations',
  'scale-gradients',
  'nan-activations',
  'replay-activations',
  'fuzz-frames',
  'stolen-key',
  'foreign-account',
  'never-computes',
  'free-rider',
  'overstated-gpu',
  'weak-key',
  'poison-average',
  'equivocate-weights',
  'eval-evidence',
  'false-verdicts',
  'vouch-for-cheat',
  'false-stalls',
  'false-suspects',
  'silent-witness',
  'one-witness-link',
  'cheat-10pct',
  'claim-speed',
  'withhold-gradients',
  'registration-flood',
  'poison-state',
  'withhold-bundle',
] as const;
export type Attack = (typeof ATTACKS)[number];

/**
 * What each attack tampers with: outputs on any stage, activations only from stage 0 up, gradients
 * only from the last stage down; the registration (another peer's key, an account whose key it
 * does not hold, a key of small order); the run itself (it takes a place and never computes, or
 * floods the run with such squatters from one address); a
 * whole lane (two colluding peers, one a stage, made by two processes); the weights it sends
 * its replicas at averaging; the state it gives a joiner; its reports to the coordinator (from the last stage, which receives
 * every kind of frame); or the witnesses of a stage (two colluding replicas of one stage of six).
 */
export const ATTACK_TARGETS: Record<Attack, 'outputs' | 'activations' | 'gradients' | 'registration' | 'place' | 'flood' | 'lane' | 'weights' | 'state' | 'reports' | 'witnesses'> =
  {
    'scale-outputs': 'outputs',
    'zero-outputs': 'outputs',
    'nan-outputs': 'outputs',
    'scale-activations': 'activations',
    'garbage-activations': 'activations',
    'zero-activations': 'activations',
    'scale-gradients': 'gradients',
    'nan-activations': 'activations',
    'replay-activations': 'activations',
    'fuzz-frames': 'activations',
    'stolen-key': 'registration',
    'foreign-account': 'registration',
    'never-computes': 'place',
    'free-rider': 'gradients',
    'overstated-gpu': 'lane',
    'weak-key': 'registration',
    'poison-average': 'weights',
    'equivocate-weights': 'weights',
    'eval-evidence': 'reports',
    'false-verdicts': 'witnesses',
    'vouch-for-cheat': 'witnesses',
    'false-stalls': 'reports',
    'false-suspects': 'reports',
    'silent-witness': 'reports',
    'one-witness-link': 'reports',
    'cheat-10pct': 'activations',
    'claim-speed': 'reports',
    'withhold-gradients': 'gradients',
    'registration-flood': 'flood',
    'poison-state': 'state',
    'withhold-bundle': 'outputs',
  };

/**
 * Attacks that need not be purged to be beaten: they cost the run no step and no long stall, no
 * honest peer is purged, and the attacker earns no more than an honest replica of its stage (for a
 * peer cheating on a tenth of its work, in expectation: caught, it forfeits what it held).
 */
export const CONTAINED: ReadonlySet<Attack> = new Set(['false-stalls', 'false-suspects', 'silent-witness', 'one-witness-link', 'cheat-10pct', 'claim-speed', 'withhold-gradients']);

/**
 * The session hooks of one attack made by the worker itself. `colluders`: the group it belongs to;
 * `lead`: the colluder of a pair that also cheats on its outputs (vouch-for-cheat).
 */
export function attackHooks(attack: Attack, colluders = new Colluders(), lead = false): Partial<SessionOptions> {
  const onSent =
    (kind: FrameKind, f: (t: Float32Array) => void): SessionOptions['onBoundary'] =>
    (side, k, _round, _mb, t) =>
      side === 'sent' && k === kind && f(t);
  switch (attack) {
    // Plausible outputs, ×1.5 (activations on the way up, gradients on the way down): inside any
    // norm band, so only recomputation tells. On any stage.
    case 'scale-outputs':
      return { onBoundary: (side, kind, _r, _mb, t) => side === 'sent' && kind !== FrameKind.EvalActivation && t.forEach((v, i) => (t[i] = 1.5 * v)) };
    case 'zero-outputs':
      return { onBoundary: (side, kind, _r, _mb, t) => side === 'sent' && kind !== FrameKind.EvalActivation && t.fill(0) };
    case 'nan-outputs':
      return { tamper: (_to, f) => (f[5] === FrameKind.Activation || f[5] === FrameKind.Gradient ? withNaN(f) : f) };
    case 'scale-activations':
      return { onBoundary: onSent(FrameKind.Activation, (t) => t.forEach((v, i) => (t[i] = 1.5 * v))) };
    case 'garbage-activations':
      return { onBoundary: onSent(FrameKind.Activation, (t) => noise(t)) };
    case 'zero-activations':
      return { onBoundary: onSent(FrameKind.Activation, (t) => t.fill(0)) };
    case 'scale-gradients':
      return { onBoundary: onSent(FrameKind.Gradient, (t) => t.forEach((v, i) => (t[i] = 100 * v))) };
    // The first float of the payload (a scale, or the first value) set to NaN: the encoder would refuse it, so the bytes are edited.
    case 'nan-activations':
      return { tamper: (_to, f) => (f[5] === FrameKind.Activation ? withNaN(f) : f) };
    // Computes nothing: the activation it received goes back down as the gradient (the same shape),
    // and the honest client reports the round done as ever.
    case 'free-rider':
      return { onBoundary: passThrough() };
    // Two colluding peers, one on each stage, claim a GPU of 10^6 GFLOP/s to draw routes to their
    // lane, and compute nothing (which makes them fast): stage 0 sends noise of an activation's
    // scale up, the last stage sends its input back down as the gradient.
    case 'overstated-gpu': {
      const back = passThrough();
      return {
        claims: { gflops: 1e6 },
        onBoundary: (side, kind, round, mb, t) => (side === 'sent' && kind === FrameKind.Activation ? noise(t) : back!(side, kind, round, mb, t)),
      };
    }
    // Old content under a new round and microbatch number (re-sealed: the seal is its own).
    // Noise of amplitude 3 added to the weights it sends at averaging (the same to every replica).
    case 'poison-average':
      return { tamper: (_to, f) => (f[5] === FrameKind.ReplicaWeights ? poisoned(f) : f) };
    // Its real weights to the first replica it sends them to at each averaging, and to the others
    // the same weights with one float's lowest bit flipped: too small to move anything, enough to
    // part the replicas' averages.
    case 'equivocate-weights': {
      const sent = new Map<string, number>();
      return {
        tamper: (to, f) => {
          if (f[5] !== FrameKind.ReplicaWeights) return f;
          const tag = `${new DataView(f.buffer, f.byteOffset).getUint32(8, true)}`;
          const n = (sent.get(tag) ?? 0) + 1;
          sent.set(tag, n);
          if (n === 1) return f;
          if (n === 2) process.stdout.write(`${ATTACK_MADE} different weights for the averaging of tag ${tag} to ${to}\n`);
          const out = f.slice();
          out[HEADER_BYTES] ^= 1;
          return out;
        },
      };
    }
    // Lies to the coordinator (bench/misreports.ts); two of them also cheat on their outputs.
    case 'eval-evidence':
    case 'false-verdicts':
    case 'vouch-for-cheat':
    case 'false-stalls':
    case 'false-suspects':
    case 'silent-witness':
    case 'one-witness-link': {
      const cheats = attack === 'one-witness-link' || (attack === 'vouch-for-cheat' && lead);
      return { misreport: MISREPORTS[attack](colluders), ...(cheats && attackHooks('scale-outputs')) };
    }
    // Noise of an activation's scale instead of one activation in ten: a peer that saves a tenth of its compute.
    case 'cheat-10pct':
      return { onBoundary: onSent(FrameKind.Activation, (t) => Math.random() < 0.1 && noise(t)) };
    // It computes honestly and claims a GPU of 10^6 GFLOP/s to draw more work (a round's time is
    // the coordinator's own measure: its reports carry none).
    case 'claim-speed':
      return { claims: { gflops: 1e6 } };
    // A plausible state for a joiner (one poisoner on each stage): the right step and shape, every
    // parameter moved by up to ±0.1 (no range check tells). Only the hash its replicas vouched for
    // (or, at step 0, the seeded init the joiner builds itself) refuses it; the poisoner's seal of
    // it, against the hash it reported itself for that step, gets it purged.
    case 'poison-state':
      return { tamperState: poisonedState };
    // Computes, reports its rounds done, and never sends a gradient down: its upstream neighbour is
    // left waiting, late with its own report (each such round costs the withholder a channel).
    case 'withhold-gradients':
      return { tamper: (_to, f) => (f[5] === FrameKind.Gradient ? [] : f) };
    // Cheats on every output (×1.5) and, audited, shows its bundle to no witness: a witness cannot
    // prove it got none, so a withheld bundle must not let the round commit unchecked.
    case 'withhold-bundle': {
      let told = false;
      const tamperBundle = (to: string) => {
        if (!told) process.stdout.write(`${ATTACK_MADE} withheld its audit bundle from ${to}\n`);
        told = true;
        return undefined;
      };
      return { ...attackHooks('scale-outputs'), tamperBundle };
    }
    case 'stolen-key':
    case 'foreign-account':
    case 'weak-key':
    case 'never-computes':
    case 'registration-flood':
      throw new Error(`${attack} is not made by the worker: see impostor()`);
    // Its first activation frame followed by FUZZ_FRAMES mutants of it, each sealed: a flood of
    // malformed frames down a real data channel, as an honest peer's own key vouches for them.
    case 'fuzz-frames': {
      let done = false;
      return {
        tamper: (_to, f) => {
          if (done || f[5] !== FrameKind.Activation) return f;
          done = true;
          const random = rng(0xf022);
          return [f, ...Array.from({ length: FUZZ_FRAMES }, () => mutate(f, random))];
        },
      };
    }
    case 'replay-activations': {
      let first: Uint8Array | undefined;
      return {
        tamper: (_to, f) => {
          if (f[5] !== FrameKind.Activation) return f;
          if (!first || first.length !== f.length) return (first = f.slice());
          const old = first.slice();
          old.set(f.subarray(8, 16), 8);
          return old;
        },
      };
    }
  }
}

/** What an attacker writes to its log when it made its attack (one that needs a second replica linked may never get to). */
export const ATTACK_MADE = 'attack made:';

/** How many malformed frames the fuzz-frames attacker sends its neighbour. */
export const FUZZ_FRAMES = 10_000;

/**
 * One malformed variant of `f`: bits flipped, cut short, a header byte set at random, random bytes,
 * or grown. Never shorter than a header: anything shorter cannot be sealed (a receiver drops
 * unsealed bytes before any other check).
 */
function mutate(f: Uint8Array, random: () => number): Uint8Array {
  const at = (n: number) => Math.floor(random() * n);
  switch (at(5)) {
    case 0: {
      const out = f.slice();
      for (let i = 1 + at(8); i > 0; i--) out[at(out.length)] ^= 1 << at(8);
      return out;
    }
    case 1:
      return f.slice(0, HEADER_BYTES + at(f.length - HEADER_BYTES));
    case 2: {
      const out = f.slice();
      out[at(HEADER_BYTES)] = at(256);
      return out;
    }
    case 3:
      return Uint8Array.from({ length: HEADER_BYTES + at(2 * f.length) }, () => at(256));
    default: {
      const out = new Uint8Array(f.length + 1 + at(1024));
      out.set(f);
      return out;
    }
  }
}

/** A last stage that sends each activation it received back down as that microbatch's gradient. */
function passThrough(): SessionOptions['onBoundary'] {
  const received = new Map<string, Float32Array>();
  return (side, kind, round, mb, t) => {
    if (side === 'received' && kind === FrameKind.Activation) received.set(`${round}:${mb}`, t.slice());
    if (side !== 'sent' || kind !== FrameKind.Gradient) return;
    const x = received.get(`${round}:${mb}`);
    if (x?.length === t.length) t.set(x);
    if (received.size > 64) received.delete(received.keys().next().value!);
  };
}

/** Gaussian noise of the tensor's own RMS (no norm check can tell it from a real activation). */
function noise(t: Float32Array): void {
  const rms = Math.sqrt(t.reduce((s, v) => s + v * v, 0) / t.length);
  for (let i = 0; i < t.length; i++) t[i] = rms * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}

/** `f` (fp32 weights) with uniform noise of amplitude 3 added, the same noise for the same averaging. */
function poisoned(f: Uint8Array): Uint8Array {
  const out = f.slice();
  const view = new DataView(out.buffer);
  const random = rng(view.getUint32(8, true));
  for (let at = HEADER_BYTES; at + 4 <= out.length; at += 4) view.setFloat32(at, view.getFloat32(at, true) + 3 * (2 * random() - 1), true);
  return out;
}

export function poisonedState(s: StageSnapshot): StageSnapshot {
  const c = decodeCheckpoint(s.bytes);
  const random = rng(s.step + 1);
  const params = c.params.map((v) => v + 0.1 * (2 * random() - 1));
  process.stdout.write(`${ATTACK_MADE} a poisoned state of step ${s.step}\n`);
  return { ...s, bytes: encodeCheckpoint({ ...c, params }) };
}

function withNaN(f: Uint8Array): Uint8Array {
  const out = f.slice();
  new DataView(out.buffer).setFloat32(HEADER_BYTES, Number.NaN, true);
  return out;
}

/**
 * The attacks a client of its own makes (no GPU, no training): it registers with another peer's
 * session key (`--victim-key`) or claiming an account whose key it does not hold
 * (`--victim-account`) and says what the coordinator answered; or it registers as itself, takes a
 * place on a stage and only heartbeats, never loading the stage. Exit code 3: refused.
 */
async function impostor(attack: Attack, flag: (name: string) => string): Promise<number> {
  const own = await PeerKey.generate();
  // A key of small order: the all-zero point, with an all-zero signature (which verifies under it for about half of all nonces).
  const weak = Object.assign(Object.create(PeerKey.prototype), { publicHex: '00'.repeat(32), sign: async () => new Uint8Array(64) }) as PeerKey;
  const key = attack === 'stolen-key' ? (Object.assign(Object.create(PeerKey.prototype), own, { publicHex: flag('--victim-key') }) as PeerKey) : attack === 'weak-key' ? weak : own;
  const signer = privateKeyToAccount(generatePrivateKey());
  const account =
    attack === 'foreign-account' ? { address: flag('--victim-account') as `0x${string}`, signMessage: (message: string) => signer.signMessage({ message }) } : undefined;
  const client = new CoordinatorClient(flag('--coordinator'), WebSocket as unknown as WebSocketConstructor);
  const capability = { adapter: 'impostor', kind: 'discrete' as const, gflops: 1000, memoryBytes: 8e9, maxLayers: 64 };
  try {
    await client.connect({ name: flag('--name'), capability }, { key, ...(account && { account }) });
  } catch (e) {
    process.stdout.write(`${(e as Error).message}\n`);
    return 3;
  }
  process.stdout.write(`registered as ${client.peerId}; heartbeating, never ready\n`);
  const beat = setInterval(() => client.send({ type: 'heartbeat', step: 0, bytesSent: 0, bytesReceived: 0 }), 1000);
  const reason = await new Promise<string>((resolve) => client.on('close', (m) => resolve(m.reason)));
  clearInterval(beat);
  process.stdout.write(`the coordinator closed the connection: ${reason}\n`);
  return 0;
}

/** How many identities the registration flood tries to keep in the run at once. */
export const FLOOD_IDENTITIES = 100;

/** A WebSocket whose connections come from 127.0.0.2: one address, not the local swarm's 127.0.0.1. */
class FromOtherAddress extends WebSocket {
  constructor(url: string) {
    super(url, { localAddress: '127.0.0.2' });
  }
}

/**
 * Issue 19 #8, eclipse by registration: FLOOD_IDENTITIES fresh keys registered from one address as
 * fast as the coordinator answers, each a squatter that heartbeats and never loads its stage; every
 * one refused or dropped is replaced with a new key, all run long. Never returns (killed at the end).
 */
async function flood(flag: (name: string) => string): Promise<never> {
  const capability = { adapter: 'impostor', kind: 'discrete' as const, gflops: 1000, memoryBytes: 8e9, maxLayers: 64 };
  let held = 0; // connecting or in the run
  let live = 0;
  let refused = 0;
  const squat = async (): Promise<void> => {
    const client = new CoordinatorClient(flag('--coordinator'), FromOtherAddress as unknown as WebSocketConstructor);
    try {
      await client.connect({ name: flag('--name'), capability }, { key: await PeerKey.generate() });
    } catch (e) {
      if (refused++ % 100 === 0) process.stdout.write(`refused (${refused} so far): ${(e as Error).message}\n`);
      return;
    }
    live++;
    const beat = setInterval(() => client.send({ type: 'heartbeat', step: 0, bytesSent: 0, bytesReceived: 0 }), 1000);
    const reason = await new Promise<string>((resolve) => client.on('close', (m) => resolve(m.reason)));
    clearInterval(beat);
    live--;
    process.stdout.write(`${client.peerId} dropped: ${reason}\n`);
  };
  for (let second = 0; ; second++) {
    for (; held < FLOOD_IDENTITIES; held++) void squat().finally(() => held--);
    if (second % 10 === 0) process.stdout.write(`${live} squatters in the run, ${refused} registrations refused\n`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function cli(): Promise<void> {
  const flag = (name: string) => {
    const at = process.argv.indexOf(name);
    if (at < 0 || process.argv[at + 1] === undefined) throw new Error(`${name} is required`);
    return process.argv[at + 1];
  };
  const attack = flag('--attack') as Attack;
  if (!ATTACKS.includes(attack)) throw new Error(`--attack must be one of ${ATTACKS.join(', ')}`);
  if (attack === 'registration-flood') await flood(flag);
  if (ATTACK_TARGETS[attack] === 'registration' || ATTACK_TARGETS[attack] === 'place') {
    process.exit(await impostor(attack, flag));
  }
  // The worker parses its own flags when it is imported.
  const own = (name: string, takesValue: boolean) => {
    const at = process.argv.indexOf(name);
    return at < 0 ? undefined : process.argv.splice(at, takesValue ? 2 : 1)[takesValue ? 1 : 0];
  };
  own('--attack', true);
  const colluders = new Colluders(own('--colluders', true));
  const lead = own('--lead', false) !== undefined;
  const { main, exitWith } = await import('../worker/worker.js');
  exitWith(main(attackHooks(attack, colluders, lead)));
}

if (process.argv[1]?.endsWith('adversary.ts')) void cli();
