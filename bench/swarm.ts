// `npm run bench:swarm [-- --data FILE|code --steps N --workers W --stages S --d-model D --codecs a,b,c --name NAME --quick]`:
// the centralized dense baseline and local swarms with each boundary codec, same model, init,
// data order, steps and tokens. Writes bench/results/swarm.json, loss curves and the frontier of
// final validation loss against wire bytes (SVG) beside it.
// `--extend` runs the codecs for 2N steps with the learning-rate schedule of N (so the first N
// steps are the N-step run) to find how many steps they need to reach the baseline's final loss
// (`--extend-to M`: M steps, e.g. 1.25N to check a budget);
// `--merge` keeps the other runs and the baseline of an existing swarm.json with the same config.
// `--data code` trains on this project's own source code (bench/code-corpus.ts), a corpus of another
// kind; `--name NAME` writes swarm-NAME.json and its plots instead, beside the tinyshakespeare ones.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { codecName, parseCodec } from '../shared/wire/codec.js';
import { charCorpus } from '../shared/engine/data.js';
import { lossPlotSvg } from '../cli/plot.js';
import { trainBaseline } from '../cli/baseline.js';
import { loadText } from '../node/corpus.js';
import { stringOptions } from '../node/flags.js';
import { SWARM_DEFAULTS, type SwarmOptions, type SwarmResult, runConfig, runSwarm } from '../cli/swarm.js';
import { codeCorpus } from './code-corpus.js';

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results');
const SWEEP = [
  'fp32',
  'int8',
  'subspace:k=64:int8',
  'subspace:k=32:int8',
  'subspace:k=16:int8',
  'subspace:k=8:int8',
  'subspace:k=64:int4',
  'subspace:k=32:int4',
  'subspace:k=16:int4',
  'subspace:k=8:int4',
];

const { values } = parseArgs({
  options: {
    ...stringOptions(['data', 'name', 'd-model', 'steps', 'workers', 'stages', 'microbatches', 'batch', 'codecs', 'extend-to']),
    quick: { type: 'boolean', default: false },
    extend: { type: 'boolean', default: false },
    merge: { type: 'boolean', default: false },
    /** Re-draw the plots from bench/results/swarm.json without running anything. */
    'plot-only': { type: 'boolean', default: false },
  },
  strict: true,
});

const opts: SwarmOptions = {
  ...SWARM_DEFAULTS,
  data: values.data === 'code' ? codeCorpus() : (values.data ?? SWARM_DEFAULTS.data),
  dModel: Number(values['d-model'] ?? SWARM_DEFAULTS.dModel),
  steps: Number(values.steps ?? (values.quick ? 30 : 360)),
  workers: Number(values.workers ?? 2),
  stages: Number(values.stages ?? 2),
  // 4 microbatches of 4 sequences per step: 1024 tokens per step, with a 1F1B bubble of 1/5 on one lane.
  microbatches: Number(values.microbatches ?? 4),
  batch: Number(values.batch ?? 4),
  evalEvery: values.quick ? 10 : 20,
  evalBatches: 8,
  quiet: true,
  // Two workers on this machine: their autotuned kernels are what the earlier results measured.
  quickStart: false,
};
// Every worker in from the first step, so every codec is measured on the same swarm.
opts.minPerStage = opts.workers / opts.stages;
const codecs = (values.codecs?.split(',') ?? (values.quick ? ['fp32', 'subspace:k=16:int8'] : SWEEP)).map((c) => codecName(parseCodec(c)));

const lastVal = (curve: [number, number][]) => curve.at(-1)?.[1] ?? NaN;
const valAt = (curve: [number, number][], step: number) => curve.find(([s]) => s === step)?.[1] ?? NaN;

