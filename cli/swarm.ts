// `npm run swarm -- --workers N --stages S [--codec C] [--data FILE] [--steps N] ...`: a whole
// local swarm on loopback. Starts a coordinator in this process and N worker processes that
// train the run together over WebRTC; prints live progress; writes curves, stats and a plot.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Coordinator, type CoordinatorOptions } from '../coordinator/server.js';
import { splitLayers } from '../shared/swarm/assignment.js';
import { charCorpus } from '../shared/engine/data.js';
import { DEFAULT_ADAMW } from '../shared/engine/optimizer.js';
import { lossPlotSvg } from './plot.js';
import { type RunConfig, RunConfigSchema } from '../shared/swarm/protocol.js';
import { parseCodec } from '../shared/wire/codec.js';
import { DEFAULT_DATA, loadText } from '../worker/run-data.js';

export interface SwarmOptions {
  workers: number;
  stages: number;
  codec: string;
  data: string;
  steps: number;
  layers: number;
  dModel: number;
  heads: number;
  seq: number;
  batch: number;
  microbatches: number;
  lr: number;
  averageEvery: number;
  evalEvery: number;
  evalBatches: number;
  seed: number;
  out: string;
  quiet?: boolean;
  /** Workers dump step 1's boundary tensors as sent and received into out/boundaries. */
  dump?: boolean;
  /** Workers skip their start-up benchmark and autotuning (see the worker's --quick-start). */
  quickStart?: boolean;
}

/** How a launcher plugs the chain into a swarm (see cli/start.ts); the swarm itself stays chain-agnostic. */
export interface SwarmHooks {
  coordinator?: Pick<CoordinatorOptions, 'chain' | 'inference'>;
  /** Extra environment of worker i (its payout key and RPC endpoint). */
  workerEnv?(i: number): Record<string, string>;
  /** Called once the coordinator exists, before any worker starts (e.g. to attach settlement). */
  onCoordinator?(c: Coordinator): void;
  /** With run.serve: runs after training while the swarm serves queries; the swarm stops when it resolves. */
  afterTraining?(c: Coordinator): Promise<void>;
}

export const SWARM_DEFAULTS: SwarmOptions = {
  workers: 4,
  stages: 2,
  codec: 'subspace:k=16:int8',
  data: DEFAULT_DATA,
  steps: 100,
  layers: 4,
  dModel: 128,
  heads: 4,
  seq: 64,
  batch: 16,
  microbatches: 2,
  lr: 3e-3,
  averageEvery: 5,
  evalEvery: 25,
  evalBatches: 4,
  seed: 1,
  out: 'runs/swarm',
};

export interface PeerMetrics {
  peerId: string;
  stage: number;
  replica: number;
  train: [number, number][];
  val: [number, number][];
  stats: Record<string, number>;
}

export interface SwarmResult {
  run: RunConfig;
  peers: PeerMetrics[];
  wallMs: number;
  coordinator: { binaryBytesReceived: number; badMessages: number; messagesIn: number };
}

