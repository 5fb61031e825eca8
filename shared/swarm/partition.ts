// Splitting a model into pipeline stages: which layers, and which ends, each stage holds.
import type { BlockConfig } from '../engine/model.js';

export interface ModelSpec {
  vocab: number;
  dModel: number;
  nHead: number;
  nLayer: number;
  seq: number;
  batch: number;
  subspace?: { k: number; seed: number };
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
