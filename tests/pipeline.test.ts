// Pipeline stages on one GPU, linked in memory: the split model must train exactly like the
// whole model in one block (fp32 boundaries), and compressed boundaries must still train.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../kernels/context.js';
import { BlockRuntime } from '../shared/engine/block-runtime.js';
import type { Dtype } from '../shared/wire/codec.js';
import { charCorpus, sampleBatch } from '../shared/engine/data.js';
import { type BlockConfig, initParams } from '../shared/engine/model.js';
import { type Link, memoryLinkPair } from '../shared/wire/link.js';
import { type ModelSpec, stageConfigs } from '../shared/swarm/partition.js';
import { ReplicaAverager } from '../shared/peer/replicas.js';
import { PipelineStage } from '../shared/peer/stage.js';
import { openNodeGpu } from '../worker/node-gpu.js';

const TEXT = 'To be, or not to be, that is the question:\nWhether tis nobler in the mind to suffer\nThe slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\nAnd by opposing end them.\n';
const corpus = charCorpus(TEXT.repeat(4), 0.25);
const M = 3;
const batch = (step: number, mb: number, split: 'train' | 'val') => sampleBatch(split === 'train' ? corpus.train : corpus.val, 2, 8, 5, step * 100 + mb);
// Clipping is per stage in the pipeline (each stage clips its own gradient norm), so the exactness
// check turns it off; everything else must match the whole model.
const OPT = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1e9 };

let gpu: Gpu;
beforeAll(async () => {
  gpu = await openNodeGpu();
});
afterAll(() => gpu?.device.destroy());

async function pipeline(model: ModelSpec, layers: number[], dtype: Dtype, steps: number) {
  const cfgs = stageConfigs(model, layers);
  const links: [Link | undefined, Link | undefined][] = cfgs.map(() => [undefined, undefined]);
  for (let s = 0; s + 1 < cfgs.length; s++) {
    const [a, b] = memoryLinkPair(4096); // small chunks exercise reassembly
    links[s][1] = a;
    links[s + 1][0] = b;
  }
  const stages = await Promise.all(
    cfgs.map(async (cfg, s) => {
      const runtime = await BlockRuntime.create(gpu, cfg, { init: initParams(cfg, 3), optimizer: OPT, slots: cfgs.length - s });
      return new PipelineStage({ runtime, stage: s, stages: cfgs.length, microbatches: M, batch, dtype, prev: links[s][0], next: links[s][1], lr: () => OPT.lr, now: () => performance.now() });
    }),
  );
  const losses: number[] = [];
  for (let step = 1; step <= steps; step++) {
    const results = await Promise.all(stages.map((st) => st.trainStep(step)));
    losses.push(results.at(-1)!.loss!);
  }
  const val = (await Promise.all(stages.map((st) => st.evaluate(steps, 2)))).at(-1)!;
  return { losses, val, stages };
}

const model: ModelSpec = { vocab: corpus.vocab.length, dModel: 16, nHead: 2, nLayer: 3, seq: 8, batch: 2 };

describe('pipeline over in-memory links', () => {
  it('3 stages with fp32 boundaries train exactly like the whole model in one block', async () => {
    const { losses, stages } = await pipeline(model, [1, 1, 1], 'fp32', 4);
    const whole: BlockConfig = { ...model, hasEmbedding: true, hasHead: true };
    const rt = await BlockRuntime.create(gpu, whole, { init: initParams(whole, 3), optimizer: OPT });
    const want: number[] = [];
    for (let step = 1; step <= 4; step++) {
      let sum = 0;
      for (let mb = 0; mb < M; mb++) {
        sum += (await rt.forward(batch(step, mb, 'train'))).loss!;
        await rt.backward();
      }
      rt.step();
      want.push(sum / M);
    }
    for (let i = 0; i < 4; i++) expect(Math.abs(losses[i] - want[i])).toBeLessThan(1e-5 * want[i]);
    // Same parameters, stage by stage, by name.
    const all = await rt.readParams();
    for (const st of stages) {
      const got = await st.runtime.readParams();
      const lay = st.runtime.layout;
      for (const p of lay.params) {
        const q = rt.layout.params.find((x) => x.name === p.name)!;
        for (let i = 0; i < p.size; i += 7) expect(Math.abs(got[p.offset + i] - all[q.offset + i])).toBeLessThan(1e-5);
      }
    }
    expect(stages.every((st) => st.rejected === 0)).toBe(true);
  });

  it('subspace boundaries (k=4 of 16, int8 coefficients) train, and move 4 bytes + scale per token', async () => {
    const sub = { ...model, subspace: { k: 4, seed: 2 } };
    const { losses, val, stages } = await pipeline(sub, [1, 1, 1], 'int8', 6);
    expect(losses.at(-1)!).toBeLessThan(losses[0] - 0.2);
    expect(Number.isFinite(val)).toBe(true);
    const w = stages[0].wire;
    // per token: 4 int8 values; per row (token) a 4-byte scale; plus a 32-byte header per frame
    expect(w.fwdSent).toBe(M * 6 * (32 + 16 * (4 + 4)));
  });

  it('two lanes of two stages average each stage\'s weights every 2 steps and end bit-identical', async () => {
    const cfgs = stageConfigs(model, [2, 1]);
    const lanes = [0, 1].map(() => {
      const [a, b] = memoryLinkPair();
      return [a, b];
    });
    const replicaLinks = cfgs.map(() => memoryLinkPair());
    const stages: PipelineStage[][] = [];
    const averagers: ReplicaAverager[][] = [];
    for (const lane of [0, 1]) {
      stages.push([]);
      averagers.push([]);
      for (const [s, cfg] of cfgs.entries()) {
        const runtime = await BlockRuntime.create(gpu, cfg, { init: initParams(cfg, 3), optimizer: OPT, slots: 2 });
        const laneBatch = (step: number, mb: number, split: 'train' | 'val') => batch(step, lane * M + mb, split);
        const [prev, next] = s === 0 ? [undefined, lanes[lane][0]] : [lanes[lane][1], undefined];
        stages[lane].push(new PipelineStage({ runtime, stage: s, stages: 2, microbatches: M, batch: laneBatch, dtype: 'fp32', prev, next, lr: () => OPT.lr, now: () => performance.now() }));
        averagers[lane].push(new ReplicaAverager(runtime, lane, [{ replica: 1 - lane, link: replicaLinks[s][lane] }]));
      }
    }
    for (let step = 1; step <= 4; step++) {
      await Promise.all(stages.flat().map((st) => st.trainStep(step)));
      if (step % 2 === 0) await Promise.all(averagers.flat().map((a) => a.average(step)));
      if (step === 1) {
        // Different data per lane: before any averaging the replicas have drifted apart.
        const [a, b] = await Promise.all([stages[0][0].runtime.readParams(), stages[1][0].runtime.readParams()]);
        expect(a.some((v, i) => v !== b[i])).toBe(true);
      }
    }
    for (const s of [0, 1]) {
      const [a, b] = await Promise.all([stages[0][s].runtime.readParams(), stages[1][s].runtime.readParams()]);
      expect(Array.from(a)).toEqual(Array.from(b));
    }
  });
});
