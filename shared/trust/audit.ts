// Spot checks by recomputation (ARCHITECTURE §6). The coordinator picks a random microbatch of a
// peer's round after every report is in, and a witness (another replica of the same stage)
// recomputes it. Replicas' own weights diverge between averagings (one local step already moves a
// block's output by ~10 %, measured), so the witness recomputes with the audited peer's weights,
// which the peer sends it with the sealed frames of that microbatch: the input it was sent, the
// output it sent, and on the way back the gradient it was sent and the one it sent. The coordinator
// tells the witness the SHA-256 of each frame from the seals its neighbours reported, so the peer
// cannot show the witness anything but what it really sent and received. The witness then checks
// the weights are a replica's (near its own) and the outputs are what those weights compute.
//
//   bundle = "SWAU" ‖ version u8 ‖ 3 reserved ‖ round u32 ‖ microbatch u32 ‖ params count u32 ‖
//            4 × frame length u32 (x in, y out, g in, dx out; 0 = none) ‖ params f32le ‖ frames
import type { BlockRuntime } from '../engine/block-runtime.js';
import type { ServerMessageOf } from '../swarm/protocol.js';
import { type Frame, FrameKind, type FrameShapes, decodeExpected, encodeFrame } from '../wire/frame.js';
import { sha256Hex } from '../base/hex.js';

const MAGIC = 0x55415753; // "SWAU" as bytes
const VERSION = 1;
const HEADER = 36;

/** The frames of one audited microbatch, sealed as they travelled (input in, output out, each way). */
export interface AuditFrames {
  xIn?: Uint8Array;
  yOut?: Uint8Array;
  gIn?: Uint8Array;
  dxOut?: Uint8Array;
}
const SLOTS = ['xIn', 'yOut', 'gIn', 'dxOut'] as const satisfies readonly (keyof AuditFrames)[];

export interface AuditBundle {
  round: number;
  microbatch: number;
  params: Float32Array;
  frames: AuditFrames;
}

/** Agreement needed between a recomputed output and the one sent (no bitwise determinism across GPUs). */
export const AUDIT_TOLERANCE = { cos: 0.99, rel: 1e-2 } as const;

