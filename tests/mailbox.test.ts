// The mailbox against hostile neighbours, without a GPU: frames decoded only at the exact shape
// the stage expects, what a sender may have held bounded, boundary tensors checked against the
// running band of their boundary, replays refused, and every refusal that is the sender's fault
// reported and failing at once the take that waits for that frame. Also the band and the replay
// memory on their own.
import { describe, expect, it } from 'vitest';
import { type BlockConfig, layout } from '../shared/engine/model.js';
import { InboxRefused, InboxTimeout } from '../shared/trust/inbox.js';
import { START_COLS } from '../shared/peer/generate-frames.js';
import { GEN_FRAMES_PER_REQUEST, GEN_OPEN_REQUESTS, type HostileFrame, Mailbox, TRAIN_ROUNDS_AHEAD } from '../shared/trust/mailbox.js';
import { BAND_FACTOR, BAND_MIN, BAND_WINDOW, MAX_ABS, NormBand, implausible, rms } from '../shared/trust/norm-band.js';
import { RecentPayloads, tensorHash } from '../shared/trust/replay.js';
import { stageFrames } from '../shared/peer/stage-frames.js';
import type { Dtype } from '../shared/wire/codec.js';
import { FrameKind, HEADER_BYTES, encodeFrame } from '../shared/wire/frame.js';
import { gaussian, rng } from '../shared/base/random.js';

const middle: BlockConfig = { vocab: 40, dModel: 16, nHead: 2, nLayer: 1, seq: 8, batch: 2, hasEmbedding: false, hasHead: false };
const N = middle.batch * middle.seq;
const W = middle.dModel;
const PARAMS = layout(middle).total;

/** A middle stage's mailbox, built as a seat builds it, recording what it reports. */
function mailbox(cfg = middle, dtype: Dtype = 'int8') {
  const reports: (HostileFrame & { from: string })[] = [];
  const suspects: Array<{ from: string; kind: FrameKind; round: number; mb: number; reason: string }> = [];
  const box = new Mailbox({
    ...stageFrames({ cfg, dtype, params: layout(cfg).total, microbatches: 3, evalBatches: 2 }),
    onHostile: (from, what) => reports.push({ from, ...what }),
    onSuspect: (from, what) => suspects.push({ from, ...what }),
  });
  return { box, reports, suspects, whys: () => reports.map((r) => r.why) };
}

const g = gaussian(rng(7));
const values = (n: number, scale = 1) => Float32Array.from({ length: n }, () => scale * g());

interface Spec {
  kind?: FrameKind;
  round?: number;
  mb?: number;
  rows?: number;
  cols?: number;
  dtype?: Dtype;
  tensor?: Float32Array;
  tokens?: Uint16Array;
}

/** A well-formed frame, by default an honest Activation of the middle stage's shape. */
function frame(s: Spec = {}): Uint8Array {
  const rows = s.rows ?? N;
  const cols = s.cols ?? W;
  const tensor = s.tensor ?? values(rows * cols);
  const f = { kind: s.kind ?? FrameKind.Activation, tag: s.round ?? 1, microbatch: s.mb ?? 0, rows, cols, dtype: s.dtype ?? 'int8', tensor, tokens: s.tokens };
  return encodeFrame(f, undefined, { entropy: true });
}

const take = (box: Mailbox, from: string, kind: FrameKind, round: number, mb: number, ms = 1000) => box.from(from).train.take(kind, round, mb, ms);