function summarize(codec: string, r: SwarmResult, baselineVal: number) {
  const spec = parseCodec(codec);
  const d = r.run.model.dModel;
  const byStage = [...r.peers].sort((a, b) => a.stage - b.stage);
  // Every boundary's bytes per token, headers included, averaged over boundaries.
  const perToken = (k: 'fwd' | 'bwd') => {
    const sent = r.peers.reduce((s, p) => s + p.stats[`${k}BytesSent`], 0);
    const tokens = r.peers.reduce((s, p) => s + p.stats[`${k}Tokens`], 0);
    return sent / tokens;
  };
  const fwd = perToken('fwd');
  const bwd = perToken('bwd');
  const dense = 2 * d;
  const reached = r.val.find(([, v]) => v <= baselineVal);
  const N = r.run.scheduleSteps ?? r.run.steps;
  const finalVal = valAt(r.val, N);
  const wallMs = Math.max(...r.peers.map((p) => p.stats.wallMs));
  const tokens = r.run.steps * r.run.microbatches * r.run.model.batch * r.run.model.seq;
  return {
    codec,
    ...(spec.kind === 'subspace' ? { k: spec.k, coeff_dtype: spec.coeff } : {}),
    final_val_loss: +finalVal.toFixed(5),
    gap_vs_baseline: +(finalVal / baselineVal - 1).toFixed(5),
    steps_to_baseline_loss: reached ? reached[0] : null,
    steps_searched: r.run.steps,
    wire_bytes_per_token: { fwd: +fwd.toFixed(3), bwd: +bwd.toFixed(3) },
    dense_bf16_bytes_per_token: dense,
    compression_ratio: +(dense / Math.max(fwd, bwd)).toFixed(2),
    tokens_per_s: +(tokens / (wallMs / 1000)).toFixed(1),
    stage_busy_fraction: byStage.map((p) => +(p.stats.busyMs / p.stats.wallMs).toFixed(3)),
    max_layer_fraction_per_peer: Math.max(...r.peers.map((p) => p.stats.layersHeld)) / r.run.model.nLayer,
    coordinator_weight_bytes: r.coordinator.binaryBytesReceived,
    rejected_frames: r.peers.reduce((s, p) => s + p.stats.rejectedFrames, 0),
    val_curve: r.val,
  };
}

