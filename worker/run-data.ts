// The data side of a run, shared by workers, the launcher and the centralized baseline: load the
// corpus named by the run, check it is the same text, and derive the shared data order.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type CharCorpus, charCorpus, sampleBatch } from '../shared/engine/data.js';
import { learningRate } from '../shared/engine/optimizer.js';
import type { RunConfig } from '../shared/swarm/protocol.js';

export const DEFAULT_DATA = new URL('../data/tinyshakespeare.txt', import.meta.url).pathname;

export function loadText(path: string): { text: string; sha256: string; chars: number } {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read the training text ${path}: ${(e as Error).message}`);
  }
  const text = raw.toString('utf8');
  if (text.includes('\uFFFD')) throw new Error(`${path} is not valid UTF-8 text`);
  return { text, sha256: createHash('sha256').update(raw).digest('hex'), chars: Array.from(text).length };
}

/** The run's corpus, refusing a file that differs from the one the run was made with. */
export function runCorpus(run: RunConfig, path: string): CharCorpus {
  const t = loadText(path);
  if (t.sha256 !== run.data.sha256) throw new Error(`${path} (sha256 ${t.sha256.slice(0, 12)}…) is not the run's data ${run.data.name} (sha256 ${run.data.sha256.slice(0, 12)}…)`);
  const corpus = charCorpus(t.text);
  if (corpus.vocab.length !== run.model.vocab) throw new Error(`${path} has ${corpus.vocab.length} distinct characters, the run's model expects ${run.model.vocab}`);
  return corpus;
}

/**
 * Microbatch `mb` of lane `lane` at `step` (from 1): every step takes replicas × microbatches
 * fresh windows, lane-major, so the centralized baseline sees the same tokens in the same order.
 */
export function trainBatch(run: RunConfig, corpus: CharCorpus, replicas: number, lane: number, step: number, mb: number) {
  const index = (step * replicas + lane) * run.microbatches + mb;
  return sampleBatch(corpus.train, run.model.batch, run.model.seq, run.seed, index);
}

/** The run's learning rate at `step`: warm-up, then cosine decay over the schedule horizon. */
export function runLearningRate(run: RunConfig, step: number): number {
  return learningRate(step, { lr: run.optimizer.lr, warmup: run.optimizer.warmup, total: run.scheduleSteps ?? run.steps });
}

/** A fixed validation set: the same windows at every evaluation. */
export function valBatch(run: RunConfig, corpus: CharCorpus, i: number) {
  return sampleBatch(corpus.val, run.model.batch, run.model.seq, run.seed + 1, i);
}