describe('norm band', () => {
  it('refuses nothing until BAND_MIN frames, then an RMS beyond ×BAND_FACTOR of the median either way', () => {
    const b = new NormBand();
    for (let i = 0; i < BAND_MIN; i++) {
      expect(b.check(1000 * (i + 1))).toBeUndefined(); // still filling
      b.add(1 + i / 100);
    }
    const m = b.median!;
    expect(m).toBeCloseTo(1.035, 6);
    expect(b.check(m * BAND_FACTOR)).toBeUndefined();
    expect(b.check(m / BAND_FACTOR)).toBeUndefined();
    const lo = (m / BAND_FACTOR).toPrecision(3);
    const hi = (m * BAND_FACTOR).toPrecision(3);
    expect(b.check(m * BAND_FACTOR * 1.01)).toBe(
      `RMS ${(m * BAND_FACTOR * 1.01).toPrecision(3)} is outside [${lo}, ${hi}] (median 1.04 of the last ${BAND_MIN} frames, ×${BAND_FACTOR} either way)`,
    );
    expect(b.check(m / BAND_FACTOR / 1.01)).toMatch(/outside/);
    expect(b.check(100 * m)).toMatch(/outside/);
  });

  it('follows an honest RMS drifting over training, and is not dragged by the odd outlier', () => {
    const b = new NormBand();
    // ×20 over 2000 frames, with ±30 % noise: never refused.
    for (let i = 0; i < 2000; i++) {
      const r = 20 ** (i / 2000) * (1 + 0.3 * Math.sin(i * 1.7));
      expect(b.check(r)).toBeUndefined();
      b.add(r);
    }
    // A median over the last BAND_WINDOW: a few accepted highs at the edge of the band do not move it.
    const m = b.median!;
    for (let i = 0; i < BAND_WINDOW / 4; i++) b.add(m * BAND_FACTOR);
    expect(b.median! / m).toBeLessThan(1.5);
  });

  it('calls a tensor implausible when it is all zero or holds a value beyond MAX_ABS, and computes RMS in float64', () => {
    expect(implausible(new Float32Array(8))).toMatch(/all zero/);
    expect(implausible(Float32Array.of(0, 0, 1e-30))).toBeUndefined();
    expect(implausible(Float32Array.of(1, -MAX_ABS))).toBeUndefined();
    expect(implausible(Float32Array.of(1, -2 * MAX_ABS))).toMatch(/value 1 is -2000000, beyond/);
    expect(rms(Float32Array.of(3, -4, 0, 0))).toBeCloseTo(2.5, 12);
    expect(rms(new Float32Array(1 << 20).fill(1e-3))).toBeCloseTo(1e-3, 9);
  });
});

describe('replay memory', () => {
  it('tells payloads apart by every bit, and a repeat from a re-run of the same step from a replay', () => {
    const x = values(256);
    const y = x.slice();
    expect(tensorHash(y)).toBe(tensorHash(x));
    new Uint32Array(y.buffer)[100] ^= 1; // one mantissa bit
    expect(tensorHash(y)).not.toBe(tensorHash(x));
    const recent = new RecentPayloads(4);
    const h = tensorHash(x);
    recent.remember(h, { kind: FrameKind.Activation, mb: 2, step: 5 });
    expect(recent.replayOf(h, { kind: FrameKind.Activation, mb: 2, step: 5 })).toBeUndefined(); // step 5 routed again
    expect(recent.replayOf(h, { kind: FrameKind.Activation, mb: 2 })).toBeUndefined(); // the round's step is unknown
    expect(recent.replayOf(h, { kind: FrameKind.Activation, mb: 2, step: 6 })).toEqual({ kind: FrameKind.Activation, mb: 2, step: 5 });
    expect(recent.replayOf(h, { kind: FrameKind.Activation, mb: 1, step: 5 })).toBeDefined();
    expect(recent.replayOf(h, { kind: FrameKind.EvalActivation, mb: 2 })).toBeDefined();
    // Bounded: the oldest hashes are forgotten.
    for (let i = 0; i < 4; i++) recent.remember(i, { kind: FrameKind.Gradient, mb: i });
    expect(recent.replayOf(h, { kind: FrameKind.Activation, mb: 0, step: 9 })).toBeUndefined();
  });
});

