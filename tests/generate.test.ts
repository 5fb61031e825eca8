// Text generation through pipeline stages on one GPU, linked in memory: the split model must
// generate what an independent float64 reference of the same model generates, sampling must be
// reproducible, bad requests must fail before anything is sent, and generating between (or
// during) training steps must leave training bit-for-bit unchanged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../kernels/context.js';
import type { Dtype } from '../shared/wire/codec.js';

import { type BlockConfig, initParams, layout } from '../shared/engine/model.js';
import {
  AbortReason,
  advanceWindow,
  argmax,
  contextWindow,
  GenerationError,
  MAX_NEW_TOKENS,
  resumedWindow,
  type Sampling,
  START_COLS,
  sampleToken,
  windowAfter,
} from '../shared/peer/generate-frames.js';
import { roundWorkOf } from '../shared/peer/stage-runner.js';
import { type ModelSpec, stageConfigs } from '../shared/run/derive.js';
import { ReferenceBlock } from '../shared/engine/reference-block.js';
import { GEN_OPEN_REQUESTS } from '../shared/trust/mailbox.js';
import { FrameKind, HEADER_BYTES, encodeFrame } from '../shared/wire/frame.js';
import { openNodeGpu } from '../worker/node-gpu.js';
import { M, type MemoryPeer, OPT, batch, corpus, memorySwarm, model } from './memory-peers.js';
import { rng } from '../shared/base/random.js';

const subspaceModel: ModelSpec = { ...model, subspace: { k: 8, seed: 2 } };
const encode = (s: string) => Uint32Array.from(Array.from(s), (c) => corpus.vocab.indexOf(c));
// 5 tokens, so 8 new ones slide the context window past seq = 8.
const PROMPT = encode('To be');
const NEW = 8;
/**
 * A freshly initialised head gives nearly uniform logits (std ≈ 0.1), whose top-2 margins are
 * below any codec's error; a sharper head (same init, ×30) gives margins worth comparing.
 */
const HEAD_SCALE = 30;

let gpu: Gpu;
beforeAll(async () => {
  gpu = await openNodeGpu();
});
afterAll(() => gpu?.device.destroy());

/** One set of parameters for the whole model, as a single block would hold them. */
function wholeParams(m: ModelSpec, headScale = HEAD_SCALE): { cfg: BlockConfig; params: Float32Array } {
  const cfg: BlockConfig = { ...m, hasEmbedding: true, hasHead: true };
  const params = initParams(cfg, 3);
  const head = layout(cfg).params.find((p) => p.name === 'head.w')!;
  for (let i = head.offset; i < head.offset + head.size; i++) params[i] *= headScale;
  return { cfg, params };
}

/** A stage's share of the whole model's parameters, by name. */
function sliceParams(whole: { cfg: BlockConfig; params: Float32Array }, cfg: BlockConfig): Float32Array {
  const from = layout(whole.cfg);
  const to = layout(cfg);
  const out = new Float32Array(to.total);
  for (const p of to.params) {
    const q = from.params.find((x) => x.name === p.name)!;
    out.set(whole.params.subarray(q.offset, q.offset + q.size), p.offset);
  }
  return out;
}

interface Pipeline {
  cfgs: BlockConfig[];
  /** One peer per stage, in stage order. */
  stages: MemoryPeer[];
  inits: Float32Array[];
}

const ids = (n: number) => Array.from({ length: n }, (_, s) => `s${s}`);

async function pipeline(m: ModelSpec, layers: number[], dtype: Dtype, opts: { headScale?: number; spareSlot?: boolean; noCache?: number[] } = {}): Promise<Pipeline> {
  const whole = wholeParams(m, opts.headScale);
  const cfgs = stageConfigs(m, layers);
  const inits = cfgs.map((cfg) => sliceParams(whole, cfg));
  const S = cfgs.length;
  const specs = cfgs.map((cfg, s) => ({
    id: `s${s}`,
    stage: s,
    cfg,
    init: inits[s],
    slots: S - s + (opts.spareSlot ? 1 : 0),
    generationSlot: opts.spareSlot ? S - s : 0,
    trainingSlots: S - s,
    noCache: opts.noCache?.includes(s),
  }));
  const sw = await memorySwarm(gpu, specs, { stages: S, dtype, optimizer: OPT, batch, timeoutMs: 20_000 });
  return { cfgs, stages: ids(S).map((id) => sw.get(id)), inits };
}

