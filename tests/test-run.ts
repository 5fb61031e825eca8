// A small run configuration for tests that need one without training it (the run's state machine,
// the settlement): two stages of two layers, ten steps, averaging every two.
import { type RunConfig, RunConfigSchema } from '../shared/run/config.js';

export function testRun(over: Partial<RunConfig> = {}): RunConfig {
  return RunConfigSchema.parse({
    runId: 'rc-test',
    model: { vocab: 65, dModel: 32, nHead: 4, nLayer: 4, seq: 16, batch: 4 },
    stages: 2,
    layersPerStage: [2, 2],
    microbatches: 4,
    minPerStage: 1,
    steps: 10,
    seed: 1,
    data: { name: 'tiny', sha256: 'ab'.repeat(32), chars: 1000 },
    codec: { kind: 'fp32' },
    optimizer: { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, clip: 1, warmup: 0 },
    averageEvery: 2,
    evalEvery: 0,
    evalBatches: 0,
    ...over,
  });
}