describe('mailbox: exact shapes', () => {
  it('decodes a training frame only at N×boundaryWidth in the run dtype, without token ids (1×1 used to be filed)', async () => {
    const { box, reports } = mailbox();
    const bad: Spec[] = [
      { rows: 1, cols: 1 },
      { rows: N / 2 },
      { rows: N + 1 },
      { cols: W - 1 },
      { cols: W + 1 },
      { dtype: 'fp32' },
      { dtype: 'int8c' },
      { tokens: new Uint16Array(N) },
    ];
    for (const kind of [FrameKind.Activation, FrameKind.Gradient, FrameKind.EvalActivation]) {
      bad.forEach((s, mb) => box.deliver('p', frame({ ...s, kind, mb })));
      box.deliver('p', frame({ kind, mb: 99 }));
      expect((await take(box, 'p', kind, 1, 99)).tensor.length).toBe(N * W);
    }
    expect(reports).toHaveLength(3 * bad.length);
    expect(new Set(reports.map((r) => r.why))).toEqual(new Set(['shape']));
    expect(reports[0]).toMatchObject({ from: 'p', kind: FrameKind.Activation, round: 1, mb: 0 });
    expect(reports[0].reason).toMatch(/is 1×1 int8, expected 16×16 int8/);
    expect(box.held()).toEqual({ frames: 0, bytes: 0 });
  });

  it('decodes generation frames and replica weights only at the shapes generate.ts and averaging send', async () => {
    const sub: BlockConfig = { ...middle, subspace: { k: 4, seed: 1 } };
    const { box, whys } = mailbox(sub, 'int8c');
    const gen = box.from('p').gen;
    const ids = (n: number) => Uint16Array.from({ length: n }, (_, i) => i);
    // GenerateStart: 1×START_COLS fp32; GenerateActivation: 1..seq rows of k coefficients with their ids; GenerateToken: 1×1 fp32.
    box.deliver('p', frame({ kind: FrameKind.GenerateStart, rows: 1, cols: START_COLS, dtype: 'fp32', tensor: Float32Array.of(4, 0, 1, 0, 3, 1, 0) }));
    box.deliver('p', frame({ kind: FrameKind.GenerateActivation, rows: 3, cols: 4, dtype: 'int8c', tokens: ids(3) }));
    box.deliver('p', frame({ kind: FrameKind.GenerateToken, mb: 1, rows: 1, cols: 1, dtype: 'fp32', tensor: Float32Array.of(7) }));
    expect(whys()).toEqual([]);
    expect((await gen.take(FrameKind.GenerateActivation, 1, 0, 1000)).tokens).toEqual(ids(3));
    const wrong: Spec[] = [
      { kind: FrameKind.GenerateStart, rows: 1, cols: START_COLS + 1, dtype: 'fp32' },
      { kind: FrameKind.GenerateStart, rows: 1, cols: START_COLS, dtype: 'bf16' },
      { kind: FrameKind.GenerateActivation, rows: 9, cols: 4, dtype: 'int8c', tokens: ids(9) }, // more rows than seq
      { kind: FrameKind.GenerateActivation, rows: 3, cols: 4, dtype: 'int8c' }, // no ids
      { kind: FrameKind.GenerateActivation, rows: 3, cols: 16, dtype: 'int8c', tokens: ids(3) }, // dModel, not k
      { kind: FrameKind.GenerateToken, rows: 2, cols: 1, dtype: 'fp32' },
      { kind: FrameKind.ReplicaWeights, rows: PARAMS / 64 - 1, cols: 64, dtype: 'fp32' },
      { kind: FrameKind.ReplicaWeights, rows: PARAMS / 64, cols: 64, dtype: 'int8' },
    ];
    wrong.forEach((s, i) => box.deliver('p', frame({ ...s, round: 10 + i })));
    expect(whys()).toEqual(wrong.map(() => 'shape'));
    box.deliver('p', frame({ kind: FrameKind.ReplicaWeights, round: 3, rows: PARAMS / 64, cols: 64, dtype: 'fp32', tensor: values(PARAMS, 0.02) }));
    expect((await box.from('p').avg.take(FrameKind.ReplicaWeights, 3, 0, 1000)).tensor.length).toBe(PARAMS);
  });

  it('refuses the kinds a first or last stage never takes', () => {
    const first = mailbox({ ...middle, hasEmbedding: true });
    for (const kind of [FrameKind.Activation, FrameKind.EvalActivation]) first.box.deliver('p', frame({ kind }));
    const last = mailbox({ ...middle, hasHead: true });
    last.box.deliver('p', frame({ kind: FrameKind.Gradient }));
    last.box.deliver('p', frame({ kind: FrameKind.GenerateToken, rows: 1, cols: 1, dtype: 'fp32' }));
    expect([...first.whys(), ...last.whys()]).toEqual(['kind', 'kind', 'kind', 'kind']);
  });

  it('an entropy-coded bomb costs nothing: 24 frames of a few hundred bytes claiming 64 Mi values each are refused unread', () => {
    const { box, whys } = mailbox();
    // A constant tensor codes to almost nothing; its header then claims 8192×8192 values.
    const small = frame({ rows: 64, cols: 64, tensor: new Float32Array(64 * 64).fill(1) });
    expect(small.length).toBeLessThan(400);
    const heap0 = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 24; i++) {
      const bomb = small.slice();
      const v = new DataView(bomb.buffer);
      v.setUint32(12, i, true);
      v.setUint32(16, 8192, true);
      v.setUint32(20, 8192, true);
      box.deliver('p', bomb);
    }
    const grown = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - heap0;
    expect(whys()).toEqual(Array(24).fill('shape'));
    expect(grown).toBeLessThan(16 << 20); // one such frame decoded is 256 MiB
    // At the exact shape a constant (here all-zero) tensor decodes to one honest frame's size, and is refused.
    box.deliver('p', frame({ tensor: new Float32Array(N * W) }));
    expect(whys().at(-1)).toBe('implausible');
    expect(box.held()).toEqual({ frames: 0, bytes: 0 });
  });
});