/** The hops of stage s on the pipeline's one path. */
const prevHop = (p: Pipeline, s: number) => p.stages[s].hop(`s${s - 1}`);
const nextHop = (p: Pipeline, s: number) => (s + 1 < p.stages.length ? p.stages[s].hop(`s${s + 1}`) : undefined);
const start = (p: Pipeline, id: number, prompt: ArrayLike<number>, n: number, sampling: Sampling) => p.stages[0].generation.generate(id, prompt, n, sampling, nextHop(p, 0));
const serve = (p: Pipeline, s: number, id: number, opts = {}) => p.stages[s].generation.serve(id, prevHop(p, s), nextHop(p, s), opts);
const rejected = (p: Pipeline) => p.stages.map((st) => st.mailbox.rejected);

/** Stage 0 generates, every later stage serves; the last stage's logits are kept per token. */
async function generate(p: Pipeline, requestId: number, prompt: Uint32Array, n: number, sampling: Sampling = { temperature: 0, seed: 1 }) {
  const logits: Float32Array[] = [];
  const last = p.stages.length - 1;
  const [tokens, ...served] = await Promise.all([
    start(p, requestId, prompt, n, sampling),
    ...p.stages.slice(1).map((_, j) => serve(p, j + 1, requestId, j + 1 === last ? { onToken: (i: number, _t: number, l?: Float32Array) => (logits[i] = l!) } : {})),
  ]);
  for (const s of served) expect(Array.from(s)).toEqual(Array.from(tokens));
  return { tokens, logits };
}

/** The float64 reference of the same stages: logits of the last real position of a context. */
function referenceLogits(p: Pipeline): (context: number[]) => Float64Array {
  const refs = p.cfgs.map((cfg, s) => new ReferenceBlock(cfg, p.inits[s]));
  const { batch: B, seq, vocab } = p.cfgs[0];
  return (context) => {
    const { tokens, length } = contextWindow(context, B, seq);
    let x: Float64Array | undefined;
    for (const ref of refs) x = ref.forward({ tokens, x }).x;
    return refs.at(-1)!.logits!.slice((length - 1) * vocab, length * vocab);
  };
}

/** Rows a cached request's stage sends per token: the window's when it is forwarded whole (token 0, each slide), else one. */
function cachedRows(prompt: number, n: number, seq: number): number[] {
  const rows: number[] = [];
  let f = { length: Math.min(prompt, seq), slid: true };
  for (let i = 0; i < n; i++) {
    rows.push(f.slid ? f.length : 1);
    f = advanceWindow(f.length, seq);
  }
  return rows;
}

const top2Margin = (l: ArrayLike<number>) => {
  const s = Array.from(l).sort((a, b) => b - a);
  return s[0] - s[1];
};

/**
 * The pipeline's greedy tokens against the reference: logits within `tol` at every position
 * (with the pipeline's own context, so one near-tie cannot derail the rest), the same token
 * wherever the reference's top-2 margin exceeds 2·tol (then no error within tol can flip the
 * argmax), and a free-running float64 greedy generation that agrees up to the first near-tie.
 */
async function checkAgainstReference(p: Pipeline, tol: number) {
  const { tokens, logits } = await generate(p, 7, PROMPT, NEW);
  const ref = referenceLogits(p);
  const seq = p.cfgs[0].seq;
  let context = Array.from(PROMPT).slice(-seq);
  let clear = 0;
  let maxErr = 0;
  let firstUnclear = NEW;
  for (let i = 0; i < NEW; i++) {
    const want = ref(context);
    const got = logits[i];
    expect(got.length).toBe(want.length);
    for (let v = 0; v < want.length; v++) maxErr = Math.max(maxErr, Math.abs(got[v] - want[v]));
    if (top2Margin(want) > 2 * tol) {
      expect(tokens[i], `token ${i}`).toBe(argmax(want));
      clear++;
    } else {
      firstUnclear = Math.min(firstUnclear, i);
    }
    context = windowAfter(context, tokens[i], seq);
  }
  expect(maxErr).toBeLessThan(tol);
  // The comparison is not vacuous: most positions are decided by a clear margin.
  expect(clear).toBeGreaterThanOrEqual(NEW - 2);
  let free = Array.from(PROMPT).slice(-seq);
  const freeTokens: number[] = [];
  for (let i = 0; i < NEW; i++) {
    freeTokens.push(argmax(ref(free)));
    free = windowAfter(free, freeTokens[i], seq);
  }
  expect(freeTokens.slice(0, firstUnclear)).toEqual(Array.from(tokens.subarray(0, firstUnclear)));
  expect(rejected(p).every((n) => n === 0)).toBe(true);
  return { tokens, maxErr, clear };
}

