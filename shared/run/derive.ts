// What every party derives from a run's config alone, so nobody has to send it: each stage's block
// config (the worker, the settlement and the launcher all need it), the data order, the learning
// rate and the check that a peer trains on the run's own text.
import type { BlockConfig } from '../engine/model.js';
import { type CharCorpus, charCorpus, sampleBatch } from '../engine/data.js';
import { learningRate } from '../engine/optimizer.js';
import { sha256Hex } from '../base/hex.js';
import type { RunConfig } from './config.js';

export interface ModelSpec {
  vocab: number;
  dModel: number;
  nHead: number;
  nLayer: number;
  seq: number;
  batch: number;
  subspace?: { k: number; seed: number };
}

/** Split `layers` over `stages` as evenly as possible; spare layers go to the inner stages first, since the ends also hold embedding/head. */
export function splitLayers(layers: number, stages: number): number[] {
  if (!Number.isInteger(stages) || stages < 1) throw new Error(`stages must be a positive integer, got ${stages}`);
  if (!Number.isInteger(layers) || layers < stages) throw new Error(`${layers} layers cannot fill ${stages} stages with at least one each`);
  const out = new Array<number>(stages).fill(Math.floor(layers / stages));
  const order = [...out.keys()].sort((a, b) => Number(a === 0 || a === stages - 1) - Number(b === 0 || b === stages - 1) || a - b);
  for (let i = 0; i < layers % stages; i++) out[order[i]]++;
  return out;
}

/** The block config of every stage: stage 0 adds the embedding, the last stage the head. */
export function stageConfigs(m: ModelSpec, layersPerStage: number[]): BlockConfig[] {
  const total = layersPerStage.reduce((a, b) => a + b, 0);
  if (total !== m.nLayer) throw new Error(`layers per stage ${layersPerStage.join('+')} do not add up to ${m.nLayer}`);
  if (layersPerStage.some((l) => !Number.isInteger(l) || l < 1)) throw new Error('every stage needs at least one layer');
  let first = 0;
  return layersPerStage.map((n, s) => {
    const cfg: BlockConfig = {
      vocab: m.vocab,
      dModel: m.dModel,
      nHead: m.nHead,
      nLayer: n,
      firstLayer: first,
      modelLayers: m.nLayer,
      seq: m.seq,
      batch: m.batch,
      hasEmbedding: s === 0,
      hasHead: s === layersPerStage.length - 1,
      subspace: m.subspace,
    };
    first += n;
    return cfg;
  });
}

/** The run's model as the stages hold it: with a subspace codec, residual writers live in span(U). */
export function runModel(run: RunConfig): ModelSpec {
  return { ...run.model, subspace: run.codec.kind === 'subspace' ? { k: run.codec.k, seed: run.seed } : undefined };
}

/** The block config of every stage of the run. */
export function runStageConfigs(run: RunConfig): BlockConfig[] {
  return stageConfigs(runModel(run), run.layersPerStage);
}

/**
 * Microbatch `i` of global step `step` (from 1). A step is a fixed set of `run.microbatches`
 * microbatches whoever computes them, so the data order does not depend on who is in the swarm:
 * peers joining, leaving or serving several lanes change who computes a microbatch, never which.
 */
export function trainBatch(run: RunConfig, corpus: CharCorpus, step: number, i: number) {
  if (!(Number.isInteger(i) && i >= 0 && i < run.microbatches)) throw new RangeError(`microbatch ${i} is not in [0, ${run.microbatches})`);
  return sampleBatch(corpus.train, run.model.batch, run.model.seq, run.seed, step * run.microbatches + i);
}

/** A fixed validation set: the same windows at every evaluation. */
export function valBatch(run: RunConfig, corpus: CharCorpus, i: number) {
  return sampleBatch(corpus.val, run.model.batch, run.model.seq, run.seed + 1, i);
}

/** The run's learning rate at `step`: warm-up, then cosine decay over the schedule horizon. */
export function runLearningRate(run: RunConfig, step: number): number {
  return learningRate(step, { lr: run.optimizer.lr, warmup: run.optimizer.warmup, total: run.scheduleSteps ?? run.steps });
}

/** The text of `bytes`, its hash and length in characters; throws on bytes that are not UTF-8. */
export async function describeText(bytes: Uint8Array, name: string): Promise<{ text: string; sha256: string; chars: number }> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`${name} is not valid UTF-8 text`);
  }
  return { text, sha256: await sha256Hex(bytes), chars: Array.from(text).length };
}

/** The run's corpus from the bytes a host loaded, refusing text that differs from the run's. */
export async function runCorpus(run: RunConfig, bytes: Uint8Array, name = run.data.name): Promise<CharCorpus> {
  const t = await describeText(bytes, name);
  if (t.sha256 !== run.data.sha256) throw new Error(`${name} (sha256 ${t.sha256.slice(0, 12)}…) is not the run's data ${run.data.name} (sha256 ${run.data.sha256.slice(0, 12)}…)`);
  const corpus = charCorpus(t.text);
  if (corpus.vocab.length !== run.model.vocab) throw new Error(`${name} has ${corpus.vocab.length} distinct characters, the run's model expects ${run.model.vocab}`);
  return corpus;
}
