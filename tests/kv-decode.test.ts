// Cached decoding (issue 21): the decode kernels against the float64 reference, and a block's KV
// cache decoding exactly what recomputing the whole context window with the training forward gives
// (greedy tokens equal, logits within float error), for one block holding the model and for a
// two-stage split with subspace boundaries: prompts of different lengths prefilled together in one
// step, then their new tokens batched one step each.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALIGN_FLOATS, type Gpu } from '../kernels/context.js';
import * as k from '../kernels/ops.js';
import { attentionForward } from '../kernels/reference.js';
import { rng } from '../shared/base/random.js';
import { BlockRuntime } from '../shared/engine/block-runtime.js';
import { kvDecoderBytes, kvEntriesWithin } from '../shared/engine/kv-decoder.js';
import { type BlockConfig, initParams, layout } from '../shared/engine/model.js';
import { argmax, contextWindow } from '../shared/peer/generate-frames.js';
import { type ModelSpec, stageConfigs } from '../shared/run/derive.js';
import { openNodeGpu } from '../worker/node-gpu.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await openNodeGpu();
});
afterAll(() => gpu?.device.destroy());

const MODEL: ModelSpec = { vocab: 29, dModel: 32, nHead: 4, nLayer: 2, seq: 24, batch: 2 };
const u32s = (a: number[]) => gpu.upload(Uint32Array.from(a));

describe('decode kernels', () => {
  it('cached attention of one new position per row equals causal attention over the whole sequence (float64 reference)', async () => {
    const [T, H, d, seq] = [11, 4, 32, 16];
    const r = rng(7);
    // Two sequences in entries 1 and 0 of a 3-entry cache (entry 2: scratch).
    const seqs = [0, 1].map(() => Float32Array.from({ length: T * 3 * d }, () => r() * 2 - 1));
    const cache = { k: gpu.upload(new Float32Array(3 * seq * d)), v: gpu.upload(new Float32Array(3 * seq * d)) };
    const entries = [1, 0];
    for (const [i, qkv] of seqs.entries()) {
      const dispatch = k.kvAppend(gpu, { qkv: gpu.upload(qkv), ...cache, entry: u32s(Array(T).fill(entries[i])), pos: u32s([...Array(T).keys()]), R: T, d, seq });
      gpu.run([dispatch]);
    }
    // Rows: sequence 0 at its last position, sequence 1 at position 4, and its first position.
    const rows = [
      { s: 0, i: T - 1 },
      { s: 1, i: 4 },
      { s: 1, i: 0 },
    ];
    const q = new Float32Array(rows.length * 3 * d);
    rows.forEach(({ s, i }, n) => q.set(seqs[s].subarray(i * 3 * d, (i + 1) * 3 * d), n * 3 * d));
    const out = gpu.upload(new Float32Array(rows.length * d));
    const places = { entry: u32s(rows.map((x) => entries[x.s])), pos: u32s(rows.map((x) => x.i)) };
    gpu.run([k.decodeAttention(gpu, { qkv: gpu.upload(q), ...cache, ...places, out, R: rows.length, H, d, seq })]);
    const got = await gpu.read(out);
    const refs = seqs.map((qkv) => attentionForward(Float64Array.from(qkv), 1, T, H, d).out);
    rows.forEach(({ s, i }, n) => {
      for (let e = 0; e < d; e++) expect(got[n * d + e]).toBeCloseTo(refs[s][i * d + e], 5);
    });
  });
});

/** The whole model's parameters (a sharp head: margins between the top logits worth comparing), and a stage's share by name. */
function params(cfg: BlockConfig, whole: BlockConfig): Float32Array {
  const all = initParams(whole, 3);
  const head = layout(whole).params.find((p) => p.name === 'head.w')!;
  for (let i = head.offset; i < head.offset + head.size; i++) all[i] *= 30;
  const out = new Float32Array(layout(cfg).total);
  for (const p of layout(cfg).params) {
    const q = layout(whole).params.find((x) => x.name === p.name)!;
    out.set(all.subarray(q.offset, q.offset + q.size), p.offset);
  }
  return out;
}

