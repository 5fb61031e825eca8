// Spot checks by recomputation (shared/trust/audit.ts) on the real block runtime: a witness replica,
// holding its own diverged weights and a round's gradients of its own, recomputes an audited
// peer's microbatch from that peer's bundle. Honest work agrees; work that is not what the sent
// weights compute, weights no replica could hold, and frames other than the proven ones do not.
import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../kernels/context.js';
import { SWARM_DEFAULTS, runConfig } from '../cli/swarm.js';
import { BlockRuntime } from '../shared/engine/block-runtime.js';
import { AUDIT_TOLERANCE, type AuditBundle, BundleMissing, Bundles, type WitnessDeps, auditShapes, decodeBundle, driftLimit, encodeBundle, judge } from '../shared/trust/audit.js';
import { stageFrames } from '../shared/peer/stage-frames.js';
import type { ServerMessageOf } from '../shared/swarm/protocol.js';
import { runCorpus, runLearningRate, runStageConfigs, trainBatch } from '../shared/run/derive.js';
import type { CharCorpus } from '../shared/engine/data.js';
import { dtypeOf, parseCodec, quantStep } from '../shared/wire/codec.js';
import { FrameKind, decodeFrame, encodeFrame } from '../shared/wire/frame.js';
import { DEFAULT_DATA } from '../node/corpus.js';
import { openNodeGpu } from '../worker/node-gpu.js';
import { TINY_MODEL } from './tiny-swarm.js';
import { sha256Hex } from '../shared/base/hex.js';
import type { RunConfig } from '../shared/run/config.js';

let gpu: Gpu;
let run: RunConfig;
let corpus: CharCorpus;
/** Two replicas of each stage: p (audited) and w (witness), diverged by one local step on different data. */
const rt: Record<'p0' | 'w0' | 'p1' | 'w1', BlockRuntime> = {} as never;

beforeAll(async () => {
  gpu = await openNodeGpu();
  run = await runConfig({ ...SWARM_DEFAULTS, ...TINY_MODEL, layers: 2, stages: 2, codec: 'subspace:k=8:int8', out: '/tmp' });
  corpus = await runCorpus(run, new Uint8Array(await readFile(DEFAULT_DATA)));
  const cfgs = runStageConfigs(run);
  for (const [name, s] of [
    ['p0', 0],
    ['w0', 0],
    ['p1', 1],
    ['w1', 1],
  ] as const)
    rt[name] = await BlockRuntime.create(gpu, cfgs[s], { seed: run.seed, optimizer: run.optimizer, slots: 1 });
  // One local step each on different microbatches: replicas between averagings.
  await step(rt.p0, rt.p1, [0, 1]);
  await step(rt.w0, rt.w1, [2, 3]);
  // The witnesses also hold a round's gradients of their own, waiting for its commit.
  await pass(rt.w0, rt.w1, 5, 0);
}, 300_000);

async function pass(s0: BlockRuntime, s1: BlockRuntime, step: number, mb: number) {
  const d = trainBatch(run, corpus, step, mb);
  const y = (await s0.forward(d, 0)).x!;
  await s1.forward({ ...d, x: y }, 0);
  const g = (await s1.backward(undefined, 0))!;
  await s0.backward(g, 0);
  return { y, g };
}

async function step(s0: BlockRuntime, s1: BlockRuntime, mbs: number[]) {
  for (const mb of mbs) await pass(s0, s1, 1, mb);
  for (const r of [s0, s1]) r.step(runLearningRate(run, 1));
  await gpu.finish();
}

const dtype = () => dtypeOf(run.codec);
const frame = (kind: FrameKind, tensor: Float32Array) =>
  encodeFrame({ kind, tag: 9, microbatch: 0, rows: rt.p0.N, cols: tensor.length / rt.p0.N, dtype: dtype(), tensor }, undefined, { entropy: true, step: quantStep(run.codec) });