describe('mailbox: a bad frame fails its take at once', () => {
  it('for the key awaited, whether it comes while the take waits or before; other keys wait as before', async () => {
    const { box, reports } = mailbox();
    const t0 = performance.now();
    const waiting = take(box, 'p', FrameKind.Activation, 1, 0, 20_000);
    box.deliver('p', frame({ rows: 1, cols: 1 }));
    await expect(waiting).rejects.toThrow(InboxRefused);
    await expect(waiting).rejects.toThrow(/refused: wire frame \(shape\): kind 1 is 1×1 int8, expected 16×16 int8/);
    box.deliver('p', frame({ mb: 1, rows: 1, cols: 1 }));
    await expect(take(box, 'p', FrameKind.Activation, 1, 1, 20_000)).rejects.toThrow(InboxRefused);
    expect(performance.now() - t0).toBeLessThan(1000);
    // Microbatch 2 was not refused (nor anything from another sender): an honest timeout.
    await expect(take(box, 'p', FrameKind.Activation, 1, 2, 30)).rejects.toThrow(InboxTimeout);
    await expect(take(box, 'q', FrameKind.Activation, 1, 0, 30)).rejects.toThrow(InboxTimeout);
    expect(reports.map((r) => r.mb)).toEqual([0, 1]);
  });

  it('a NaN payload is reported and refused at once (it used to leave the take waiting out its timeout)', async () => {
    const { box, reports } = mailbox(middle, 'fp32');
    const bytes = frame({ dtype: 'fp32' });
    new DataView(bytes.buffer).setFloat32(HEADER_BYTES + 4 * 17, Number.NaN, true);
    const waiting = take(box, 'p', FrameKind.Activation, 1, 0, 20_000);
    box.deliver('p', bytes);
    await expect(waiting).rejects.toThrow(/value 17 \(row 1, col 1\) decodes to NaN/);
    expect(reports[0]).toMatchObject({ from: 'p', kind: FrameKind.Activation, round: 1, mb: 0, why: 'nonfinite' });
  });

  it('bytes that are not a frame fail every take waiting on their sender, and its takes until the round ends', async () => {
    const { box, reports } = mailbox();
    const waiting = [take(box, 'p', FrameKind.Activation, 1, 0, 20_000), box.from('p').gen.take(FrameKind.GenerateStart, 4, 0, 20_000)];
    const other = take(box, 'q', FrameKind.Activation, 1, 0, 50);
    box.deliver('p', Uint8Array.of(1, 2, 3));
    for (const w of waiting) await expect(w).rejects.toThrow(/it sent bytes that are not a frame: wire frame \(truncated\)/);
    await expect(take(box, 'p', FrameKind.Gradient, 1, 2, 20_000)).rejects.toThrow(InboxRefused);
    await expect(other).rejects.toThrow(InboxTimeout);
    expect(reports).toEqual([{ from: 'p', why: 'truncated', reason: expect.stringMatching(/not a frame/) }]);
    // The round ends: the next one starts clean.
    box.forgetRoundsBefore(2);
    box.deliver('p', frame({ round: 2 }));
    expect((await take(box, 'p', FrameKind.Activation, 2, 0)).tag).toBe(2);
  });
});

