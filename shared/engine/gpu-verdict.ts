// Can a measured adapter take part in a run, and with how many layers? Only facts reject it (no
// adapter, a tensor above the binding limit, no room for one layer); a slow measurement only warns.
// WebGPU never tells how much VRAM there is, so the memory budget is bounded from what is known.
import { DEFAULT_BINDING_SIZE, type GpuReport } from './gpu-detect.js';
import { type BenchReport, MIN_GFLOPS } from './gpu-bench.js';
import { bytes, num } from '../base/sizes.js';
import { type BlockConfig, activationFloatsPerLayer, layout } from './model.js';

export interface RunSpec {
  name: string;
  config: BlockConfig;
  layersInModel: number;
}

export interface Verdict {
  ok: boolean;
  layers: number;
  reasons: string[];
  text: string;
  /** The measured speed is below MIN_GFLOPS. Never a rejection by itself: see speedWarning. */
  slow: boolean;
  /** Those reasons a user should see even when the peer is accepted. */
  warnings: string[];
}

/** Rejects only on facts: no adapter, a tensor above the binding limit, no room for one layer. */
export function verdict(report: GpuReport, run: RunSpec): Verdict {
  const reasons: string[] = [];
  const warnings: string[] = [];
  const flags = () => ({ slow: warnings.length > 0, warnings });
  const reject = (why: string): Verdict => ({ ok: false, layers: 0, reasons: [...reasons, why], text: `rejected because ${why}`, ...flags() });
  if (!report.available) {
    reasons.push(report.message);
    return reject('no WebGPU adapter');
  }

  const cfg = run.config;
  const oneLayer: BlockConfig = { ...cfg, nLayer: 1, hasEmbedding: false, hasHead: false };
  const layerParams = layout(oneLayer).count;
  const layerActs = activationFloatsPerLayer(cfg);
  // Every parameter carries a gradient and two Adam moments: 4 f32 each.
  const perLayer = layerParams * 16 + layerActs * 4;
  const ends = cfg.hasEmbedding || cfg.hasHead ? layout({ ...cfg, nLayer: 0 }).count : 0;
  const tokens = cfg.batch * cfg.seq;
  const endActs = (cfg.hasEmbedding ? tokens * cfg.dModel : 0) + (cfg.hasHead ? 2 * tokens * cfg.vocab : 0);
  const fixed = ends * 16 + endActs * 4;
  reasons.push(`one layer needs ${bytes(perLayer)} (${layerParams} params × 16 B for param, grad, Adam m, v + ${layerActs} activation floats × 4 B)`);
  if (fixed) reasons.push(`embedding/head need ${bytes(fixed)}`);

  const tensorFloats = [
    ...layout({ ...cfg, nLayer: 1 }).params.map((p) => p.size),
    tokens * 4 * cfg.dModel, // MLP hidden
    cfg.batch * cfg.nHead * cfg.seq * cfg.seq, // attention probabilities
    cfg.hasHead ? tokens * cfg.vocab : 0, // logits
  ];
  const largest = Math.max(...tensorFloats) * 4;
  const binding = report.limits.maxStorageBufferBindingSize ?? DEFAULT_BINDING_SIZE;
  if (largest > binding) {
    return reject(`the adapter's maxStorageBufferBindingSize (${bytes(binding)}) is below the largest tensor (${bytes(largest)})`);
  }

  if (report.bench) {
    const warning = speedWarning(report.bench);
    if (warning) warnings.push(warning);
    reasons.push(warning ?? `measured ${num(report.bench.matmulGflops)} GFLOP/s (floor ${MIN_GFLOPS})`);
  } else {
    reasons.push('not benchmarked: compute speed unchecked');
  }

  const budget = report.budget.bytes;
  reasons.push(`memory budget ${report.budget.basis}`);
  let layers = Math.min(run.layersInModel, Math.floor((budget - fixed) / perLayer));
  // The block's parameters are one flat buffer, which cannot outgrow maxBufferSize.
  const maxBuffer = report.limits.maxBufferSize;
  if (maxBuffer) {
    const byBuffer = Math.floor((maxBuffer - ends * 4) / (layerParams * 4));
    if (byBuffer < layers) reasons.push(`maxBufferSize ${bytes(maxBuffer)} holds the parameters of ${byBuffer} layers`);
    layers = Math.min(layers, byBuffer);
  }
  if (layers < 1) return reject(`one layer needs ${bytes(perLayer + fixed)} but the memory budget is ${bytes(budget)}`);
  return { ok: true, layers, reasons, text: `can hold ${layers} of ${run.layersInModel} layers of run ${run.name}`, ...flags() };
}

/** A warning, never a rejection: a start-up measurement on a shared machine says little about the hardware. */
export function speedWarning(bench: Pick<BenchReport, 'matmulGflops' | 'matmulAttempts'>): string | undefined {
  const g = bench.matmulGflops;
  if (g >= MIN_GFLOPS) return undefined;
  const n = bench.matmulAttempts.length;
  const how = n > 1 ? `best of ${n}` : 'a single measurement';
  return `measured ${num(g)} GFLOP/s (${how}), below the ${MIN_GFLOPS} GFLOP/s floor: probably a busy machine; the swarm measures real throughput while training`;
}

/** The default run: a char-level Shakespeare GPT, one layer per block, four in the model. */
export const DEFAULT_RUN: RunSpec = {
  name: 'shakespeare-char',
  config: { vocab: 65, dModel: 128, nHead: 4, nLayer: 1, seq: 64, batch: 16, hasEmbedding: false, hasHead: false },
  layersInModel: 4,
};