async function main(): Promise<void> {
  mkdirSync(RESULTS, { recursive: true });
  const text = await loadText(opts.data);
  const corpus = charCorpus(text.text);
  const run = await runConfig({ ...opts, codec: 'fp32' });
  console.log(
    `data ${run.data.name} (${text.chars} chars, vocab ${run.model.vocab}); ${opts.steps} steps; ${opts.workers} workers × ${opts.stages} stages; codecs: ${codecs.join(', ')}`,
  );
  const t0 = performance.now();
  const previous = values.merge && existsSync(JSON_PATH) ? (JSON.parse(readFileSync(JSON_PATH, 'utf8')) as SwarmJson) : undefined;
  const reuse = previous && JSON.stringify(previous.config) === JSON.stringify(benchConfig());
  if (values.merge && !reuse) console.log('no swarm.json with this config to merge into: running the baseline');
  const baseline = reuse
    ? { val: previous.baseline.val_curve, tokensPerSec: previous.baseline.tokens_per_s, train: [] }
    : await trainBaseline(run, corpus, (step) => process.stdout.write(`\rbaseline step ${step}/${opts.steps}`));
  const baselineVal = lastVal(baseline.val);
  console.log(`\rbaseline: final val ${baselineVal.toFixed(4)}, ${baseline.tokensPerSec.toFixed(0)} tok/s (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  const runs: RunSummary[] = reuse ? previous.runs.filter((r) => !codecs.includes(r.codec)) : [];
  for (const [i, codec] of codecs.entries()) {
    const t1 = performance.now();
    process.stdout.write(`[${i + 1}/${codecs.length}] ${codec}…`);
    const steps = extendedSteps();
    const r = await runSwarm(
      // Each sweep (--name) has its own directories and run ids: sweeps may run side by side.
      { ...opts, steps, codec, out: join('runs', 'bench-swarm', PREFIX, codec.replace(/[:=]/g, '-')) },
      { ...run, steps, scheduleSteps: opts.steps, codec: parseCodec(codec), runId: `${PREFIX}-${i}` },
    );
    const s = summarize(codec, r, baselineVal);
    runs.push(s);
    console.log(
      `\r[${i + 1}/${codecs.length}] ${codec.padEnd(20)} val ${s.final_val_loss.toFixed(4)} (${(s.gap_vs_baseline * 100).toFixed(1)}%)  ` +
        `${s.wire_bytes_per_token.fwd.toFixed(1)} B/token fwd, ${s.compression_ratio}× vs bf16  busy ${s.stage_busy_fraction.join('/')}  ${((performance.now() - t1) / 1000).toFixed(0)} s`,
    );
    write(baseline, baselineVal, runs); // partial results survive an interrupted sweep
  }
}

/** How far each codec runs on the N-step schedule: N, 2N with --extend, or M with --extend-to M (> N). */
function extendedSteps(): number {
  const to = values['extend-to'];
  if (to === undefined) return values.extend ? 2 * opts.steps : opts.steps;
  const m = Number(to);
  if (!(Number.isInteger(m) && m > opts.steps)) throw new Error(`--extend-to ${to}: expected an integer number of steps above the schedule's ${opts.steps}`);
  return m;
}

type RunSummary = ReturnType<typeof summarize>;
interface SwarmJson {
  config: ReturnType<typeof benchConfig>;
  baseline: { final_val_loss: number; tokens_per_s: number; val_curve: [number, number][] };
  runs: RunSummary[];
}
const PREFIX = values.name ? `swarm-${values.name}` : 'swarm';
const JSON_PATH = join(RESULTS, `${PREFIX}.json`);

function benchConfig() {
  const tokens = opts.steps * opts.microbatches * opts.batch * opts.seq;
  return {
    d_model: opts.dModel,
    n_layer: opts.layers,
    n_head: opts.heads,
    seq: opts.seq,
    stages: opts.stages,
    workers: opts.workers,
    microbatches: opts.microbatches,
    microbatch_size: opts.batch,
    steps: opts.steps,
    tokens,
    data: opts.data,
  };
}

function write(baseline: { val: [number, number][]; tokensPerSec: number }, baselineVal: number, runs: RunSummary[]): void {
  const result: SwarmJson = {
    config: benchConfig(),
    baseline: { final_val_loss: +baselineVal.toFixed(5), tokens_per_s: +baseline.tokensPerSec.toFixed(1), val_curve: baseline.val },
    runs,
  };
  writeFileSync(JSON_PATH, JSON.stringify(result, null, 2) + '\n');
  plot(result);
}

/** Loss curves, and the frontier with one line per family so each idea's breaking point shows. */
function plot(r: SwarmJson): void {
  const baselineVal = r.baseline.final_val_loss;
  writeFileSync(
    join(RESULTS, `${PREFIX}-loss.svg`),
    lossPlotSvg({
      title: 'validation loss: centralized dense baseline and swarm codecs',
      series: [{ name: 'baseline (dense)', points: r.baseline.val_curve }, ...r.runs.map((x) => ({ name: x.codec, points: x.val_curve }))],
    }),
  );
  // The entropy-coded e<b> codecs make one family: their step, not their container, sets the rate.
  const family = (x: RunSummary) => (!('coeff_dtype' in x) ? 'dense' : x.coeff_dtype?.startsWith('e') ? 'subspace e<b> (RMS step, dither)' : `subspace ${x.coeff_dtype}`);
  const families = [...new Set(r.runs.map(family))];
  const xs = r.runs.map((x) => x.compression_ratio);
  const span: [number, number] = [Math.min(...xs), Math.max(...xs)];
  writeFileSync(
    join(RESULTS, `${PREFIX}-frontier.svg`),
    lossPlotSvg({
      title: 'final validation loss against compression (vs dense bf16 boundary)',
      xLabel: 'compression ratio (×)',
      yLabel: 'final validation loss',
      series: [
        ...families.map((f) => ({
          name: f,
          points: r.runs
            .filter((x) => family(x) === f)
            .sort((p, q) => p.compression_ratio - q.compression_ratio)
            .map((x) => [x.compression_ratio, x.final_val_loss] as [number, number]),
        })),
        { name: 'baseline', points: span.map((x) => [x, baselineVal] as [number, number]) },
        { name: 'baseline + 3%', points: span.map((x) => [x, baselineVal * 1.03] as [number, number]) },
      ],
    }),
  );
}

if (values['plot-only']) {
  plot(JSON.parse(readFileSync(JSON_PATH, 'utf8')) as SwarmJson);
  process.exit(0);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`\nbench error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
