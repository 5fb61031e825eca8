// `npm run train:local`: train the default char-level GPT on this machine's GPU in one process, with a live
// progress line and a loss plot. The whole model is one block (embedding, every layer, head).
// Training state is checkpointed at every evaluation and on Ctrl-C, and a rerun resumes from it.
//   npm run train:local -- [--data FILE] [--steps N] [--layers L] [--d-model D] [--heads H] [--seq T]
//                [--batch B] [--lr X] [--eval-every K] [--out DIR] [--fresh]
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BlockRuntime } from '../shared/engine/block-runtime.js';
import { type Checkpoint, decodeCheckpoint, encodeCheckpoint } from '../shared/engine/checkpoint.js';
import { charCorpus, sampleBatch } from '../shared/engine/data.js';
import { type BlockConfig, blockFlops } from '../shared/engine/model.js';
import { DEFAULT_ADAMW, learningRate } from '../shared/engine/optimizer.js';
import { lossPlotSvg } from './plot.js';
import { openNodeGpu } from '../worker/node-gpu.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`--${name} needs a value`);
  return v;
}

function int(name: string, fallback: number): number {
  const v = Number(flag(name, String(fallback)));
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
  return v;
}

interface Meta {
  runKey: string;
  train: [number, number][];
  val: [number, number][];
}

async function main(): Promise<void> {
  const dataPath = flag('data', new URL('../data/tinyshakespeare.txt', import.meta.url).pathname);
  const steps = int('steps', 300);
  const evalEvery = int('eval-every', 50);
  const out = flag('out', 'runs/local');
  const corpus = charCorpus(readFileSync(dataPath, 'utf8'));
  const cfg: BlockConfig = {
    vocab: corpus.vocab.length,
    dModel: int('d-model', 128),
    nHead: int('heads', 4),
    nLayer: int('layers', 4),
    seq: int('seq', 64),
    batch: int('batch', 16),
    hasEmbedding: true,
    hasHead: true,
  };
  const lr = Number(flag('lr', String(DEFAULT_ADAMW.lr)));
  const gpu = await openNodeGpu();
  console.log(`data ${dataPath}: ${corpus.train.length + corpus.val.length} chars, vocab ${cfg.vocab}`);
  console.log(`model d=${cfg.dModel} layers=${cfg.nLayer} heads=${cfg.nHead} seq=${cfg.seq} batch=${cfg.batch}; tuning kernels…`);
  const rt = await BlockRuntime.create(gpu, cfg, {
    seed: 1,
    optimizer: { ...DEFAULT_ADAMW, lr },
    autotune: true,
    onTuneProgress: (done, total) => process.stdout.write(`\rtuning matmul shapes ${done}/${total}${done === total ? '\n' : ''}`),
  });
  console.log(`${rt.layout.count.toLocaleString()} parameters, ${(rt.gpuBytes / 2 ** 20).toFixed(1)} MiB on the GPU`);

  const evalLoss = async () => {
    let s = 0;
    const n = 4;
    for (let i = 0; i < n; i++) s += (await rt.forward(sampleBatch(corpus.val, cfg.batch, cfg.seq, 2, i))).loss!;
    return s / n;
  };

  // Resume where a previous run of the same model stopped.
  mkdirSync(out, { recursive: true });
  const ckptPath = join(out, 'checkpoint.bin');
  const runKey = JSON.stringify({ cfg, lr, steps, data: dataPath });
  let train: [number, number][] = [];
  let val: [number, number][] = [];
  if (existsSync(ckptPath) && !process.argv.includes('--fresh')) {
    const ckpt = decodeCheckpoint<Meta>(readFileSync(ckptPath));
    if (ckpt.meta.runKey !== runKey) {
      throw new Error(`${ckptPath} holds a run with other settings (${ckpt.meta.runKey}); pass --fresh to start over or --out DIR for a new run`);
    }
    rt.loadState(ckpt);
    ({ train, val } = ckpt.meta);
    console.log(`resumed from ${ckptPath} at step ${ckpt.step}`);
  } else {
    val.push([0, await evalLoss()]);
  }
  const save = async () => {
    const state: Checkpoint<Meta> = { ...(await rt.saveState()), meta: { runKey, train, val } };
    writeFileSync(`${ckptPath}.tmp`, encodeCheckpoint(state));
    renameSync(`${ckptPath}.tmp`, ckptPath); // atomic: a crash mid-write keeps the previous checkpoint
    writeFileSync(
      join(out, 'loss.svg'),
      lossPlotSvg({
        title: `local training, ${cfg.nLayer} layers d=${cfg.dModel}`,
        series: [
          { name: 'train', points: train },
          { name: 'validation', points: val },
        ],
      }),
    );
    writeFileSync(join(out, 'metrics.json'), JSON.stringify({ config: cfg, lr, train, val }, null, 2));
  };
  let stopping = false;
  process.once('SIGINT', () => {
    stopping = true;
  });

  const tokensPerStep = cfg.batch * cfg.seq;
  const first = rt.stepCount + 1;
  const t0 = performance.now();
  for (let step = first; step <= steps && !stopping; step++) {
    const { loss } = await rt.forward(sampleBatch(corpus.train, cfg.batch, cfg.seq, 1, step));
    if (!Number.isFinite(loss)) throw new Error(`loss became ${loss} at step ${step}: lower --lr (the last checkpoint is kept)`);
    await rt.backward();
    rt.step(learningRate(step, { lr, warmup: Math.min(100, Math.ceil(steps / 10)), total: steps }));
    train.push([step, loss!]);
    if (step % evalEvery === 0 || step === steps) {
      val.push([step, await evalLoss()]);
      await save();
    }
    const done = step - first + 1;
    const secs = (performance.now() - t0) / 1000;
    const eta = ((steps - step) * secs) / done;
    process.stdout.write(
      `\rstep ${step}/${steps} | loss ${loss!.toFixed(4)} | val ${val.at(-1)![1].toFixed(4)} | ${Math.round((done * tokensPerStep) / secs)} tok/s | ` +
        `${((blockFlops(cfg).total * done) / secs / 1e9).toFixed(2)} GFLOP/s | eta ${Math.ceil(eta)}s   `,
    );
  }
  process.stdout.write('\n');
  await save();
  if (stopping) console.log(`stopped at step ${rt.stepCount}; run the same command again to resume`);
  else console.log(`final validation loss ${val.at(-1)![1].toFixed(4)}; loss curve in ${join(out, 'loss.svg')}`);
  rt.destroy();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