describe('mailbox: bounded holdings', () => {
  it('holds training frames only up to TRAIN_ROUNDS_AHEAD past the newest round known; stale and duplicate ones are not blamed', async () => {
    const { box, whys } = mailbox();
    // No round known yet (a joiner's first round message can come after its first frames): any round, within the caps.
    box.deliver('p', frame({ round: 500 }));
    box.setRound(100, 90);
    box.deliver('p', frame({ round: 100 + TRAIN_ROUNDS_AHEAD }));
    box.deliver('p', frame({ round: 100 + TRAIN_ROUNDS_AHEAD + 1 }));
    box.deliver('p', frame({ round: 0xffffffff }));
    expect(whys()).toEqual(['window', 'window']);
    box.forgetRoundsBefore(200);
    box.deliver('p', frame({ round: 200 + TRAIN_ROUNDS_AHEAD }));
    expect(whys()).toHaveLength(2);
    expect(box.held().frames).toBe(2); // round 500's, and the new one: those of rounds before 200 were dropped
    // Late and duplicate frames (e.g. of a discarded round) are dropped and counted, not blamed.
    const rejected = box.rejected;
    box.deliver('p', frame({ round: 150 }));
    box.deliver('p', frame({ round: 200 + TRAIN_ROUNDS_AHEAD }));
    expect(box.rejected).toBe(rejected + 2);
    expect(whys()).toHaveLength(2);
  });

  it(`holds generation frames for ${GEN_OPEN_REQUESTS} requests a sender (a new one evicts the oldest) and ${GEN_FRAMES_PER_REQUEST} frames a request`, async () => {
    const { box, whys } = mailbox();
    const token = (request: number, i: number) =>
      frame({ kind: FrameKind.GenerateStart, round: request, mb: i, rows: 1, cols: START_COLS, dtype: 'fp32', tensor: Float32Array.of(4, 0, 1, 0, 3, 1, 0) });
    for (let r = 1; r <= GEN_OPEN_REQUESTS; r++) box.deliver('p', token(r, 0));
    box.deliver('p', token(GEN_OPEN_REQUESTS + 1, 0)); // evicts request 1
    expect(box.evicted).toBe(1);
    expect(box.from('p').gen.isClosed(1)).toBe(true);
    for (let i = 1; i < GEN_FRAMES_PER_REQUEST; i++) box.deliver('p', token(2, i));
    expect(whys()).toEqual([]);
    box.deliver('p', token(2, GEN_FRAMES_PER_REQUEST));
    expect(whys()).toEqual(['caps']);
    expect(box.held().frames).toBe(GEN_OPEN_REQUESTS + GEN_FRAMES_PER_REQUEST - 1);
  });

  it('caps the frames and bytes one sender may have held; the others are not affected', async () => {
    const { box, whys, reports } = mailbox();
    const cap = stageFrames({ cfg: middle, dtype: 'int8', params: PARAMS, microbatches: 3, evalBatches: 2 }).perSender;
    for (let mb = 0; mb < cap.frames + 5; mb++) box.deliver('p', frame({ kind: FrameKind.EvalActivation, mb }));
    expect(box.held().frames).toBeLessThanOrEqual(cap.frames);
    expect(box.held().bytes).toBeLessThanOrEqual(cap.bytes);
    expect(whys().every((w) => w === 'caps')).toBe(true);
    expect(reports.length).toBeGreaterThanOrEqual(5);
    box.deliver('q', frame({ kind: FrameKind.EvalActivation }));
    expect((await take(box, 'q', FrameKind.EvalActivation, 1, 0)).microbatch).toBe(0);
    // A refused microbatch fails its take at once.
    await expect(take(box, 'p', FrameKind.EvalActivation, 1, cap.frames + 4, 20_000)).rejects.toThrow(/refused: the sender would have/);
  });
});