export function encodeBundle(b: AuditBundle): Uint8Array {
  const frames = SLOTS.map((k) => b.frames[k] ?? new Uint8Array(0));
  const out = new Uint8Array(HEADER + b.params.byteLength + frames.reduce((n, f) => n + f.length, 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint8(4, VERSION);
  view.setUint32(8, b.round, true);
  view.setUint32(12, b.microbatch, true);
  view.setUint32(16, b.params.length, true);
  frames.forEach((f, i) => view.setUint32(20 + 4 * i, f.length, true));
  // Little-endian floats on every host we run on (x86, ARM); the length check on decode catches the rest.
  out.set(new Uint8Array(b.params.buffer, b.params.byteOffset, b.params.byteLength), HEADER);
  let at = HEADER + b.params.byteLength;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}

/** Parse a bundle for a stage of `paramCount` parameters. Throws a sentence on anything else. */
export function decodeBundle(bytes: Uint8Array, paramCount: number): AuditBundle {
  if (bytes.length < HEADER) throw new Error(`${bytes.length} bytes is shorter than an audit bundle's header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC || view.getUint8(4) !== VERSION) throw new Error('not an audit bundle of this version');
  const count = view.getUint32(16, true);
  if (count !== paramCount) throw new Error(`the bundle holds ${count} parameters, this stage has ${paramCount}`);
  const lengths = SLOTS.map((_, i) => view.getUint32(20 + 4 * i, true));
  const total = HEADER + 4 * count + lengths.reduce((n, l) => n + l, 0);
  if (bytes.length !== total) throw new Error(`the bundle is ${bytes.length} bytes, its header says ${total}`);
  const params = new Float32Array(count);
  new Uint8Array(params.buffer).set(bytes.subarray(HEADER, HEADER + 4 * count));
  const frames: AuditFrames = {};
  let at = HEADER + 4 * count;
  SLOTS.forEach((k, i) => {
    if (lengths[i] > 0) frames[k] = bytes.slice(at, at + lengths[i]);
    at += lengths[i];
  });
  return { round: view.getUint32(8, true), microbatch: view.getUint32(12, true), params, frames };
}

/** Cosine and relative error of `got` against `want` (float64 sums). */
export function agreement(got: Float32Array, want: Float32Array): { cos: number; rel: number } {
  let dot = 0;
  let gg = 0;
  let ww = 0;
  let dd = 0;
  for (let i = 0; i < want.length; i++) {
    dot += got[i] * want[i];
    gg += got[i] * got[i];
    ww += want[i] * want[i];
    dd += (got[i] - want[i]) ** 2;
  }
  const cos = gg === 0 && ww === 0 ? 1 : dot / Math.sqrt(gg * ww);
  return { cos, rel: ww === 0 ? (dd === 0 ? 0 : Number.POSITIVE_INFINITY) : Math.sqrt(dd / ww) };
}

/** Whether a sent tensor is what the recomputation gives, once both went through the wire's codec. */
export function sameWork(sent: Frame, recomputed: Float32Array, shapes: FrameShapes): { ok: boolean; cos: number; rel: number } {
  // The recomputation crosses the same quantizer the sender's output did, so only compute differs.
  const wire = decodeExpected(encodeFrame({ ...sent, tensor: recomputed }, undefined, { step: shapes[sent.kind]?.step }), shapes).tensor;
  const a = agreement(sent.tensor, wire);
  return { ...a, ok: a.cos >= AUDIT_TOLERANCE.cos && a.rel <= AUDIT_TOLERANCE.rel };
}

/**
 * How far a replica's weights may have moved from the stage's last averaged weights: a floor plus
 * DRIFT_PER_LR × learning rate for every step since. Measured: on the default run (lr 3e-3, ten
 * warm-up steps) replicas were 0.5 %, 1.9 %, 3.9 %, 11 % apart after 1, 3, 5, 10 local steps, about
 * 3.3 × lr a step; but a run at its full rate from its first step (bench:internet's: one warm-up
 * step) moved 11.1 % in 3 steps, 12 × lr a step, while Adam's fresh moments move every weight by
 * about the rate. A limit of 10 × lr convicted those honest replicas of each other every round; 30 ×
 * lr leaves 2.5 × room there. Zeroed or foreign weights (100 % and ~140 % away) are still far beyond
 * within an averaging period. (A replica that was routed nothing did not move at all: the witness's
 * own drift is no measure of anyone's.)
 */
export const DRIFT_PER_LR = 30;
export const DRIFT_FLOOR = 0.02;

/** How far (relative to the anchor's norm) a replica's weights may have moved from weights averaged at `anchorStep` by `step`. */
export function driftLimit(anchorStep: number, step: number, lr: number): number {
  return DRIFT_FLOOR + DRIFT_PER_LR * lr * Math.max(0, step - anchorStep);
}

/**
 * The shapes a witness decodes an audited peer's frames at: what the stage takes, and what it sends
 * (an activation it sends has the shape of the gradient it takes back, and the other way round).
 */
export function auditShapes(taken: FrameShapes): FrameShapes {
  const a = taken[FrameKind.Activation] ?? taken[FrameKind.Gradient];
  const g = taken[FrameKind.Gradient] ?? taken[FrameKind.Activation];
  return { ...(a && { [FrameKind.Activation]: a }), ...(g && { [FrameKind.Gradient]: g }) };
}

export interface WitnessDeps {
  runtime: Pick<BlockRuntime, 'readParams' | 'recompute'>;
  /** The stage's weights at its last averaging and that step, when this peer has them (every replica started from them). */
  anchor(): { params: Float32Array; step: number } | undefined;
  /** The run's peak learning rate. */
  lr: number;
  /** The exact shapes of the stage's boundary frames, both ways (auditShapes). */
  shapes: FrameShapes;
  /** The training microbatch `mb` of step `step` (every replica derives the same data). */
  batch(step: number, mb: number): { tokens: Uint32Array; targets: Uint32Array };
}

/** `missing`: no bundle came, a claim nobody can check (the audited peer decides whom it sends to). */
export type Finding = { ok: boolean; reason: string; missing?: true };

/** A witness's finding on a bundle: its frames are the proven ones, its weights a replica's, its outputs what they compute. */
export async function judge(d: WitnessDeps, v: ServerMessageOf<'verify'>, b: AuditBundle): Promise<Finding> {
  const fail = (reason: string): Finding => ({ ok: false, reason });
  if (b.round !== v.round || b.microbatch !== v.microbatch) return fail(`the bundle is of round ${b.round} microbatch ${b.microbatch}`);
  const frames: Partial<Record<keyof AuditFrames, Frame>> = {};
  for (const k of SLOTS) {
    const want = v.frames[k];
    const got = b.frames[k];
    if (want === undefined) continue;
    if (!got) return fail(`the bundle lacks its ${k} frame`);
    if ((await sha256Hex(got)) !== want) return fail(`its ${k} frame is not the one its neighbours' seals prove`);
    try {
      frames[k] = decodeExpected(got, d.shapes);
    } catch (e) {
      return fail(`its ${k} frame does not decode: ${(e as Error).message}`);
    }
  }
  for (let i = 0; i < b.params.length; i++) if (!Number.isFinite(b.params[i])) return fail(`its weight ${i} is ${b.params[i]}`);
  const drift = replicaDrift(b.params, await d.runtime.readParams(), d.anchor(), v.step, d.lr);
  if (drift) return fail(drift);
  const out = await d.runtime.recompute(b.params, { ...d.batch(v.step, v.microbatch), x: frames.xIn?.tensor }, frames.gIn?.tensor);
  for (const [k, recomputed] of [
    ['yOut', out.x],
    ['dxOut', out.dx],
  ] as const) {
    const sent = frames[k];
    if (!sent || !recomputed) continue;
    const w = sameWork(sent, recomputed, d.shapes);
    if (!w.ok)
      return fail(`its ${k === 'yOut' ? 'output' : 'input gradient'} is not what its weights compute (cosine ${w.cos.toFixed(4)}, relative error ${w.rel.toExponential(2)})`);
  }
  return { ok: true, reason: 'agrees' };
}

/**
 * Why `theirs` cannot be a replica's weights at step `step`, or undefined. Measured from the last
 * averaged weights when known, else from this replica's own (then both may have moved since the start).
 */
export function replicaDrift(theirs: Float32Array, mine: Float32Array, anchor: { params: Float32Array; step: number } | undefined, step: number, lr: number): string | undefined {
  const limit = anchor ? driftLimit(anchor.step, step, lr) : driftLimit(-step, step, lr);
  const d = agreement(theirs, anchor?.params ?? mine).rel;
  if (d <= limit) return undefined;
  return `its weights moved ${d.toFixed(3)} from the stage's ${anchor ? `weights averaged at step ${anchor.step}` : 'weights here'} (limit ${limit.toFixed(3)} at step ${step})`;
}

/** Bundles from audited peers, held until this witness's `verify` asks for them (a few, briefly). */
export class Bundles {
  private readonly held = new Map<string, Uint8Array>();
  private readonly waiting = new Map<string, (b: Uint8Array) => void>();

  /** A bundle arrived from `from`. Only a few unclaimed ones are kept (a peer cannot fill our memory with them). */
  deliver(from: string, bytes: Uint8Array): void {
    if (bytes.length < HEADER) return;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const key = `${from}:${view.getUint32(8, true)}:${view.getUint32(12, true)}`;
    const w = this.waiting.get(key);
    if (w) return w(bytes);
    this.held.set(key, bytes);
    if (this.held.size > MAX_HELD) this.held.delete(this.held.keys().next().value!);
  }

  /** The bundle of `peer`'s microbatch, waiting up to `timeoutMs` or until `signal` aborts. */
  take(peer: string, round: number, mb: number, timeoutMs: number, signal: AbortSignal): Promise<Uint8Array> {
    const key = `${peer}:${round}:${mb}`;
    const now = this.held.get(key);
    this.held.delete(key);
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const done = (f: () => void) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.waiting.delete(key);
        f();
      };
      const onAbort = () => done(() => reject(signal.reason));
      const timer = setTimeout(() => done(() => reject(new BundleMissing(`no bundle from ${peer} within ${timeoutMs} ms`))), timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.set(key, (b) => done(() => resolve(b)));
    });
  }
}

const MAX_HELD = 4;

/**
 * How long a witness waits for an audited peer's bundle before it says none came. Well inside the
 * coordinator's audit limit (server.ts): the accuser's wait and its panel's must both fit in it.
 */
export const BUNDLE_WAIT_MS = 8_000;

/** The audited peer's bundle did not come in time. */
export class BundleMissing extends Error {}