describe('sampling helpers', () => {
  it('argmax breaks ties to the lowest id; temperature sampling follows the softmax; non-finite logits throw', () => {
    expect(argmax([1, 3, 3, 2])).toBe(1);
    expect(sampleToken([1, 3, 3, 2], 0, () => 0.99)).toBe(1);
    // softmax([0, ln 2, ln 4]) = [1, 2, 4] / 7
    const logits = [0, Math.log(2), Math.log(4)];
    const rand = rng(11);
    const counts = [0, 0, 0];
    for (let i = 0; i < 20_000; i++) counts[sampleToken(logits, 1, rand)]++;
    [1, 2, 4].forEach((w, v) => expect(Math.abs(counts[v] / 20_000 - w / 7)).toBeLessThan(0.015));
    // Temperature 2 flattens: weights √1 : √2 : √4.
    counts.fill(0);
    for (let i = 0; i < 20_000; i++) counts[sampleToken(logits, 2, rand)]++;
    const z = 1 + Math.SQRT2 + 2;
    [1, Math.SQRT2, 2].forEach((w, v) => expect(Math.abs(counts[v] / 20_000 - w / z)).toBeLessThan(0.015));
    for (const bad of [NaN, Infinity, -Infinity]) {
      const e = (() => {
        try {
          sampleToken([0, bad, 1], 1, rand);
        } catch (err) {
          return err as GenerationError;
        }
      })();
      expect(e).toBeInstanceOf(GenerationError);
      expect(e!.reason).toBe(AbortReason.NonFiniteLogits);
      expect(e!.message).toMatch(/logits\[1\] is .*finite/);
    }
  });

  it('the context window keeps the seq most recent tokens, left-aligned in sequence 0', () => {
    expect(contextWindow([5, 6, 7], 2, 4)).toEqual({ tokens: Uint32Array.from([5, 6, 7, 0, 0, 0, 0, 0]), length: 3 });
    expect(contextWindow([1, 2, 3, 4, 5, 6], 2, 4)).toEqual({ tokens: Uint32Array.from([3, 4, 5, 6, 0, 0, 0, 0]), length: 4 });
  });

  it('a full window slides to its newest half: every stage re-forwards it then, and one position otherwise', () => {
    expect(advanceWindow(3, 4)).toEqual({ length: 4, slid: false });
    expect(advanceWindow(4, 4)).toEqual({ length: 2, slid: true });
    expect(advanceWindow(1, 1)).toEqual({ length: 1, slid: true });
    let w = [1, 2, 3];
    const seen: number[][] = [];
    for (const t of [4, 5, 6, 7]) seen.push((w = windowAfter(w, t, 4)));
    expect(seen).toEqual([
      [1, 2, 3, 4],
      [4, 5],
      [4, 5, 6],
      [4, 5, 6, 7],
    ]);
  });
});

