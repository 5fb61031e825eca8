// Fuzzing what neighbours can send a stage: random bytes, bit flips, truncations, header fields
// set to edge values, entropy-coded bombs, NaN and Inf payloads, valid frames of the wrong shape,
// of the wrong scale, replays and floods, from a seeded generator (a failure replays exactly).
// Delivered to a real mailbox built as a seat builds it, every frame must be filed or dropped and
// counted, never throw; what the mailbox holds must stay within its caps and the heap must not
// grow; honest frames interleaved must still come through intact. Then the same mutations of the
// awaited neighbour's frames through real stage runners: a round either goes on or fails at once
// with a HostileFrameError naming that neighbour, nothing else.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../kernels/context.js';
import { type BlockConfig, layout } from '../shared/engine/model.js';
import { Mailbox } from '../shared/trust/mailbox.js';
import { stageFrames } from '../shared/peer/stage-frames.js';
import { HostileFrameError, roundWorkOf } from '../shared/peer/stage-runner.js';
import { type ModelSpec, stageConfigs } from '../shared/run/derive.js';
import { DTYPES, type Dtype } from '../shared/wire/codec.js';
import { type Frame, FrameKind, type FrameShape, HEADER_BYTES, decodeFrame, encodeFrame } from '../shared/wire/frame.js';
import { openNodeGpu } from '../worker/node-gpu.js';
import { M, OPT, batch, memorySwarm, model } from './memory-peers.js';
import { gaussian, rng } from '../shared/base/random.js';

const SEED = 0x5eed;
const FRAMES = 12_000;
/** Subspace boundaries: token ids on generation rows, per-column scales, entropy-coded payloads. */
const sub: ModelSpec = { ...model, subspace: { k: 8, seed: 1 } };
const DTYPE: Dtype = 'int8c';
const cfgs = stageConfigs(sub, [1, 1, 1]);
const middle: BlockConfig = cfgs[1];
const PARAMS = layout(middle).total;
const EVAL = 2;
const spec = { cfg: middle, dtype: DTYPE, params: PARAMS, microbatches: M, evalBatches: EVAL };
const { shapes, perSender } = stageFrames(spec);
const KINDS = Object.values(FrameKind);
/** Header fields a mutation may set: byte offset and width. */
const FIELDS = {
  version: [4, 1],
  kind: [5, 1],
  dtype: [6, 1],
  flags: [7, 1],
  step: [8, 4],
  mb: [12, 4],
  rows: [16, 4],
  cols: [20, 4],
  payloadBytes: [24, 4],
  reserved: [28, 4],
} as const;
type Field = keyof typeof FIELDS;
const EDGES = [0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 64, 255, 256, 65535, 65536, 0x7fffffff, 0x80000000, 0xffffffff];

/** Seeded frames, honest and hostile. */
class Fuzzer {
  readonly r: () => number;
  private readonly g: () => number;
  /** Well-formed frames each sender sent (some are replayed): up to 64 of each, newer ones replacing random older ones. */
  private readonly sent = new Map<string, Uint8Array[]>();

  constructor(seed: number) {
    this.r = rng(seed);
    this.g = gaussian(this.r);
  }