function deps(w: BlockRuntime, stage: number): WitnessDeps {
  const spec = { cfg: runStageConfigs(run)[stage], dtype: dtype(), step: quantStep(run.codec), params: w.layout.total, microbatches: run.microbatches, evalBatches: 0 };
  const shapes = auditShapes(stageFrames(spec).shapes);
  return { runtime: w, shapes, batch: (s, mb) => trainBatch(run, corpus, s, mb), anchor: () => undefined, lr: run.optimizer.lr };
}

/** Audited peer p of stage `stage` computes microbatch 0 of step 2 honestly; its bundle and what its neighbours' seals prove. */
async function honest(stage: 0 | 1): Promise<{ v: ServerMessageOf<'verify'>; b: AuditBundle }> {
  const d = trainBatch(run, corpus, 2, 0);
  const p = stage === 0 ? rt.p0 : rt.p1;
  const params = await p.readParams();
  let frames: AuditBundle['frames'];
  if (stage === 0) {
    const y = (await p.forward(d, 0)).x!;
    const gIn = frame(
      FrameKind.Gradient,
      Float32Array.from(y, (_, i) => Math.sin(i) * 1e-3),
    );
    // p works on what it received: the gradient as decoded.
    await p.backward(decodeFrame(gIn).tensor, 0);
    p.discardGradients();
    frames = { yOut: frame(FrameKind.Activation, y), gIn };
  } else {
    const xIn = frame(FrameKind.Activation, (await rt.w0.recompute(await rt.w0.readParams(), d)).x!);
    await p.forward({ ...d, x: decodeFrame(xIn).tensor }, 0);
    const dx = (await p.backward(undefined, 0))!;
    p.discardGradients();
    frames = { xIn, dxOut: frame(FrameKind.Gradient, dx) };
  }
  const hashes = Object.fromEntries(await Promise.all(Object.entries(frames).map(async ([k, f]) => [k, await sha256Hex(f!)])));
  return { v: { type: 'verify', round: 9, step: 2, microbatch: 0, peer: 'p', frames: hashes }, b: { round: 9, microbatch: 0, params, frames } };
}

