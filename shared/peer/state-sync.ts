// A stage's training state moves peer to peer, never through the coordinator: a joiner asks a
// live replica for its newest averaged state, a leaving peer hands its state to its heir. The state
// is a checkpoint (engine/checkpoint.ts: step, parameters, Adam moments) in a message of its own
// kind on the data channel, with the SHA-256 of its bytes so a corrupted or truncated transfer is
// refused, and the run and stage inside it so a state for another stage cannot be loaded. The
// sender signs what it gives (trust/state-seal.ts), so a state no replica vouches for is provable.
//
//   off size field
//     0  4   magic 0x54535753 ("SWST" as a u32)
//     4  1   version (1)
//     5  1   type: 1 request, 2 state, 3 none (the payload is why, UTF-8)
//     6  2   reserved, zero
//     8  4   stage
//    12  4   step (of the state; 0 in a request)
//    16 32   SHA-256 of the payload (zero unless type 2)
//    48 64   the sender's state seal signature (zero unless type 2)
//   112  …   payload
import { type Checkpoint, decodeCheckpoint, encodeCheckpoint } from '../engine/checkpoint.js';
import type { TrainState } from '../engine/checkpoint.js';
import { fromHex, sha256Hex, toHex } from '../base/hex.js';
import type { StateSeal } from '../swarm/protocol.js';
import type { StateFacts } from '../trust/state-seal.js';

const MAGIC = 0x54535753;
const VERSION = 2;
const HEADER = 112;
export const StateType = { Request: 1, State: 2, None: 3 } as const;
type StateType = (typeof StateType)[keyof typeof StateType];

export interface StateMeta {
  runId: string;
  stage: number;
}

/** A stage's state as it travels and is stored: the checkpoint bytes and the hash of its parameters. */
export interface StageSnapshot {
  stage: number;
  step: number;
  bytes: Uint8Array;
  /** SHA-256 of the parameters alone (what replicas compare after averaging). */
  paramsHash: string;
}

export async function snapshotOf(state: TrainState, meta: StateMeta): Promise<StageSnapshot> {
  const bytes = encodeCheckpoint({ ...state, meta });
  return { stage: meta.stage, step: state.step, bytes, paramsHash: await paramsHash(state.params) };
}

export function paramsHash(params: Float32Array): Promise<string> {
  return sha256Hex(new Uint8Array(params.buffer, params.byteOffset, params.byteLength));
}

/** Parse a stored or received snapshot, checking it is the run's and the stage's. */
export function readSnapshot(bytes: Uint8Array, expect: StateMeta): Checkpoint<StateMeta> {
  const c = decodeCheckpoint<StateMeta>(bytes);
  if (c.meta?.runId !== expect.runId || c.meta?.stage !== expect.stage) {
    throw new Error(`the state is of run ${c.meta?.runId} stage ${c.meta?.stage}, not run ${expect.runId} stage ${expect.stage}`);
  }
  return c;
}

async function encode(type: StateType, stage: number, step: number, payload: Uint8Array, sig?: string): Promise<Uint8Array> {
  const out = new Uint8Array(HEADER + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint8(4, VERSION);
  v.setUint8(5, type);
  v.setUint32(8, stage, true);
  v.setUint32(12, step, true);
  if (type === StateType.State) out.set(fromHex(await sha256Hex(payload)), 16);
  if (sig) out.set(fromHex(sig), 48);
  out.set(payload, HEADER);
  return out;
}

interface Decoded {
  type: StateType;
  stage: number;
  step: number;
  sig: string;
  payload: Uint8Array;
}

async function decode(bytes: Uint8Array): Promise<Decoded> {
  if (bytes.length < HEADER || new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true) !== MAGIC) throw new Error('not a state message');
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint8(4) !== VERSION) throw new Error(`state message version ${v.getUint8(4)} is not supported`);
  const type = v.getUint8(5) as StateType;
  if (!Object.values(StateType).includes(type)) throw new Error(`unknown state message type ${type}`);
  const payload = bytes.subarray(HEADER);
  if (type === StateType.State) {
    const want = toHex(bytes.subarray(16, 48));
    const got = await sha256Hex(payload);
    if (got !== want) throw new Error(`state transfer corrupted: SHA-256 ${got.slice(0, 12)}… of ${payload.length} bytes, the sender's was ${want.slice(0, 12)}…`);
  }
  return { type, stage: v.getUint32(8, true), step: v.getUint32(12, true), sig: toHex(bytes.subarray(48, HEADER)), payload };
}