/** A pipeline of blocks on one GPU: recompute a context's next-token logits, or decode through KV caches. */
async function blocks(m: ModelSpec, layers: number[]) {
  const whole: BlockConfig = { ...m, hasEmbedding: true, hasHead: true };
  const cfgs = stageConfigs(m, layers);
  const rts = await Promise.all(cfgs.map((cfg) => BlockRuntime.create(gpu, cfg, { init: params(cfg, whole) })));
  const decoders = rts.map((rt) => rt.kvDecoder({ entries: 4, maxRows: m.seq }));
  /** Next-token logits after `context` (its last ≤ seq tokens), recomputed from scratch by the blocks' training forward. */
  async function recompute(context: number[]): Promise<Float32Array> {
    const { tokens, length } = contextWindow(context, m.batch, m.seq);
    let x: Float32Array | undefined;
    for (const rt of rts) {
      const input = { tokens, ...(x && { x: padded(x, rt) }) };
      if (rt.cfg.hasHead) return rt.forwardLogits(input, 0, 0, length - 1);
      x = await rt.forwardBoundary(input, 0, length);
    }
    throw new Error('no head');
  }
  const padded = (rows: Float32Array, rt: BlockRuntime) => {
    const x = new Float32Array(rt.N * rt.width);
    x.set(rows);
    return x;
  };
  /** One cached step: rows of requests (a prefill: every position of its window); the logits of each request's last row, in order. */
  async function step(reqs: { entry: number; first: number; tokens: number[] }[]): Promise<Float32Array[]> {
    const rows = reqs.flatMap((q) => q.tokens.map((token, i) => ({ entry: q.entry, pos: q.first + i, token })));
    let x: Float32Array | undefined;
    for (const dec of decoders) x = await dec.step(rows.map((r, i) => ({ ...r, ...(x && { x: x.subarray(i * dec.width, (i + 1) * dec.width) }) })));
    const ends = reqs.map((_, i) => reqs.slice(0, i + 1).reduce((n, q) => n + q.tokens.length, 0) - 1);
    return ends.map((r) => x!.subarray(r * m.vocab, (r + 1) * m.vocab));
  }
  return { recompute, step, destroy: () => rts.forEach((rt) => rt.destroy()) };
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((mx, v, i) => Math.max(mx, Math.abs(v - b[i])), 0);

/**
 * Greedy generation of `n` tokens for each prompt, recomputed, and cached: the prompts prefilled
 * together in one step, then every request's new token in one step each.
 */
async function bothWays(p: Awaited<ReturnType<typeof blocks>>, prompts: number[][], n: number) {
  const recomputed: number[][] = [];
  for (const prompt of prompts) {
    const ctx = [...prompt];
    for (let i = 0; i < n; i++) ctx.push(argmax(await p.recompute(ctx)));
    recomputed.push(ctx.slice(prompt.length));
  }
  const ctxs = prompts.map((q) => [...q]);
  let worst = 0;
  let logits = await p.step(ctxs.map((c, e) => ({ entry: e, first: 0, tokens: c })));
  for (let i = 0; i < n; i++) {
    ctxs.forEach((c, e) => c.push(argmax(logits[e])));
    const cached = await p.step(ctxs.map((c, e) => ({ entry: e, first: c.length - 1, tokens: [c.at(-1)!] })));
    if (i + 1 < n) for (const [e, c] of ctxs.entries()) worst = Math.max(worst, maxDiff(cached[e], await p.recompute(c)));
    logits = cached;
  }
  return { recomputed, cached: ctxs.map((c, e) => c.slice(prompts[e].length)), worst };
}

describe('a block’s KV cache', () => {
  const prompts = [[3, 1, 4, 1, 5], [2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4], [9]];

  it('decodes greedily exactly the tokens recomputing the window gives, three requests of different lengths in one step', async () => {
    const p = await blocks(MODEL, [2]);
    const { recomputed, cached, worst } = await bothWays(p, prompts, 12);
    expect(cached).toEqual(recomputed);
    expect(worst).toBeLessThan(2e-3);
    p.destroy();
  });

  it('does the same through two stages whose boundaries are subspace coefficients', async () => {
    const p = await blocks({ ...MODEL, subspace: { k: 8, seed: 2 } }, [1, 1]);
    const { recomputed, cached, worst } = await bothWays(p, prompts, 12);
    expect(cached).toEqual(recomputed);
    expect(worst).toBeLessThan(2e-3);
    p.destroy();
  });

  it('holds the GPU memory kvDecoderBytes says, and kvEntriesWithin sizes it to a budget', async () => {
    for (const cfg of stageConfigs({ ...MODEL, subspace: { k: 8, seed: 2 } }, [1, 1]).concat(stageConfigs(MODEL, [2]))) {
      const rt = await BlockRuntime.create(gpu, cfg);
      for (const o of [
        { entries: 1, maxRows: 1 },
        { entries: 5, maxRows: 24 },
      ]) {
        const dec = rt.kvDecoder(o);
        // Each buffer is rounded up to the binding alignment: at most one alignment's worth apiece.
        expect(dec.bytes - kvDecoderBytes(cfg, o)).toBeGreaterThanOrEqual(0);
        expect(dec.bytes - kvDecoderBytes(cfg, o)).toBeLessThan(24 * ALIGN_FLOATS * 4);
        dec.destroy();
      }
      const fits = (n: number) => kvDecoderBytes(cfg, { entries: n, maxRows: 24 });
      expect(kvEntriesWithin(cfg, fits(7), 24, 16)).toBe(7);
      expect(kvEntriesWithin(cfg, fits(7) - 1, 24, 16)).toBe(6);
      expect(kvEntriesWithin(cfg, fits(1) - 1, 24, 16)).toBe(0);
      expect(kvEntriesWithin(cfg, 1e12, 24, 16)).toBe(16);
      rt.destroy();
    }
  });

  it('refuses a bad step', async () => {
    const rt = await BlockRuntime.create(gpu, { ...MODEL, hasEmbedding: true, hasHead: true });
    const dec = rt.kvDecoder({ entries: 2, maxRows: 2 });
    await expect(dec.step([])).rejects.toThrow('a decode step takes 1 to 2 rows, got 0');
    await expect(dec.step([{ entry: 2, pos: 0, token: 1 }])).rejects.toThrow('entry must be an integer in [0, 2), got 2');
    await expect(
      dec.step([
        { entry: 0, pos: 0, token: 1 },
        { entry: 0, pos: 1, token: 1 },
      ]),
    ).resolves.toHaveLength(2 * MODEL.vocab); // a request's consecutive positions share a step
    await expect(
      dec.step([
        { entry: 1, pos: 3, token: 1 },
        { entry: 1, pos: 3, token: 2 },
      ]),
    ).rejects.toThrow('entry 1 position 3 appears twice in one step');
    await expect(dec.step([{ entry: 0, pos: MODEL.seq, token: 1 }])).rejects.toThrow(`pos must be an integer in [0, seq=${MODEL.seq})`);
    await expect(dec.step([{ entry: 0, pos: 0, token: MODEL.vocab }])).rejects.toThrow(`token ${MODEL.vocab} is not a token id`);
    expect(() => rt.kvDecoder({ entries: 2, maxRows: 0 })).toThrow('maxRows must be a positive integer, got 0');
    rt.destroy();
  });
});
