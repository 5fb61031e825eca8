// `npm run bench:kernels`: our WGSL kernels against @tensorflow/tfjs-backend-webgpu, side by side in
// one process on the same adapter. (a) matmul GFLOP/s at several shapes, (b) one training step
// (forward + backward + AdamW) of the same 2-layer GPT block. Medians after warm-up; writes
// bench/results/kernels.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MatmulTuner } from '../kernels/autotune.js';
import { matmul, variantKey } from '../kernels/matmul.js';
import { BlockRuntime } from '../shared/engine/block-runtime.js';
import { detectGpu } from '../shared/engine/gpu-detect.js';
import { type BlockConfig, blockFlops, initParams } from '../shared/engine/model.js';
import { DEFAULT_ADAMW } from '../shared/engine/optimizer.js';
import { nodeGPU, openNodeGpu } from '../worker/node-gpu.js';
import { createTfjsTrainer, initTfjs, tfjsMatmulMs } from './tfjs-peer.js';
import { rng } from '../shared/base/random.js';

const { values: args } = parseArgs({ options: { reps: { type: 'string', default: '5' }, quick: { type: 'boolean', default: false } }, strict: true });
const REPS = Number(args.reps);
if (!Number.isInteger(REPS) || REPS < 1) throw new Error(`--reps must be a positive integer, got ${args.reps}`);
const QUICK = args.quick;
const OUT = join(dirname(fileURLToPath(import.meta.url)), 'results', 'kernels.json');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const bar = (done: number, total: number, label: string) => {
  const w = 24;
  const f = Math.round((done / total) * w);
  process.stderr.write(`\r[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${done}/${total} ${label.padEnd(40)}`);
  if (done === total) process.stderr.write('\n');
};

const TRAIN: BlockConfig = { vocab: 65, dModel: 128, nHead: 4, nLayer: 2, seq: 64, batch: 16, hasEmbedding: true, hasHead: true };

