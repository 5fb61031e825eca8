import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../kernels/context.js';
import { BlockRuntime } from '../shared/engine/block-runtime.js';
import { decodeCheckpoint, encodeCheckpoint } from '../shared/engine/checkpoint.js';
import type { BlockConfig } from '../shared/engine/model.js';
import { openNodeGpu } from '../worker/node-gpu.js';
import { rng } from '../shared/base/random.js';

const rand = rng(5);
const arr = (n: number) => Float32Array.from({ length: n }, () => rand() - 0.5);

describe('checkpoint format', () => {
  const c = { step: 7, params: arr(11), m: arr(11), v: arr(11), meta: { note: 'ünïcode' } };

  it('round-trips exactly, also from a Node Buffer view at an odd offset', () => {
    const bytes = encodeCheckpoint(c);
    const pooled = Buffer.concat([Buffer.from([1, 2, 3]), Buffer.from(bytes)]).subarray(3);
    for (const input of [bytes, pooled]) {
      const back = decodeCheckpoint<typeof c.meta>(input);
      expect(back.step).toBe(7);
      expect(back.meta).toEqual(c.meta);
      expect(Array.from(back.params)).toEqual(Array.from(c.params));
      expect(Array.from(back.v)).toEqual(Array.from(c.v));
    }
  });

  it('rejects truncated, foreign and non-finite data with a clear error', () => {
    const bytes = encodeCheckpoint(c);
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 4))).toThrow(/does not match its header/);
    expect(() => decodeCheckpoint(new TextEncoder().encode('hello world, not a checkpoint'))).toThrow(/wrong magic/);
    const bad = encodeCheckpoint({ ...c, m: Float32Array.from(c.m, (x, i) => (i === 3 ? NaN : x)) });
    expect(() => decodeCheckpoint(bad)).toThrow(/is NaN/);
    expect(() => encodeCheckpoint({ ...c, v: arr(3) })).toThrow(/differ in length/);
  });
});

describe('block runtime state', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await openNodeGpu();
  });
  afterAll(() => gpu?.device.destroy());

  it('resuming from saved state continues exactly like an uninterrupted run', async () => {
    const cfg: BlockConfig = { vocab: 11, dModel: 8, nHead: 2, nLayer: 1, seq: 5, batch: 2, hasEmbedding: true, hasHead: true };
    const batch = (i: number) => {
      const r = rng(100 + i);
      const tokens = Uint32Array.from({ length: 10 }, () => Math.floor(r() * 11));
      return { tokens, targets: tokens.map((t) => (t + 3) % 11) };
    };
    const train = async (rt: BlockRuntime, from: number, to: number) => {
      for (let i = from; i < to; i++) {
        await rt.forward(batch(i));
        await rt.backward();
        rt.step();
      }
    };
    const a = await BlockRuntime.create(gpu, cfg, { seed: 3 });
    await train(a, 0, 6);
    const b = await BlockRuntime.create(gpu, cfg, { seed: 3 });
    await train(b, 0, 3);
    const c = await BlockRuntime.create(gpu, cfg, { seed: 99 });
    c.loadState(decodeCheckpoint(encodeCheckpoint({ ...(await b.saveState()), meta: {} })));
    expect(c.stepCount).toBe(3);
    await train(c, 3, 6);
    expect(Array.from(await c.readParams())).toEqual(Array.from(await a.readParams()));
    expect(() => c.loadState({ step: 1, params: arr(3), m: arr(3), v: arr(3) })).toThrow(/this block needs/);
    for (const rt of [a, b, c]) rt.destroy();
  });
});

describe('learning-rate schedule', () => {
  it('warms up linearly, peaks at lr, decays by cosine to the floor', async () => {
    const { learningRate } = await import('../shared/engine/optimizer.js');
    const o = { lr: 1e-3, warmup: 10, total: 110, minFraction: 0.1 };
    expect(learningRate(1, o)).toBeCloseTo(1e-4, 12);
    expect(learningRate(10, o)).toBeCloseTo(1e-3, 12);
    expect(learningRate(60, o)).toBeCloseTo(1e-4 + 0.5 * 9e-4, 12);
    expect(learningRate(110, o)).toBeCloseTo(1e-4, 12);
    expect(learningRate(500, o)).toBeCloseTo(1e-4, 12);
  });
});