describe('generation through pipeline stages', () => {
  it('3 stages with fp32 boundaries generate what the float64 reference generates (and what one whole-model stage does)', async () => {
    const p = await pipeline(model, [1, 1, 1], 'fp32');
    // fp32 against float64 through 3 layers and the head: ~1e-6 here, on logits up to ~8.
    const { tokens } = await checkAgainstReference(p, 1e-4);
    // The one-stage path (stage 0 holds the head and samples locally) agrees with the split one.
    const one = await pipeline(model, [3], 'fp32');
    const alone = await start(one, 1, PROMPT, NEW, { temperature: 0, seed: 1 });
    expect(Array.from(alone)).toEqual(Array.from(tokens));
    // Wire cost: per token, stage 0 sends the window's rows when it prefills (token 0, a slide) and
    // one row otherwise (fp32 rows of d).
    const sent = p.stages[0].generation.stats.bytesSent;
    expect(sent).toBe(32 + START_COLS * 4 + cachedRows(PROMPT.length, NEW, 8).reduce((s, r) => s + 32 + r * 16 * 4, 0));
  });

  it('3 subspace stages (k=8 of 16, int8 coefficients + token ids) generate what the float64 reference generates', async () => {
    const p = await pipeline(subspaceModel, [1, 1, 1], 'int8');
    // int8 per-row absmax keeps each coefficient within 1/254 of its row's largest; through two
    // boundaries and the sharpened head that is a few hundredths of a logit (~0.04 here, on
    // logits up to ~8): 0.1 leaves room, and top-2 margins above 0.2 still decide the tokens.
    const { maxErr } = await checkAgainstReference(p, 0.1);
    expect(maxErr).toBeGreaterThan(1e-3); // the codec really was in the loop (fp32 alone: ~1e-6)
    // Per token: int8 rows of k values + a scale, and a u16 id per row.
    const rows = cachedRows(PROMPT.length, NEW, 8);
    expect(p.stages[1].generation.stats.bytesSent).toBe(
      32 + START_COLS * 4 + rows.reduce((s, r) => s + 32 + r * (4 + 8) + 2 * r, 0) + NEW * (32 + 4), // start, activations, relayed tokens
    );
  });

  it('cached requests decode what recomputing the window decodes; requests at once batch into shared steps and decode what each does alone', async () => {
    const p = await pipeline(model, [1, 1, 1], 'fp32');
    const greedy = { temperature: 0, seed: 1 };
    const run = async (id: number, prompt: Uint32Array, n: number, recompute = false) => {
      const [tokens] = await Promise.all([p.stages[0].generation.generate(id, prompt, n, greedy, nextHop(p, 0), { recompute }), serve(p, 1, id), serve(p, 2, id)]);
      return Array.from(tokens);
    };
    // 20 tokens after 5: the window (seq 8) slides four times.
    expect(await run(1, PROMPT, 20)).toEqual(await run(2, PROMPT, 20, true));
    const prompts = ['To be', 'or not to', 'T', 'the question:\nWhether'].map(encode);
    const alone: number[][] = [];
    for (const [i, q] of prompts.entries()) alone.push(await run(10 + i, q, 12));
    const before = { ...p.stages[1].generation.decodeStats! };
    const together = await Promise.all(prompts.map((q, i) => run(20 + i, q, 12)));
    expect(together).toEqual(alone);
    const after = p.stages[1].generation.decodeStats!;
    // Fewer steps than rows: positions of different requests went through the stage together.
    expect(after.rows - before.rows).toBeGreaterThan(after.steps - before.steps);
    expect(rejected(p).every((n) => n === 0)).toBe(true);
  });

  it('seeded temperature sampling is reproducible', async () => {
    const p = await pipeline(model, [1, 1, 1], 'fp32', { headScale: 3 });
    const run = async (id: number, seed: number) => Array.from((await generate(p, id, PROMPT, NEW, { temperature: 1.5, seed })).tokens);
    const a = await run(1, 42);
    expect(await run(2, 42)).toEqual(a);
    // With a near-uniform head, 8 draws from another seed all matching is vanishingly unlikely
    // (and three other seeds all doing it even more so).
    const others = [await run(3, 43), await run(4, 44), await run(5, 45)];
    expect(others.some((o) => o.join() !== a.join())).toBe(true);
    expect([a, ...others].flat().every((t) => t >= 0 && t < model.vocab)).toBe(true);
    const greedy = Array.from((await generate(p, 6, PROMPT, NEW)).tokens);
    expect(others.concat([a]).some((o) => o.join() !== greedy.join())).toBe(true);
  });

  it('an answer resumed after k tokens (a new path rebuilding its caches from the prompt and them) continues exactly as the first path would have', async () => {
    const p = await pipeline(model, [1, 1, 1], 'fp32', { headScale: 3 });
    const seq = p.cfgs[0].seq;
    let id = 100;
    for (const temperature of [0, 1.5]) {
      const full = Array.from((await generate(p, id++, PROMPT, 20, { temperature, seed: 7 })).tokens);
      // Resumed before, at and after a slide of the window (seq 8, prompt 5: the first slide is at token 3).
      for (const k of [1, 3, 4, 11]) {
        const window = resumedWindow(PROMPT, full.slice(0, k), seq);
        const rest = await generate(p, id++, Uint32Array.from(window), 20 - k, { temperature, seed: 7, decided: k });
        expect([...full.slice(0, k), ...rest.tokens], `temperature ${temperature}, resumed at ${k}`).toEqual(full);
      }
    }
    expect(rejected(p).every((n) => n === 0)).toBe(true);
  });
  it('rejects bad requests with clear errors before sending anything', async () => {
    const p = await pipeline(model, [1, 1, 1], 'fp32');
    const sent = () => p.stages.reduce((s, st) => s + st.sent(), 0);
    const ok = { temperature: 0, seed: 1 };
    const gen = (id: number, prompt: ArrayLike<number>, n: number, sampling: { temperature: number; seed: number }) => start(p, id, prompt, n, sampling);
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => gen(1, new Uint32Array(0), 4, ok), /prompt is empty/],
      [() => gen(1, Uint32Array.from([1, model.vocab]), 4, ok), new RegExp(`prompt\\[1\\] = ${model.vocab} is not a token id in \\[0, ${model.vocab}\\)`)],
      [() => gen(1, [1, 2.5], 4, ok), /prompt\[1\] = 2.5/],
      [() => gen(1, PROMPT, 0, ok), /maxTokens must be an integer in \[1, 1024\], got 0/],
      [() => gen(1, PROMPT, 1.5, ok), /maxTokens .* got 1.5/],
      [() => gen(1, PROMPT, NaN, ok), /maxTokens .* got NaN/],
      [() => gen(1, PROMPT, MAX_NEW_TOKENS + 1, ok), /maxTokens .* got 1025/],
      [() => gen(1, PROMPT, 4, { temperature: -1, seed: 1 }), /temperature must be a number in \[0, 100\]/],
      [() => gen(1, PROMPT, 4, { temperature: NaN, seed: 1 }), /temperature .* got NaN/],
      [() => gen(1, PROMPT, 4, { temperature: Infinity, seed: 1 }), /temperature .* got Infinity/],
      [() => gen(1, PROMPT, 4, { temperature: 1, seed: -1 }), /seed must be a u32 integer, got -1/],
      [() => gen(1, PROMPT, 4, { temperature: 1, seed: 2 ** 32 }), /seed must be a u32/],
      [() => gen(-1, PROMPT, 4, ok), /request id must be a u32 integer, got -1/],
      [() => gen(0.5, PROMPT, 4, ok), /request id must be a u32/],
      [() => p.stages[1].generation.generate(1, PROMPT, 4, ok, nextHop(p, 1)), /generate runs on stage 0, this is stage 1/],
      [() => p.stages[0].generation.serve(1, prevHop(p, 1), nextHop(p, 0)), /serve runs on the stages after 0/],
      [() => serve(p, 2, -3), /request id must be a u32/],
      [() => serve(p, 2, 1, { maxTokens: 0 }), /maxTokens must be an integer/],
    ];
    for (const [call, message] of cases) await expect(call()).rejects.toThrow(message);
    expect(sent()).toBe(0);
    // The same pipeline still serves a valid request afterwards, with an id used by a rejected call.
    expect((await generate(p, 1, PROMPT, 2)).tokens.length).toBe(2);
    // A request id is single use: reusing it fails up front, and a replayed frame of a finished
    // request is refused (counted), never mixed into anything.
    const before = sent();
    await expect(gen(1, PROMPT, 2, ok)).rejects.toThrow(/request id 1 was already used/);
    expect(sent()).toBe(before);
    p.stages[1].hop('s0').send(encodeFrame({ kind: FrameKind.GenerateToken, tag: 1, microbatch: 0, rows: 1, cols: 1, dtype: 'fp32', tensor: Float32Array.of(3) }));
    await new Promise((r) => setTimeout(r, 10));
    expect(p.stages[0].mailbox.rejected).toBe(1);
  });

  it('a later stage that refuses or hits non-finite logits aborts the request on every stage, fast', async () => {
    const p = await pipeline(model, [1, 1, 1], 'fp32');
    const ok = { temperature: 0, seed: 1 };
    // The last stage serves at most 2 tokens; stage 0 asks for 4.
    const refused = await Promise.allSettled([start(p, 1, PROMPT, 4, ok), serve(p, 1, 1), serve(p, 2, 1, { maxTokens: 2 })]);
    const why = refused.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'resolved'));
    expect(why[0]).toMatch(/request 1: a later stage aborted at token 0: it refused the request/);
    expect(why[1]).toBe(why[0]);
    expect(why[2]).toMatch(/request 1 failed at token 0 on stage 2: request 1 asks for 4 tokens, this stage serves at most 2/);
    // NaN in the head: the last stage refuses to sample, stage 0 learns why.
    const last = p.stages[2].runtime;
    const state = await last.saveState();
    const head = last.layout.params.find((q) => q.name === 'head.w')!;
    state.params[head.offset + 5] = NaN;
    last.loadState(state);
    const t0 = performance.now();
    const nan = await Promise.allSettled([start(p, 2, PROMPT, 4, ok), serve(p, 1, 2), serve(p, 2, 2)]);
    expect(performance.now() - t0).toBeLessThan(5_000); // not the 20 s timeout
    const msg = nan.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'resolved'));
    expect(msg[0]).toMatch(/request 2: a later stage aborted at token 0: the logits are not finite/);
    expect(msg[2]).toMatch(/request 2 failed at token 0 on stage 2: logits\[\d+\] is NaN/);
    // Refusing request 1 at its start, stage 2 closed it before the activation already on its way
    // arrived: that late frame was refused. Nothing else was.
    expect(rejected(p).slice(0, 2)).toEqual([0, 0]);
    expect(rejected(p)[2]).toBeLessThanOrEqual(1);
  });

  it('a stage that keeps no KV cache answers a cached request with NoCache, and serves the same request re-forwarding windows', async () => {
    const p = await pipeline(model, [1, 1, 1], 'fp32', { noCache: [2] });
    const ok = { temperature: 0, seed: 1 };
    const cached = await Promise.allSettled([start(p, 1, PROMPT, 4, ok), serve(p, 1, 1), serve(p, 2, 1)]);
    const errors = cached.map((r) => (r.status === 'rejected' ? (r.reason as GenerationError) : undefined));
    expect(errors.map((e) => e?.reason)).toEqual([AbortReason.NoCache, AbortReason.NoCache, AbortReason.NoCache]);
    expect(errors[0]!.message).toMatch(/request 1: a later stage aborted at token 0: it keeps no KV cache/);
    expect(errors[1]!.message).toBe(errors[0]!.message);
    expect(errors[2]!.message).toMatch(/request 1 failed at token 0 on stage 2: request 1 asks for a KV cache and this stage keeps none/);
    const recomputed = await Promise.all([p.stages[0].generation.generate(2, PROMPT, 4, ok, nextHop(p, 0), { recompute: true }), serve(p, 1, 2), serve(p, 2, 2)]);
    expect(recomputed.map((t) => Array.from(t))).toEqual(Array(3).fill(Array.from(recomputed[0])));
  });

  it('a NaN activation from the previous stage fails the request at once (stage 0 learns why) and is blamed on that stage', async () => {
    const p = await pipeline(model, [1, 1, 1], 'fp32');
    const box = p.stages[1].mailbox;
    const deliver = box.deliver.bind(box);
    box.deliver = (from, bytes) => {
      const c = bytes.slice();
      if (from === 's0' && c[5] === FrameKind.GenerateActivation) new DataView(c.buffer).setFloat32(HEADER_BYTES + 4, Number.NaN, true);
      deliver(from, c);
    };
    const t0 = performance.now();
    // Stage 2 waits for an activation stage 1 will not send (aborts travel back, not forward): its session ends it.
    const end = new AbortController();
    const last = serve(p, 2, 1, { signal: end.signal });
    const out = await Promise.allSettled([start(p, 1, PROMPT, 4, { temperature: 0, seed: 1 }), serve(p, 1, 1)]);
    expect(performance.now() - t0).toBeLessThan(5_000); // not the 20 s timeout
    end.abort(new Error('the request failed'));
    await expect(last).rejects.toThrow(/the request failed/);
    const msg = out.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : 'resolved'));
    expect(msg[1]).toMatch(/request 1 failed at token 0 on stage 1: refused: wire frame \(nonfinite\): value 1 .* decodes to NaN/);
    expect(msg[0]).toMatch(/request 1: a later stage aborted at token 0: it failed/);
    expect(box.hostile).toEqual(new Map([['s0', 1]]));
  });

  it('generation frames nobody serves (sent during training, say) are held for a bounded number of requests', async () => {
    const p = await pipeline(model, [1, 1, 1], 'fp32');
    const hop = p.stages[0].hop('s1');
    for (let id = 100; id < 200; id++)
      hop.send(encodeFrame({ kind: FrameKind.GenerateStart, tag: id, microbatch: 0, rows: 1, cols: START_COLS, dtype: 'fp32', tensor: Float32Array.of(2, 0, 1, 0, 5, 1, 0) }));
    await new Promise((r) => setTimeout(r, 50));
    const box = p.stages[1].mailbox;
    expect(box.held().frames).toBe(GEN_OPEN_REQUESTS);
    expect(box.evicted).toBe(100 - GEN_OPEN_REQUESTS);
    expect(box.hostile.size).toBe(0); // requests that go unserved are the sender's loss, not an attack
    // The newest request's start is still held (the same start stage 0 sends for it: its copy is a
    // duplicate), so it is served; and later requests go through.
    expect((await generate(p, 199, PROMPT, 2)).tokens.length).toBe(2);
    expect((await generate(p, 7, PROMPT, 2)).tokens.length).toBe(2);
  });

  it('generating between and during training steps leaves training bit-for-bit unchanged', async () => {
    const steps = 3;
    const route = Array.from({ length: M }, () => ids(3));
    const train = async (p: Pipeline, step: number) => {
      const r = await Promise.all(p.stages.map((st) => st.runner.runRound(roundWorkOf(step, step, route, st.id), new AbortController().signal)));
      for (const st of p.stages) await st.runner.apply(step);
      for (const st of p.stages) st.mailbox.forgetRoundsBefore(step + 1);
      return r.at(-1)!.lossSum! / M;
    };
    const request = (p: Pipeline, id: number) => generate(p, id, PROMPT, 3, { temperature: 1, seed: id });
    for (const m of [model, subspaceModel]) {
      const dtype: Dtype = m.subspace ? 'int8' : 'fp32';
      const plain = await pipeline(m, [1, 1, 1], dtype);
      const want: number[] = [];
      for (let step = 1; step <= steps; step++) want.push(await train(plain, step));

      // Between steps, on slot 0 (the runtimes have no spare slot). Request id 1 is below the
      // training step: generation frames keep their own inboxes, so they are not "stale".
      const between = await pipeline(m, [1, 1, 1], dtype);
      const got: number[] = [await train(between, 1), await train(between, 2)];
      await request(between, 1);
      got.push(await train(between, 3));
      expect(got).toEqual(want);

      // During a step, on a spare slot: a request runs concurrently with step 2.
      const during = await pipeline(m, [1, 1, 1], dtype, { spareSlot: true });
      const got2: number[] = [await train(during, 1)];
      const [loss2] = await Promise.all([train(during, 2), request(during, 1)]);
      got2.push(loss2, await train(during, 3));
      expect(got2).toEqual(want);

      for (const [s, st] of plain.stages.entries()) {
        const ref = Array.from(await st.runtime.readParams());
        expect(Array.from(await between.stages[s].runtime.readParams())).toEqual(ref);
        expect(Array.from(await during.stages[s].runtime.readParams())).toEqual(ref);
      }
      for (const p of [between, during]) expect(rejected(p).every((n) => n === 0)).toBe(true);
    }
  });
});