  int(k: number): number {
    return Math.floor(this.r() * k);
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  /** What an honest neighbour sends as `kind`: its exact shape, values of its usual scale. */
  honest(kind: FrameKind, round: number, mb: number, scale = 1, from = ''): Uint8Array {
    const s = shapes[kind]!; // a middle stage takes every kind
    const rows = s.minRows + this.int(s.maxRows - s.minRows + 1);
    const bytes = encodeFrame(
      { kind, tag: round, microbatch: mb, rows, cols: s.cols, dtype: s.dtype, tensor: this.values(kind, rows * s.cols, scale), tokens: this.tokens(s, rows) },
      undefined,
      {
        entropy: true,
      },
    );
    const mine = this.sent.get(from) ?? [];
    this.sent.set(from, mine);
    if (mine.length < 64) mine.push(bytes);
    else mine[this.int(64)] = bytes;
    return bytes;
  }

  private values(kind: FrameKind, n: number, scale: number): Float32Array {
    if (kind === FrameKind.GenerateStart)
      return Float32Array.of(1 + this.int(16), this.int(3), this.int(65536), this.int(65536), 1 + this.int(middle.seq), this.int(2), this.int(4));
    if (kind === FrameKind.GenerateToken) return Float32Array.of(this.int(middle.vocab));
    const s = scale * (kind === FrameKind.Gradient ? 1e-3 : kind === FrameKind.ReplicaWeights ? 0.02 : 1);
    return Float32Array.from({ length: n }, () => s * this.g());
  }

  private tokens(s: FrameShape, rows: number): Uint16Array | undefined {
    return s.tokens ? Uint16Array.from({ length: rows }, () => this.int(middle.vocab)) : undefined;
  }

  /** A frame `from` sends: of a random kind and a random category of damage, around round `round`. */
  hostile(round: number, from: string): { cat: string; bytes: Uint8Array } {
    const cat = this.pick(Object.keys(this.damage) as (keyof Fuzzer['damage'])[]);
    return { cat, bytes: this.damage[cat](Math.max(0, round - 2 + this.int(10)), this.int(2 * M), from) };
  }

  /** An honest frame of a random kind. */
  private any(round: number, mb: number, from: string): Uint8Array {
    return this.honest(this.pick(KINDS), round, mb, 1, from);
  }

  /** Sets a header field of (a copy of) `bytes` to an edge value or a random one. */
  setField(bytes: Uint8Array, field: Field): Uint8Array {
    const c = bytes.slice();
    const [at, width] = FIELDS[field];
    const v = this.r() < 0.7 ? this.pick(EDGES) : this.int(2 ** 32);
    const view = new DataView(c.buffer);
    if (width === 1) view.setUint8(at, v & 0xff);
    else view.setUint32(at, v >>> 0, true);
    return c;
  }

  readonly damage = {
    random: (): Uint8Array => {
      const b = Uint8Array.from({ length: this.int(400) }, () => this.int(256));
      // Half of them with a valid magic and version, to get past the first checks.
      if (b.length >= 5 && this.r() < 0.5) b.set([0x4d, 0x52, 0x57, 0x53, 1]);
      return b;
    },
    valid: (round: number, mb: number, from: string): Uint8Array => this.any(round, mb, from),
    bitflip: (round: number, mb: number, from: string): Uint8Array => {
      const b = this.any(round, mb, from).slice();
      for (let n = 1 + this.int(8); n > 0; n--) b[this.int(b.length)] ^= 1 << this.int(8);
      return b;
    },
    truncate: (round: number, mb: number, from: string): Uint8Array => {
      const b = this.any(round, mb, from);
      return b.slice(0, this.int(b.length));
    },
    extend: (round: number, mb: number, from: string): Uint8Array => {
      const b = this.any(round, mb, from);
      const c = new Uint8Array(b.length + 1 + this.int(16));
      c.set(b);
      return c;
    },
    header: (round: number, mb: number, from: string): Uint8Array => this.setField(this.any(round, mb, from), this.pick(Object.keys(FIELDS) as Field[])),
    bomb: (round: number, mb: number): Uint8Array => {
      // A constant tensor codes to a few bytes; its header then claims a huge shape (or keeps the exact one: all zero).
      const n = shapes[FrameKind.Activation]!;
      const zero = this.r() < 0.3;
      const b = encodeFrame(
        {
          kind: FrameKind.Activation,
          tag: round,
          microbatch: mb,
          rows: n.maxRows,
          cols: n.cols,
          dtype: this.pick(['int8', 'int4', 'int8c', 'int4c'] as const),
          tensor: new Float32Array(n.maxRows * n.cols).fill(zero ? 0 : 1),
        },
        undefined,
        { entropy: true },
      );
      if (zero) return b;
      const v = new DataView(b.buffer);
      v.setUint32(16, 1 + this.int(1 << 16), true);
      v.setUint32(20, 1 + this.int(1 << 16), true);
      return b;
    },
    coded: (round: number, mb: number): Uint8Array => {
      // A compressible activation (two levels) is entropy-coded; flip bits of its coded stream, after the column scales.
      const n = shapes[FrameKind.Activation]!;
      const f = {
        kind: FrameKind.Activation,
        tag: round,
        microbatch: mb,
        rows: n.maxRows,
        cols: n.cols,
        dtype: DTYPE,
        tensor: Float32Array.from({ length: n.maxRows * n.cols }, () => (this.int(4) ? 1 : -1)),
      };
      const b = encodeFrame(f, undefined, { entropy: true });
      const stream = HEADER_BYTES + 4 * n.cols;
      for (let k = 1 + this.int(4); k > 0; k--) b[stream + this.int(b.length - stream)] ^= 1 << this.int(8);
      return b;
    },
    nonfinite: (round: number, mb: number): Uint8Array => {
      const kind = this.pick([FrameKind.GenerateStart, FrameKind.GenerateToken, FrameKind.ReplicaWeights, FrameKind.Activation, FrameKind.Gradient]);
      const b = this.honest(kind, round, mb).slice();
      // fp32 kinds: any value; int8c: a column scale (the first floats of the payload).
      const floats = kind === FrameKind.Activation || kind === FrameKind.Gradient ? shapes[kind]!.cols : (b.length - HEADER_BYTES) >> 2;
      new DataView(b.buffer).setFloat32(HEADER_BYTES + 4 * this.int(floats), this.pick([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 3e38]), true);
      return b;
    },
    shape: (round: number, mb: number): Uint8Array => {
      const rows = 1 + this.int(40);
      const cols = 1 + this.int(40);
      const tokens = this.r() < 0.3 ? Uint16Array.from({ length: rows }, () => this.int(65536)) : undefined;
      const f: Frame = {
        kind: this.pick(KINDS),
        tag: round,
        microbatch: mb,
        rows,
        cols,
        dtype: this.pick(DTYPES),
        tensor: Float32Array.from({ length: rows * cols }, () => this.g()),
        tokens,
      };
      return encodeFrame(f, undefined, { entropy: true });
    },
    scale: (round: number, mb: number): Uint8Array =>
      this.honest(this.pick([FrameKind.Activation, FrameKind.Gradient, FrameKind.EvalActivation, FrameKind.GenerateActivation]), round, mb, this.pick([1e-5, 1e-2, 1e2, 1e5])),
    replay: (round: number, mb: number, from: string): Uint8Array => {
      const mine = this.sent.get(from);
      const old = (mine ? this.pick(mine) : this.any(round, mb, from)).slice();
      const v = new DataView(old.buffer);
      v.setUint32(8, round, true);
      v.setUint32(12, mb, true);
      return old;
    },
    flood: (_round: number, _mb: number, from: string): Uint8Array => this.any(this.int(2 ** 32), this.int(2 ** 32), from),
  };
}

// What the process keeps, after a full collection (what is merely garbage does not count).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heap = () => {
  gc();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
};