async function main(): Promise<void> {
  const gpu = await openNodeGpu();
  const report = await detectGpu(nodeGPU(), { name: `node ${process.version}`, totalMemoryBytes: os.totalmem(), runtime: 'node' }, { benchmark: false });
  const tf = await initTfjs();
  console.log(`adapter: ${report.adapter?.description ?? 'unknown'} (tfjs backend ${tf.backend})`);

  const shapes = QUICK
    ? [
        { m: 256, n: 256, k: 256 },
        { m: 512, n: 512, k: 512 },
      ]
    : [
        { m: 256, n: 256, k: 256 },
        { m: 512, n: 512, k: 512 },
        { m: 1024, n: 1024, k: 1024 },
        // transformer-shaped: 512 tokens × 4d outputs × d inputs, d = 256 (the MLP up-projection)
        { m: 512, n: 1024, k: 256 },
      ];
  const tuner = new MatmulTuner();
  const matmulRows: Record<string, unknown>[] = [];
  for (const [i, s] of shapes.entries()) {
    bar(i, shapes.length, `matmul ${s.m}x${s.n}x${s.k}: tuning`);
    const shape = { M: s.m, N: s.n, K: s.k };
    const { variant } = await tuner.tune(gpu, shape, 2);
    const rand = rng(i + 1);
    const a = gpu.upload(Float32Array.from({ length: s.m * s.k }, rand));
    const b = gpu.upload(Float32Array.from({ length: s.k * s.n }, rand));
    const c = gpu.view(gpu.buffer(s.m * s.n));
    const oursMs = await gpu.time([matmul(gpu, { ...shape, a, b, c, variant })], REPS);
    bar(i, shapes.length, `matmul ${s.m}x${s.n}x${s.k}: tfjs`);
    const theirs = await tfjsMatmulMs(s.m, s.n, s.k, REPS);
    for (const v of [a, b, c]) v.buffer.destroy();
    const flops = 2 * s.m * s.n * s.k;
    matmulRows.push({
      ...s,
      ours_gflops: +(flops / oursMs / 1e6).toFixed(3),
      tfjs_gflops: +(flops / median(theirs) / 1e6).toFixed(3),
      ours_ms: +oursMs.toFixed(2),
      tfjs_ms: +median(theirs).toFixed(2),
      ours_variant: variantKey(variant),
    });
  }
  bar(shapes.length, shapes.length, 'matmul done');

  // Training step: same config, same init, same data, same optimizer.
  const init = initParams(TRAIN, 1);
  const N = TRAIN.batch * TRAIN.seq;
  const rand = rng(99);
  const tokens = Int32Array.from({ length: N }, () => Math.floor(rand() * TRAIN.vocab));
  const targets = tokens.map((t) => (t + 1) % TRAIN.vocab);
  const steps = REPS + 2;
  const rt = await BlockRuntime.create(gpu, TRAIN, { init, optimizer: DEFAULT_ADAMW, autotune: true, tuner });
  const ours: number[] = [];
  const oursLoss: number[] = [];
  for (let s = 0; s < steps; s++) {
    bar(s, steps * 2, 'train step: ours');
    const t0 = performance.now();
    const { loss } = await rt.forward({ tokens, targets });
    await rt.backward();
    rt.step();
    await gpu.finish();
    ours.push(performance.now() - t0);
    oursLoss.push(loss!);
  }
  rt.destroy();
  const trainer = await createTfjsTrainer(TRAIN, init, DEFAULT_ADAMW);
  const theirs: number[] = [];
  const theirLoss: number[] = [];
  for (let s = 0; s < steps; s++) {
    bar(steps + s, steps * 2, 'train step: tfjs');
    const t0 = performance.now();
    theirLoss.push(await trainer.step(tokens, targets));
    theirs.push(performance.now() - t0);
  }
  trainer.dispose();
  bar(1, 1, 'train step done');
  // Warm-up steps (shader compiles, first submits) are left out of the medians.
  const oursMs = median(ours.slice(2));
  const tfjsMs = median(theirs.slice(2));
  const flops = blockFlops(TRAIN).total;

  const result = {
    adapter: { ...report.adapter, limits: undefined, tfjs: tf.adapterInfo },
    date: new Date().toISOString(),
    reps: REPS,
    matmul: matmulRows,
    train_step: {
      config: { ...TRAIN, optimizer: DEFAULT_ADAMW },
      flops_per_step: flops,
      ours_ms: +oursMs.toFixed(1),
      tfjs_ms: +tfjsMs.toFixed(1),
      speedup: +(tfjsMs / oursMs).toFixed(2),
      ours_gflops: +(flops / oursMs / 1e6).toFixed(2),
      losses: { ours: oursLoss.map((l) => +l.toFixed(5)), tfjs: theirLoss.map((l) => +l.toFixed(5)) },
    },
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');

  console.log('\nmatmul (GFLOP/s, median of %d)', REPS);
  console.log('  shape              ours     tfjs    ratio  variant');
  for (const r of matmulRows as { m: number; n: number; k: number; ours_gflops: number; tfjs_gflops: number; ours_variant: string }[]) {
    console.log(
      `  ${`${r.m}x${r.n}x${r.k}`.padEnd(16)} ${r.ours_gflops.toFixed(2).padStart(7)} ${r.tfjs_gflops.toFixed(2).padStart(8)} ${(r.ours_gflops / r.tfjs_gflops).toFixed(2).padStart(7)}×  ${r.ours_variant}`,
    );
  }
  console.log(`\ntraining step, 2-layer GPT d=${TRAIN.dModel} h=${TRAIN.nHead} T=${TRAIN.seq} B=${TRAIN.batch} (fwd+bwd+AdamW)`);
  console.log(`  ours ${oursMs.toFixed(1)} ms   tfjs ${tfjsMs.toFixed(1)} ms   speedup ${(tfjsMs / oursMs).toFixed(2)}×   (${(flops / oursMs / 1e6).toFixed(2)} GFLOP/s)`);
  console.log(`  loss after ${steps} steps: ours ${oursLoss.at(-1)!.toFixed(4)}, tfjs ${theirLoss.at(-1)!.toFixed(4)}`);
  console.log(`\nwrote ${OUT}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
