// `npm run train:local`: train the default char-level GPT on this machine's GPU in one process, with a live
// progress line and a loss plot. The whole model is one block (embedding, every layer, head).
// Training state is checkpointed at every evaluation and on Ctrl-C, and a rerun resumes from it.
//   npm run train:local -- [--data FILE] [--steps N] [--layers L] [--d-model D] [--heads H] [--seq T]
//                [--batch B] [--lr X] [--eval-every K] [--out DIR] [--fresh]
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BlockRuntime } from '../shared/engine/block-runtime.js';
import { type Checkpoint, decodeCheckpoint, encodeCheckpoint } from '../shared/engine/checkpoint.js';
import { type CharCorpus, charCorpus, sampleBatch } from '../shared/engine/data.js';
import { type BlockConfig, blockFlops } from '../shared/engine/model.js';
import { DEFAULT_ADAMW, learningRate } from '../shared/engine/optimizer.js';
import { DEFAULT_DATA } from '../node/corpus.js';
import { intFlag, numberFlag, readFlags, stringOptions } from '../node/flags.js';
import { lossPlotSvg } from './plot.js';
import { openNodeGpu } from '../worker/node-gpu.js';

interface LocalRun {
  data: string;
  steps: number;
  evalEvery: number;
  out: string;
  lr: number;
  cfg: BlockConfig;
  corpus: CharCorpus;
  fresh: boolean;
}

const USAGE = 'npm run train:local [-- --steps 300 --data FILE --layers L --d-model D --heads H --seq T --batch B --lr X --eval-every 50 --out DIR --fresh]';

function parseRun(argv: string[]): LocalRun {
  const names = ['data', 'steps', 'layers', 'd-model', 'heads', 'seq', 'batch', 'lr', 'eval-every', 'out'] as const;
  const { values } = parseArgs({ args: argv, options: { ...stringOptions(names), fresh: { type: 'boolean' } }, strict: true });
  const int = (name: (typeof names)[number], fallback: number) => (values[name] === undefined ? fallback : intFlag(name, values[name], 1));
  const data = values.data ?? DEFAULT_DATA;
  const corpus = charCorpus(readFileSync(data, 'utf8'));
  return {
    data,
    steps: int('steps', 300),
    evalEvery: int('eval-every', 50),
    out: values.out ?? 'runs/local',
    lr: values.lr === undefined ? DEFAULT_ADAMW.lr : numberFlag('lr', values.lr),
    cfg: {
      vocab: corpus.vocab.length,
      dModel: int('d-model', 128),
      nHead: int('heads', 4),
      nLayer: int('layers', 4),
      seq: int('seq', 64),
      batch: int('batch', 16),
      hasEmbedding: true,
      hasHead: true,
    },
    corpus,
    fresh: values.fresh ?? false,
  };
}

/** What a checkpoint carries besides the training state: whose run it is, and the curves so far. */
interface Meta {
  runKey: string;
  train: [number, number][];
  val: [number, number][];
}

/** The checkpoint, loss plot and metrics in the run's directory, each written whole. */
class RunFiles {
  readonly ckpt: string;
  readonly meta: Meta;

  constructor(private readonly r: LocalRun) {
    mkdirSync(r.out, { recursive: true });
    this.ckpt = join(r.out, 'checkpoint.bin');
    this.meta = { runKey: JSON.stringify({ cfg: r.cfg, lr: r.lr, steps: r.steps, data: r.data }), train: [], val: [] };
  }

  /** Resume where a previous run of the same model stopped; false when there is nothing to resume. */
  resume(rt: BlockRuntime): boolean {
    if (!existsSync(this.ckpt) || this.r.fresh) return false;
    const ckpt = decodeCheckpoint<Meta>(readFileSync(this.ckpt));
    if (ckpt.meta.runKey !== this.meta.runKey) {
      throw new Error(`${this.ckpt} holds a run with other settings (${ckpt.meta.runKey}); pass --fresh to start over or --out DIR for a new run`);
    }
    rt.loadState(ckpt);
    this.meta.train.push(...ckpt.meta.train);
    this.meta.val.push(...ckpt.meta.val);
    console.log(`resumed from ${this.ckpt} at step ${ckpt.step}`);
    return true;
  }