export function runConfig(o: SwarmOptions): RunConfig {
  const t = loadText(o.data);
  const vocab = charCorpus(t.text).vocab.length;
  const run = {
    runId: `swarm-${Date.now().toString(36)}`,
    model: { vocab, dModel: o.dModel, nHead: o.heads, nLayer: o.layers, seq: o.seq, batch: o.batch },
    stages: o.stages,
    layersPerStage: splitLayers(o.layers, o.stages),
    microbatches: o.microbatches,
    steps: o.steps,
    seed: o.seed,
    data: { name: basename(o.data), sha256: t.sha256, chars: t.chars },
    codec: parseCodec(o.codec),
    optimizer: { ...DEFAULT_ADAMW, lr: o.lr, warmup: Math.min(100, Math.ceil(o.steps / 10)) },
    averageEvery: o.averageEvery,
    evalEvery: o.evalEvery,
    evalBatches: o.evalBatches,
  };
  const parsed = RunConfigSchema.safeParse(run);
  if (!parsed.success) throw new Error(`invalid run: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

const WORKER = fileURLToPath(new URL('../worker/worker.ts', import.meta.url));

export async function runSwarm(o: SwarmOptions, run = runConfig(o), hooks: SwarmHooks = {}): Promise<SwarmResult> {
  if (o.workers % o.stages !== 0) throw new Error(`--workers ${o.workers} must be a multiple of --stages ${o.stages}`);
  mkdirSync(o.out, { recursive: true });
  const log = (line: string) => {
    if (!o.quiet) process.stdout.write(line);
  };
  const coord = new Coordinator({ run, workers: o.workers, heartbeatTimeoutMs: 120_000, log: (l) => writeFileSync(join(o.out, 'coordinator.log'), `${l}\n`, { flag: 'a' }), ...hooks.coordinator });
  hooks.onCoordinator?.(coord);
  const port = await coord.listen(0);
  log(`coordinator on ws://127.0.0.1:${port}: ${o.workers} workers, ${o.stages} stages (${run.layersPerStage.join('+')} layers), codec ${o.codec}, ${o.steps} steps\n`);
  const children: ChildProcess[] = [];
  const metricsFiles: string[] = [];
  const t0 = performance.now();
  for (let i = 0; i < o.workers; i++) {
    const metrics = join(o.out, `worker-${i}.json`);
    metricsFiles.push(metrics);
    const logFile = join(o.out, `worker-${i}.log`);
    writeFileSync(logFile, '');
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, '--coordinator', `ws://127.0.0.1:${port}`, '--data', o.data, '--name', `worker-${i}`, '--metrics', metrics, '--proofs', join(o.out, `worker-${i}-proofs.json`), ...(o.dump ? ['--dump', join(o.out, 'boundaries')] : []), ...(o.quickStart ? ['--quick-start'] : [])], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...hooks.workerEnv?.(i) } });
    const append = (b: Buffer) => writeFileSync(logFile, b, { flag: 'a' });
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    children.push(child);
  }
  const exits = children.map((c, i) => new Promise<number>((resolve) => c.on('exit', (code) => resolve(code ?? 1))).then((code) => ({ i, code })));
  const kill = () => children.forEach((c) => c.kill('SIGTERM'));
  process.once('SIGINT', kill);
  const ticker = setInterval(() => {
    const p = coord.progress();
    const st = coord.stats.peers;
    log(
      `\r[${coord.currentPhase}] peers ${st.registered}/${o.workers} | step ${p.step}/${o.steps}` +
        `${p.loss !== undefined ? ` | loss ${p.loss.toFixed(4)}` : ''}${p.valLoss !== undefined ? ` | val ${p.valLoss.toFixed(4)}` : ''}` +
        ` | ${Math.round(p.tokensPerSec ?? 0)} tok/s   `,
    );
  }, 1000);
  try {
    // A worker that dies ends the run with its log, instead of a hang.
    const failed = Promise.all(exits).then(() => undefined);
    const firstFailure = Promise.race(exits.map((e) => e.then((r) => (r.code !== 0 ? r : new Promise<never>(() => {})))));
    const workerDied = firstFailure.then((r): never => {
      throw new Error(`worker ${r.i} exited with code ${r.code}; see ${join(o.out, `worker-${r.i}.log`)}:\n${tail(join(o.out, `worker-${r.i}.log`))}`);
    });
    await Promise.race([coord.finished, workerDied]);
    if (run.serve) {
      clearInterval(ticker);
      try {
        await Promise.race([hooks.afterTraining?.(coord), workerDied]);
      } finally {
        coord.stopServing();
      }
    }
    await failed;
  } finally {
    clearInterval(ticker);
    kill();
    process.removeListener('SIGINT', kill);
  }
  const wallMs = performance.now() - t0;
  const peers = metricsFiles.map((f) => JSON.parse(readFileSync(f, 'utf8')) as PeerMetrics);
  const s = coord.stats;
  await coord.close();
  const result: SwarmResult = { run, peers, wallMs, coordinator: { binaryBytesReceived: s.binaryBytesReceived, badMessages: s.badMessages, messagesIn: s.messagesIn } };
  writeFileSync(join(o.out, 'result.json'), JSON.stringify(result, null, 2));
  const last = peers.filter((p) => p.stage === o.stages - 1).sort((a, b) => a.replica - b.replica);
  const series = [
    ...last.map((p) => ({ name: `train (lane ${p.replica})`, points: p.train })),
    { name: 'validation', points: last[0]?.val ?? [] },
  ].filter((x) => x.points.length);
  if (series.length) writeFileSync(join(o.out, 'loss.svg'), lossPlotSvg({ title: `swarm: ${o.workers} workers, ${o.stages} stages, ${o.codec}`, series }));
  log(`\nfinished in ${(wallMs / 1000).toFixed(1)} s; final validation loss ${last[0]?.val.at(-1)?.[1].toFixed(4) ?? 'n/a'}; results in ${o.out}/\n`);
  return result;
}

function tail(file: string, lines = 15): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').replace(/\r/g, '\n').split('\n').filter(Boolean).slice(-lines).join('\n');
}

export function parseSwarmArgs(argv: string[]): SwarmOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      workers: { type: 'string' },
      stages: { type: 'string' },
      codec: { type: 'string' },
      data: { type: 'string' },
      steps: { type: 'string' },
      layers: { type: 'string' },
      'd-model': { type: 'string' },
      heads: { type: 'string' },
      seq: { type: 'string' },
      batch: { type: 'string' },
      microbatches: { type: 'string' },
      lr: { type: 'string' },
      'average-every': { type: 'string' },
      'eval-every': { type: 'string' },
      'eval-batches': { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
    },
    strict: true,
  });
  const o = { ...SWARM_DEFAULTS };
  const num = (flag: string, v: string | undefined, int = true): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || (int && (!Number.isInteger(n) || n < 0))) throw new Error(`--${flag} must be a ${int ? 'non-negative integer' : 'number'}, got ${v}`);
    return n;
  };
  const ints: [keyof SwarmOptions, string][] = [
    ['workers', 'workers'], ['stages', 'stages'], ['steps', 'steps'], ['layers', 'layers'], ['dModel', 'd-model'], ['heads', 'heads'],
    ['seq', 'seq'], ['batch', 'batch'], ['microbatches', 'microbatches'], ['averageEvery', 'average-every'], ['evalEvery', 'eval-every'],
    ['evalBatches', 'eval-batches'], ['seed', 'seed'],
  ];
  for (const [key, flag] of ints) {
    const n = num(flag, values[flag as keyof typeof values] as string | undefined);
    if (n !== undefined) (o as unknown as Record<string, number>)[key] = n;
  }
  o.lr = num('lr', values.lr, false) ?? o.lr;
  o.codec = values.codec ?? o.codec;
  o.data = values.data ?? o.data;
  o.out = values.out ?? o.out;
  parseCodec(o.codec); // fail fast with the codec parser's message
  return o;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runSwarm(parseSwarmArgs(process.argv.slice(2))).then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(`\nswarm error: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    },
  );
}