export interface StateExchangeOptions {
  meta: () => StateMeta | undefined;
  send(to: string, bytes: Uint8Array): void;
  /** The newest state this peer can give (its last averaged one, or what it keeps on leaving). */
  offer(): StageSnapshot | undefined;
  /** This peer's seal of a state of run `runId` it gives (trust/state-seal.ts). */
  seal(runId: string, f: Omit<StateFacts, 'from'>): Promise<StateSeal>;
  /** Whether a seal is its sender's signature of a state of run `runId`. */
  verify(runId: string, s: StateSeal): Promise<boolean>;
  log(line: string): void;
}

/** A state fetched from a replica, and the replica's seal of it. */
export interface Fetched {
  state: Checkpoint<StateMeta>;
  seal: StateSeal;
}

/** Both sides of state transfers on one peer: it serves requests and fetches from others. */
export class StateExchange {
  private readonly pending = new Map<string, { stage: number; resolve: (d: Decoded) => void; reject: (e: Error) => void }>();
  /** Transfers served, and bytes sent for them. */
  readonly served = { count: 0, bytes: 0 };

  constructor(private readonly o: StateExchangeOptions) {}

  /** A state message from `from`. Never throws. */
  async onMessage(from: string, bytes: Uint8Array): Promise<void> {
    let d: Decoded;
    try {
      d = await decode(bytes);
    } catch (e) {
      this.pending.get(from)?.reject(e as Error);
      return this.o.log(`bad state message from ${from}: ${(e as Error).message}`);
    }
    if (d.type === StateType.Request) return this.serve(from, d.stage);
    const p = this.pending.get(from);
    if (!p) return this.o.log(`unrequested state message from ${from} dropped`);
    if (d.stage !== p.stage) return p.reject(new Error(`${from} sent the state of stage ${d.stage}, stage ${p.stage} was asked for`));
    p.resolve(d);
  }

  private async serve(to: string, stage: number): Promise<void> {
    const s = this.o.offer();
    if (!s || s.stage !== stage) {
      this.o.send(to, await encode(StateType.None, stage, 0, new TextEncoder().encode(s ? `this peer holds stage ${s.stage}` : 'this peer holds no state yet')));
      return;
    }
    // Signed from the bytes that go out, never from a hash kept beside them.
    // Its run from the state itself: a leaving peer gives the state it kept after its seat is gone.
    const c = decodeCheckpoint<StateMeta>(s.bytes);
    const seal = await this.o.seal(c.meta?.runId ?? '', { stage, step: s.step, hash: await paramsHash(c.params) });
    const msg = await encode(StateType.State, stage, s.step, s.bytes, seal.sig);
    this.o.send(to, msg);
    this.served.count++;
    this.served.bytes += msg.length;
    this.o.log(`sent stage ${stage}'s state at step ${s.step} (${(msg.length / 1e6).toFixed(1)} MB) to ${to}`);
  }

  /** Ask `from` for its newest state of `stage`; the checkpoint, verified, and its seal, or an error saying why not. */
  async fetch(from: string, stage: number, timeoutMs: number): Promise<Fetched> {
    if (this.pending.has(from)) throw new Error(`a state request to ${from} is already open`);
    const answer = new Promise<Decoded>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${from} sent no state within ${timeoutMs} ms`)), timeoutMs);
      const done = (f: () => void) => {
        clearTimeout(timer);
        this.pending.delete(from);
        f();
      };
      this.pending.set(from, { stage, resolve: (d) => done(() => resolve(d)), reject: (e) => done(() => reject(e)) });
    });
    this.o.send(from, await encode(StateType.Request, stage, 0, new Uint8Array()));
    const d = await answer;
    if (d.type === StateType.None) throw new Error(`${from} has no state to give: ${new TextDecoder().decode(d.payload.subarray(0, 200))}`);
    const meta = this.o.meta();
    if (!meta) throw new Error('no run to load a state for');
    const c = readSnapshot(d.payload, meta);
    if (c.step !== d.step) throw new Error(`${from}'s state says step ${c.step}, its message step ${d.step}`);
    const seal: StateSeal = { from, stage, step: c.step, hash: await paramsHash(c.params), sig: d.sig };
    if (!(await this.o.verify(meta.runId, seal))) throw new Error(`${from}'s state is not signed by ${from}`);
    return { state: c, seal };
  }

  /** A neighbour is gone: a request open to it fails now rather than at its timeout. */
  forget(peerId: string): void {
    this.pending.get(peerId)?.reject(new Error(`${peerId} is gone`));
  }
}