  async save(rt: BlockRuntime): Promise<void> {
    const { cfg, lr, out } = this.r;
    const { train, val } = this.meta;
    const state: Checkpoint<Meta> = { ...(await rt.saveState()), meta: this.meta };
    writeFileSync(`${this.ckpt}.tmp`, encodeCheckpoint(state));
    renameSync(`${this.ckpt}.tmp`, this.ckpt); // atomic: a crash mid-write keeps the previous checkpoint
    const series = [
      { name: 'train', points: train },
      { name: 'validation', points: val },
    ];
    writeFileSync(join(out, 'loss.svg'), lossPlotSvg({ title: `local training, ${cfg.nLayer} layers d=${cfg.dModel}`, series }));
    writeFileSync(join(out, 'metrics.json'), JSON.stringify({ config: cfg, lr, train, val }, null, 2));
  }
}

/** Trains to the last step or until Ctrl-C; resolves true when interrupted. */
async function main(): Promise<boolean> {
  const r = readFlags('npm run train:local', USAGE, () => parseRun(process.argv.slice(2)));
  const { cfg, corpus, steps, lr } = r;
  const gpu = await openNodeGpu();
  console.log(`data ${r.data}: ${corpus.train.length + corpus.val.length} chars, vocab ${cfg.vocab}`);
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
  const files = new RunFiles(r);
  const { train, val } = files.meta;
  if (!files.resume(rt)) val.push([0, await evalLoss()]);
  let stopping = false;
  process.once('SIGINT', () => {
    stopping = true;
  });

  const first = rt.stepCount + 1;
  const t0 = performance.now();
  for (let step = first; step <= steps && !stopping; step++) {
    const { loss } = await rt.forward(sampleBatch(corpus.train, cfg.batch, cfg.seq, 1, step));
    if (!Number.isFinite(loss)) throw new Error(`loss became ${loss} at step ${step}: lower --lr (the last checkpoint is kept)`);
    await rt.backward();
    rt.step(learningRate(step, { lr, warmup: Math.min(100, Math.ceil(steps / 10)), total: steps }));
    train.push([step, loss!]);
    if (step % r.evalEvery === 0 || step === steps) {
      val.push([step, await evalLoss()]);
      await files.save(rt);
    }
    process.stdout.write(`\r${progressLine(cfg, step, steps, step - first + 1, (performance.now() - t0) / 1000, loss!, val.at(-1)![1])}   `);
  }
  process.stdout.write('\n');
  await files.save(rt);
  if (stopping) console.log(`stopped at step ${rt.stepCount}; run the same command again to resume`);
  else console.log(`final validation loss ${val.at(-1)![1].toFixed(4)}; loss curve in ${join(r.out, 'loss.svg')}`);
  rt.destroy();
  return stopping;
}

/** Step, losses, throughput and time left, after `done` steps in `secs` seconds. */
function progressLine(cfg: BlockConfig, step: number, steps: number, done: number, secs: number, loss: number, val: number): string {
  const eta = ((steps - step) * secs) / done;
  const tokens = (done * cfg.batch * cfg.seq) / secs;
  const gflops = (blockFlops(cfg).total * done) / secs / 1e9;
  return `step ${step}/${steps} | loss ${loss.toFixed(4)} | val ${val.toFixed(4)} | ${Math.round(tokens)} tok/s | ${gflops.toFixed(2)} GFLOP/s | eta ${Math.ceil(eta)}s`;
}

main().then(
  (interrupted) => process.exit(interrupted ? 130 : 0),
  (e: unknown) => {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