describe('mailbox: statistics and replays', () => {
  /** BAND_MIN honest gradients of RMS ≈ 1e-3 from `from`, taken. */
  async function armed(box: Mailbox, from: string) {
    for (let mb = 0; mb < BAND_MIN; mb++) {
      box.setRound(mb + 1, mb + 1);
      box.deliver(from, frame({ kind: FrameKind.Gradient, round: mb + 1, tensor: values(N * W, 1e-3) }));
      await take(box, from, FrameKind.Gradient, mb + 1, 0);
    }
  }

  it('reports ×100 gradients and garbage of the wrong scale for audit once the band is armed, from any sender, and takes them', async () => {
    const { box, whys, suspects } = mailbox();
    await armed(box, 'p');
    box.setRound(20, 20);
    const hostile: Spec[] = [{ tensor: values(N * W, 0.1) }, { tensor: values(N * W, 1e-6) }, { tensor: values(N * W, 30) }];
    hostile.forEach((s, mb) => box.deliver('q', frame({ ...s, kind: FrameKind.Gradient, round: 20, mb })));
    // An honest loss spike can be as far out as ×100: the band does not refuse, the coordinator's audit decides.
    expect(whys()).toEqual([]);
    expect(suspects.map((x) => [x.from, x.kind, x.round, x.mb])).toEqual([0, 1, 2].map((mb) => ['q', FrameKind.Gradient, 20, mb]));
    expect(suspects[0].reason).toMatch(/^RMS 0\.\d+ is outside \[/);
    // Honest gradients of the same round pass unreported, and the band is per boundary: activations of RMS 1 are fine.
    box.deliver('p', frame({ kind: FrameKind.Gradient, round: 20, mb: 5, tensor: values(N * W, 2e-3) }));
    box.deliver('p', frame({ kind: FrameKind.Activation, round: 20, mb: 5 }));
    expect(suspects).toHaveLength(3);
    expect(box.held().frames).toBe(5);
    // Taking the outliers does not move the band: a gradient of the honest scale is still in it, a ×100 one still out.
    for (let mb = 0; mb < 3; mb++) await take(box, 'q', FrameKind.Gradient, 20, mb);
    box.setRound(21, 21);
    box.deliver('p', frame({ kind: FrameKind.Gradient, round: 21, tensor: values(N * W, 1e-3) }));
    box.deliver('q', frame({ kind: FrameKind.Gradient, round: 21, mb: 1, tensor: values(N * W, 0.1) }));
    expect(suspects.map((x) => x.round)).toEqual([20, 20, 20, 21]);
  });

  it('learns only from frames taken: frames no route asked for cannot drag the band', async () => {
    const { box, whys, suspects } = mailbox();
    box.setRound(1, 1);
    // Before the band is armed, a hostile sender gets frames of the wrong scale filed...
    for (let mb = 0; mb < 2 * BAND_MIN; mb++) box.deliver('q', frame({ kind: FrameKind.Gradient, round: 1, mb: 10 + mb, tensor: values(N * W, 0.1) }));
    expect(whys()).toEqual([]);
    // ...but only the honest ones are used, so only they set the band.
    await armed(box, 'p');
    box.deliver('q', frame({ kind: FrameKind.Gradient, round: 8, mb: 3, tensor: values(N * W, 0.1) }));
    box.deliver('p', frame({ kind: FrameKind.Gradient, round: 8, mb: 4, tensor: values(N * W, 1e-3) }));
    expect(whys()).toEqual([]);
    expect(suspects.map((x) => [x.from, x.mb])).toEqual([['q', 3]]);
  });

  it('refuses evaluation and generation rows out of the band of the training activations of the same boundary (no audit can check them)', async () => {
    const { box, whys } = mailbox();
    for (let mb = 0; mb < BAND_MIN; mb++) {
      box.deliver('p', frame({ mb }));
      await take(box, 'p', FrameKind.Activation, 1, mb);
    }
    box.deliver('p', frame({ kind: FrameKind.EvalActivation, round: 2, tensor: values(N * W, 100) }));
    box.deliver('p', frame({ kind: FrameKind.GenerateActivation, round: 5, rows: 3, tensor: values(3 * W, 100) }));
    box.deliver('p', frame({ kind: FrameKind.GenerateActivation, round: 6, rows: 3, tensor: values(3 * W, 2) }));
    expect(whys()).toEqual(['band', 'band']);
  });

  it('refuses an all-zero tensor and a value beyond MAX_ABS from the very first frame', () => {
    const { box, whys } = mailbox(middle, 'fp32');
    const huge = values(N * W);
    huge[3] = 10 * MAX_ABS;
    box.deliver('p', frame({ dtype: 'fp32', tensor: new Float32Array(N * W) }));
    box.deliver('p', frame({ dtype: 'fp32', mb: 1, tensor: huge }));
    expect(whys()).toEqual(['implausible', 'implausible']);
  });

  it('refuses old content under a new round or microbatch, but not a discarded step routed again', async () => {
    const { box, whys, reports } = mailbox();
    const x = values(N * W);
    box.setRound(1, 1);
    box.deliver('p', frame({ round: 1, mb: 0, tensor: x }));
    await take(box, 'p', FrameKind.Activation, 1, 0);
    // Round 1 (step 1) was discarded; round 2 routes step 1 again: the same frames, honestly.
    box.forgetRoundsBefore(2);
    box.setRound(2, 1);
    box.deliver('p', frame({ round: 2, mb: 0, tensor: x }));
    await take(box, 'p', FrameKind.Activation, 2, 0);
    // Round 3 is step 2: step 1's activation again is a replay, as is another microbatch's.
    box.setRound(3, 2);
    box.deliver('p', frame({ round: 3, mb: 0, tensor: x }));
    box.deliver('p', frame({ round: 3, mb: 1, tensor: x }));
    expect(whys()).toEqual(['replay', 'replay']);
    expect(reports[0].reason).toMatch(/repeats the one sent as kind 1 microbatch 0 of step 1/);
    await expect(take(box, 'p', FrameKind.Activation, 3, 0)).rejects.toThrow(/refused: the payload repeats/);
  });
});
