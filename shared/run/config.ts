// A run's configuration: the model, its split into stages, the data, the codec, the optimizer and
// the schedule. Validated wherever it enters (the coordinator's flags, the assign message, a saved run).
import { z } from 'zod';
import { CodecSpecSchema } from '../wire/codec-spec.js';

const posInt = z.int().positive();
const nonNegInt = z.int().nonnegative();
const nonNeg = z.number().nonnegative();
const id = z.string().min(1).max(64);

export const ModelSpecSchema = z.strictObject({
  vocab: posInt,
  dModel: posInt,
  nHead: posInt,
  nLayer: posInt,
  seq: posInt,
  batch: posInt,
});

export const OptimizerSpecSchema = z.strictObject({
  lr: z.number().positive(),
  beta1: z.number().min(0).lt(1),
  beta2: z.number().min(0).lt(1),
  eps: z.number().positive(),
  weightDecay: nonNeg,
  /** Global-norm clip; 0 disables clipping. */
  clip: nonNeg,
  /** Linear warm-up steps. */
  warmup: nonNegInt,
});

export const RunConfigSchema = z
  .strictObject({
    runId: id,
    model: ModelSpecSchema,
    stages: posInt,
    /** Transformer layers per stage; stage 0 also holds the embedding, the last stage the head. */
    layersPerStage: z.array(posInt).min(1),
    /**
     * Microbatches per global step, whoever computes them: the swarm spreads them over the peers it
     * has, so membership changes how fast a step goes, never what it is.
     */
    microbatches: posInt,
    /** Peers every stage needs before training starts (more may join at any time). */
    minPerStage: posInt,
    steps: posInt,
    /**
     * Horizon of the learning-rate schedule (default `steps`). A longer run keeps the final rate
     * after it, so its first scheduleSteps steps are exactly a run of that length.
     */
    scheduleSteps: posInt.optional(),
    seed: z.int(),
    data: z.strictObject({
      name: z.string().min(1).max(256),
      sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
      chars: posInt,
    }),
    codec: CodecSpecSchema,
    optimizer: OptimizerSpecSchema,
    /** H: steps between replica averaging. */
    averageEvery: posInt,
    /** Steps between validation evaluations; 0 disables evaluation. */
    evalEvery: nonNegInt,
    evalBatches: nonNegInt,
    /** After training, peers stay up and serve inference requests until stopped. */
    serve: z.boolean().optional(),
  })
  .superRefine((r, ctx) => {
    const m = r.model;
    if (m.dModel % m.nHead !== 0) {
      ctx.addIssue({ code: 'custom', path: ['model', 'dModel'], message: `dModel ${m.dModel} is not divisible by nHead ${m.nHead}` });
    }
    if (r.layersPerStage.length !== r.stages) {
      ctx.addIssue({
        code: 'custom',
        path: ['layersPerStage'],
        message: `has ${r.layersPerStage.length} entries but stages is ${r.stages}`,
      });
    }
    const sum = r.layersPerStage.reduce((a, b) => a + b, 0);
    if (sum !== m.nLayer) {
      ctx.addIssue({ code: 'custom', path: ['layersPerStage'], message: `sums to ${sum} but model.nLayer is ${m.nLayer}` });
    }
    if (r.codec.kind === 'subspace' && r.codec.k > m.dModel) {
      ctx.addIssue({ code: 'custom', path: ['codec', 'k'], message: `subspace rank ${r.codec.k} exceeds dModel ${m.dModel}` });
    }
  });
export type RunConfig = z.infer<typeof RunConfigSchema>;