describe('fuzzing the frames neighbours send', () => {
  it(`${FRAMES} hostile frames, honest ones interleaved: nothing throws, all counted, holdings and heap bounded`, async () => {
    const fz = new Fuzzer(SEED);
    const hostile: Record<string, number> = {};
    const box = new Mailbox({ shapes, perSender, onHostile: (_from, what) => (hostile[what.why] = (hostile[what.why] ?? 0) + 1) });
    const senders = ['x0', 'x1', 'x2', 'x3'];
    const cats: Record<string, number> = {};
    let round = 0;
    let heap0 = 0;
    for (let i = 0; i < FRAMES; i++) {
      if (i % 50 === 0) await honestRound(box, fz, ++round);
      if (i === 2000) heap0 = heap(); // after the bands, replay memories and refused keys have filled
      const from = senders[i % senders.length];
      const { cat, bytes } = fz.hostile(round, from);
      cats[cat] = (cats[cat] ?? 0) + 1;
      const before = box.rejected + box.held().frames;
      box.deliver(from, bytes); // never throws: a throw fails the test here
      // Filed or dropped and counted (an eviction drops and counts older frames for it).
      expect(box.rejected + box.held().frames - before, `frame ${i} (${cat})`).toBe(1);
      const s = box.from(from);
      expect(s.train.held.frames + s.gen.held.frames + s.avg.held.frames).toBeLessThanOrEqual(perSender.frames);
      expect(s.train.held.bytes + s.gen.held.bytes + s.avg.held.bytes).toBeLessThanOrEqual(perSender.bytes);
    }
    // ~900 bombs claim up to 64 Ki × 64 Ki values each: decoding even one would show here.
    expect(heap() - heap0).toBeLessThan(16 << 20);
    expect(Math.min(...Object.values(cats))).toBeGreaterThan(FRAMES / 20); // every category was exercised
    // Every kind of refusal happened, each reported.
    for (const why of ['truncated', 'magic', 'shape', 'kind', 'length', 'nonfinite', 'entropy', 'window', 'caps', 'implausible', 'band', 'replay'])
      expect(hostile[why], why).toBeGreaterThan(0);
    expect([...box.hostile.values()].reduce((a, b) => a + b, 0)).toBe(Object.values(hostile).reduce((a, b) => a + b, 0));
  }, 60_000);
});

/**
 * Round `round` as honest neighbours run it: `h` (the previous stage) sends its activations, an
 * evaluation and a generation request, `n` (the next stage) its gradients and a token, and every
 * one of them is taken intact; then the round ends.
 */
async function honestRound(box: Mailbox, fz: Fuzzer, round: number): Promise<void> {
  box.setRound(round, round);
  const expectTaken = async (from: string, inbox: 'train' | 'gen' | 'avg', bytes: Uint8Array) => {
    const want = decodeFrame(bytes);
    box.deliver(from, bytes);
    const got = await box.from(from)[inbox].take(want.kind, want.tag, want.microbatch, 1000);
    expect(Array.from(got.tensor)).toEqual(Array.from(want.tensor));
  };
  for (let mb = 0; mb < M; mb++) {
    await expectTaken('h', 'train', fz.honest(FrameKind.Activation, round, mb));
    await expectTaken('n', 'train', fz.honest(FrameKind.Gradient, round, mb));
  }
  if (round % 5 === 0) for (let mb = 0; mb < EVAL; mb++) await expectTaken('h', 'train', fz.honest(FrameKind.EvalActivation, round + 1, mb));
  await expectTaken('h', 'gen', fz.honest(FrameKind.GenerateStart, round, 0));
  await expectTaken('h', 'gen', fz.honest(FrameKind.GenerateActivation, round, 0));
  await expectTaken('n', 'gen', fz.honest(FrameKind.GenerateToken, round, 0));
  if (round % 10 === 0) await expectTaken('h', 'avg', fz.honest(FrameKind.ReplicaWeights, round, 0));
  for (const p of ['h', 'n']) box.from(p).gen.close(round);
  box.forgetRoundsBefore(round + 1);
}