describe('spot checks by recomputation', () => {
  it('a bundle round-trips, and anything malformed is refused with the reason', () => {
    const b: AuditBundle = { round: 3, microbatch: 1, params: Float32Array.of(1, 2, 3), frames: { xIn: Uint8Array.of(1, 2), dxOut: Uint8Array.of(3) } };
    const back = decodeBundle(encodeBundle(b), 3);
    expect(back).toEqual({ ...b, frames: { xIn: Uint8Array.of(1, 2), dxOut: Uint8Array.of(3) } });
    expect(() => decodeBundle(encodeBundle(b), 4)).toThrow(/holds 3 parameters, this stage has 4/);
    expect(() => decodeBundle(encodeBundle(b).subarray(0, 40), 3)).toThrow(/header says/);
    expect(() => decodeBundle(Uint8Array.of(1, 2, 3), 3)).toThrow(/shorter than/);
  });

  it('a witness takes the bundle it waits for from that peer, and past its wait says none came (BundleMissing)', async () => {
    const bundles = new Bundles();
    const bytes = encodeBundle({ round: 3, microbatch: 1, params: new Float32Array(4), frames: {} });
    const signal = new AbortController().signal;
    // Delivered before it is asked for, by the audited peer; one from another peer does not count.
    bundles.deliver('p', bytes);
    bundles.deliver('q', encodeBundle({ round: 3, microbatch: 2, params: new Float32Array(4), frames: {} }));
    expect(await bundles.take('p', 3, 1, 50, signal)).toBe(bytes);
    await expect(bundles.take('q', 3, 1, 50, signal)).rejects.toThrow(BundleMissing);
    await expect(bundles.take('p', 3, 1, 50, signal)).rejects.toThrow('no bundle from p within 50 ms');
  });

  it('recomputing with another replica’s weights leaves the witness’s own weights and pending gradients untouched', async () => {
    const [params, grads] = await Promise.all([rt.w1.readParams(), rt.w1.readGrads()]);
    expect(grads.some((g) => g !== 0)).toBe(true);
    const d = trainBatch(run, corpus, 2, 1);
    const x = (await rt.w0.recompute(await rt.p0.readParams(), d)).x!;
    const got = await rt.w1.recompute(await rt.p1.readParams(), { ...d, x });
    expect([...(await rt.w1.readParams())]).toEqual([...params]);
    expect([...(await rt.w1.readGrads())]).toEqual([...grads]);
    // The same numbers p itself computes.
    const mine = await rt.p1.forward({ ...d, x }, 0);
    const dx = (await rt.p1.backward(undefined, 0))!;
    rt.p1.discardGradients();
    expect(got.loss).toBeCloseTo(mine.loss!, 6);
    expect([...got.dx!]).toEqual([...dx]);
  });

  it('honest work agrees at both stages, though the witness’s own weights differ by a local step (int8, and a coarse dithered e3 codec)', async () => {
    const int8 = run;
    try {
      for (const codec of ['subspace:k=8:int8', 'subspace:k=8:e3']) {
        run = { ...int8, codec: parseCodec(codec) };
        for (const stage of [0, 1] as const) {
          const { v, b } = await honest(stage);
          expect(await judge(deps(stage === 0 ? rt.w0 : rt.w1, stage), v, b), `${codec} stage ${stage}`).toEqual({ ok: true, reason: 'agrees' });
        }
      }
    } finally {
      run = int8;
    }
    expect(AUDIT_TOLERANCE).toEqual({ cos: 0.99, rel: 1e-2 });
  });

  it('finds work that is not what the weights compute, weights no replica holds, and frames other than the proven ones', async () => {
    const { v, b } = await honest(1);
    const w = deps(rt.w1, 1);
    // The input gradient sent was scaled ×1.5 (inside any norm band), and the seals prove that frame.
    const d = trainBatch(run, corpus, 2, 0);
    const x = (await rt.w0.recompute(await rt.w0.readParams(), d)).x!;
    await rt.p1.forward({ ...d, x }, 0);
    const dx = (await rt.p1.backward(undefined, 0))!;
    rt.p1.discardGradients();
    const lying = frame(
      FrameKind.Gradient,
      dx.map((g) => g * 1.5),
    );
    const scaled = await judge(w, { ...v, frames: { ...v.frames, dxOut: await sha256Hex(lying) } }, { ...b, frames: { ...b.frames, dxOut: lying } });
    expect(scaled.ok).toBe(false);
    expect(scaled.reason).toMatch(/^its input gradient is not what its weights compute \(cosine [\d.]+, relative error [\d.e+-]+\)$/);
    // Weights far from any replica's (the writers zeroed, say) are refused before recomputing.
    const zeroed = b.params.map((p, i) => (i % 2 ? 0 : p));
    const limit = driftLimit(-2, 2, run.optimizer.lr).toFixed(3);
    expect((await judge(w, v, { ...b, params: zeroed })).reason).toMatch(new RegExp(`^its weights moved [\\d.]+ from the stage's weights here \\(limit ${limit} at step 2\\)$`));
    expect((await judge(w, v, { ...b, params: b.params.map((p, i) => (i === 7 ? Number.NaN : p)) })).reason).toBe('its weight 7 is NaN');
    // A frame other than the one the neighbours' seals prove, or none.
    expect((await judge(w, { ...v, frames: { ...v.frames, xIn: '0'.repeat(64) } }, b)).reason).toBe("its xIn frame is not the one its neighbours' seals prove");
    expect((await judge(w, v, { ...b, frames: { xIn: b.frames.xIn } })).reason).toBe('the bundle lacks its dxOut frame');
    expect((await judge(w, v, { ...b, microbatch: 1 })).reason).toBe('the bundle is of round 9 microbatch 1');
  });
});
