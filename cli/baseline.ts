// The centralized baseline: the same model, init, data order, schedule and kernels as a swarm
// run, trained in one process as one dense block (no pipeline, no compression). Every step
// accumulates all the step's microbatches, which is the data the swarm consumed.
import { BlockRuntime } from '../shared/engine/block-runtime.js';
import type { CharCorpus } from '../shared/engine/data.js';
import { openNodeGpu } from '../worker/node-gpu.js';
import { runLearningRate, trainBatch, valBatch } from '../shared/run/derive.js';
import type { RunConfig } from '../shared/run/config.js';

export interface Curves {
  train: [number, number][];
  val: [number, number][];
  tokensPerSec: number;
}

export async function trainBaseline(run: RunConfig, corpus: CharCorpus, onStep?: (step: number, loss: number) => void): Promise<Curves> {
  const gpu = await openNodeGpu();
  const cfg = { ...run.model, hasEmbedding: true, hasHead: true, modelLayers: run.model.nLayer };
  const rt = await BlockRuntime.create(gpu, cfg, { seed: run.seed, optimizer: run.optimizer, autotune: true });
  const perStep = run.microbatches;
  const out: Curves = { train: [], val: [], tokensPerSec: 0 };
  const t0 = performance.now();
  for (let step = 1; step <= run.steps; step++) {
    let sum = 0;
    for (let mb = 0; mb < run.microbatches; mb++) {
      sum += (await rt.forward(trainBatch(run, corpus, step, mb))).loss!;
      await rt.backward();
    }
    rt.step(runLearningRate(run, step));
    out.train.push([step, sum / perStep]);
    onStep?.(step, sum / perStep);
    if (run.evalEvery > 0 && run.evalBatches > 0 && (step % run.evalEvery === 0 || step === run.steps)) {
      let v = 0;
      for (let i = 0; i < run.evalBatches; i++) v += (await rt.forward(valBatch(run, corpus, i))).loss!;
      out.val.push([step, v / run.evalBatches]);
    }
  }
  out.tokensPerSec = (run.steps * perStep * run.model.batch * run.model.seq) / ((performance.now() - t0) / 1000);
  rt.destroy();
  gpu.device.destroy();
  return out;
}