describe('fuzzing the awaited neighbour through stage runners', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await openNodeGpu();
  });
  afterAll(() => gpu?.device.destroy());

  it('a round fed a damaged frame of its previous stage goes on or fails at once with a HostileFrameError naming it', async () => {
    const fz = new Fuzzer(SEED + 1);
    // Its own stream: how many frames a third party slips in depends on timing, the damage must not.
    const third = new Fuzzer(SEED + 2);
    const ids = ['s0', 's1', 's2'];
    const specs = cfgs.map((cfg, s) => ({ id: ids[s], stage: s, cfg, init: new Float32Array(layout(cfg).total).map(() => 0.02 * fz.r() - 0.01), slots: 3 - s }));
    const sw = await memorySwarm(gpu, specs, { stages: 3, dtype: DTYPE, optimizer: OPT, batch, timeoutMs: 3000 });
    // Damage one activation s0 sends s1 a round, keeping its (kind, round, microbatch): only what s1 waits for.
    const keyed: ((b: Uint8Array) => Uint8Array)[] = [
      (b) => fz.setField(b, fz.pick(['version', 'dtype', 'flags', 'rows', 'cols', 'payloadBytes', 'reserved'] as const)),
      (b) => {
        const c = b.slice();
        for (let n = 1 + fz.int(8); n > 0; n--) c[HEADER_BYTES + fz.int(c.length - HEADER_BYTES)] ^= 1 << fz.int(8);
        return c;
      },
      (b) => b.slice(0, fz.int(b.length)),
      (b) => {
        const f = decodeFrame(b);
        const rows = 1 + fz.int(f.rows);
        return encodeFrame({ ...f, rows, cols: 1, tensor: f.tensor.subarray(0, rows) });
      },
      (b) => {
        const f = decodeFrame(b);
        return encodeFrame({ ...f, tensor: f.tensor.map((v) => v * fz.pick([0, 1e-4, 100, 1e5, 1e7])) }, undefined, { entropy: true });
      },
      (b) => {
        const c = b.slice();
        new DataView(c.buffer).setFloat32(HEADER_BYTES, Number.NaN, true);
        return c;
      },
    ];
    const box = sw.get('s1').mailbox;
    const deliver = box.deliver.bind(box);
    let damage = { mb: -1, edit: (b: Uint8Array) => b };
    box.deliver = (from, bytes) => {
      // A third party's garbage arrives all along; it must change nothing.
      deliver('x', third.hostile(new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true), 'x').bytes);
      const mb = new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true);
      deliver(from, from === 's0' && damage.mb === mb ? damage.edit(bytes) : bytes);
    };
    const outcomes = { ok: 0, hostile: 0 };
    for (let r = 1; r <= 40; r++) {
      // From the first round: before its band is armed a stage must take values up to MAX_ABS without failing.
      damage = { mb: fz.int(M), edit: fz.pick(keyed) };
      const abort = new AbortController();
      for (const p of sw.peers.values()) p.mailbox.setRound(r, r);
      const runs = ids.map((id) =>
        sw.get(id).runner.runRound(
          roundWorkOf(
            r,
            r,
            Array.from({ length: M }, () => ids),
            id,
          ),
          abort.signal,
        ),
      );
      const t0 = performance.now();
      const error = await runs[1].then(
        () => undefined,
        (e) => e,
      );
      if (error === undefined) outcomes.ok++;
      else {
        expect(error, String(error)).toBeInstanceOf(HostileFrameError);
        expect((error as HostileFrameError).from).toBe('s0');
        expect(performance.now() - t0).toBeLessThan(2000); // at once, not after the timeout
        outcomes.hostile++;
      }
      abort.abort(new Error(`round ${r} over`));
      await Promise.allSettled(runs);
      for (const p of sw.peers.values()) {
        p.runner.discard();
        p.mailbox.forgetRoundsBefore(r + 1);
      }
    }
    console.log('OUT', JSON.stringify(outcomes));
    expect(outcomes.hostile).toBeGreaterThan(20); // 31 with this seed
    expect(outcomes.ok).toBeGreaterThan(4); // 9: flips of low bits and small rescalings pass
  }, 60_000);
});
