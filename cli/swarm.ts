// `npm run swarm -- --workers N --stages S [--codec C] [--data FILE] [--steps N] ...`: a whole
// local swarm on loopback. Starts a coordinator in this process and N worker processes that
// train the run together over WebRTC; prints live progress; writes curves, stats and a plot.
// Training starts as soon as every stage has --min-per-stage peers ready; the others join as
// they come (they load their stage's state from a replica and catch up at the next averaging).
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { Coordinator, CoordinatorOptions } from '../coordinator/server.js';
import { charCorpus } from '../shared/engine/data.js';
import { DEFAULT_ADAMW } from '../shared/engine/optimizer.js';
import { splitLayers } from '../shared/run/derive.js';
import { parseCodec } from '../shared/wire/codec.js';
import { DEFAULT_DATA, loadText } from '../node/corpus.js';
import { intFlag, numberFlag, readFlags, stringOptions } from '../node/flags.js';
import { LocalSwarm, type LocalSwarmOptions, type PeerMetrics } from './local-swarm.js';
import { lossPlotSvg } from './plot.js';
import { formatIssues } from '../shared/base/issues.js';
import { type RunConfig, RunConfigSchema } from '../shared/run/config.js';

export type { PeerMetrics };

export interface SwarmOptions {
  workers: number;
  stages: number;
  /** Peers every stage needs before training starts. */
  minPerStage: number;
  codec: string;
  data: string;
  steps: number;
  layers: number;
  dModel: number;
  heads: number;
  seq: number;
  batch: number;
  /** Microbatches per global step, whoever computes them. */
  microbatches: number;
  lr: number;
  averageEvery: number;
  evalEvery: number;
  evalBatches: number;
  seed: number;
  out: string;
  quiet?: boolean;
  /** Workers dump round 1's boundary tensors as sent and received into out/boundaries. */
  dump?: boolean;
  /**
   * Workers skip their start-up benchmark and matmul autotuning (the worker's --quick-start). The
   * default for a swarm on one machine: its workers share the CPU, so what they would measure is
   * each other, and on a cold shader cache timing every variant takes tens of minutes.
   */
  quickStart?: boolean;
  extraWarmup?: number;
}

/** How a launcher plugs the chain into a swarm (see cli/start.ts); the swarm itself stays chain-agnostic. */
export interface SwarmHooks {
  coordinator?: Pick<CoordinatorOptions, 'chain' | 'inference' | 'store' | 'routing' | 'access' | 'ice'>;
  /** Extra environment of worker i (its payout key and RPC endpoint). */
  workerEnv?(i: number): Record<string, string>;
  /** Called once the coordinator exists, before any worker starts (e.g. to attach settlement). */
  onCoordinator?(c: Coordinator): void;
  /** How workers are started and where the coordinator listens (see LocalSwarmOptions). */
  local?: Pick<LocalSwarmOptions, 'host' | 'launch' | 'workerArgs' | 'joinArgs'>;
  /** Called once the coordinator listens, before any worker starts (e.g. to serve the dashboard). */
  onListening?(url: string): Promise<void>;
  /**
   * Workers start this far apart. Peers from the network that arrive together are taken for one
   * operator's sybils and never judge each other (coordinator/roster.ts, BURST_MS): a swarm standing
   * in for volunteers across the internet must arrive as they would, one by one.
   */
  spawnGapMs?: number;
  /** With run.serve: runs after training while the swarm serves queries; the swarm stops when it resolves. */
  afterTraining?(c: Coordinator): Promise<void>;
}

export const SWARM_DEFAULTS: SwarmOptions = {
  workers: 4,
  stages: 2,
  minPerStage: 1,
  codec: 'subspace:k=16:int8',
  data: DEFAULT_DATA,
  steps: 100,
  layers: 4,
  dModel: 128,
  heads: 4,
  seq: 64,
  batch: 16,
  microbatches: 4,
  lr: 3e-3,
  averageEvery: 5,
  evalEvery: 25,
  evalBatches: 4,
  seed: 1,
  out: 'runs/swarm',
  quickStart: true,
};

export interface SwarmResult {
  run: RunConfig;
  peers: PeerMetrics[];
  wallMs: number;
  /** Mean training loss of every committed step, as the coordinator saw it. */
  loss: [number, number][];
  /** Validation loss after the steps it was measured at. */
  val: [number, number][];
  coordinator: { binaryBytesReceived: number; badMessages: number; messagesIn: number };
  /** Ctrl-C stopped it before its last step (nothing was served after). */
  stopped: boolean;
}

export async function runConfig(o: SwarmOptions): Promise<RunConfig> {
  const t = await loadText(o.data);
  const vocab = charCorpus(t.text).vocab.length;
  const run = {
    runId: `swarm-${Date.now().toString(36)}`,
    model: { vocab, dModel: o.dModel, nHead: o.heads, nLayer: o.layers, seq: o.seq, batch: o.batch },
    stages: o.stages,
    layersPerStage: splitLayers(o.layers, o.stages),
    microbatches: o.microbatches,
    minPerStage: o.minPerStage,
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
  if (!parsed.success) throw new Error(`invalid run: ${formatIssues('run', parsed.error)}`);
  return parsed.data;
}

export async function runSwarm(o: SwarmOptions, given?: RunConfig, hooks: SwarmHooks = {}): Promise<SwarmResult> {
  const run = given ?? (await runConfig(o));
  mkdirSync(o.out, { recursive: true });
  const log = (line: string) => !o.quiet && process.stdout.write(line);
  const swarm = new LocalSwarm({
    run,
    data: o.data,
    out: o.out,
    // On a shared CPU a busy peer can be slow to answer; a crashed one is seen at once (its socket closes).
    coordinator: { heartbeatTimeoutMs: 30_000, ...hooks.coordinator },
    workerEnv: hooks.workerEnv,
    quickStart: o.quickStart,
    dump: o.dump,
    extraWarmup: o.extraWarmup,
    ...hooks.local,
  });
  const coord = swarm.coordinator;
  hooks.onCoordinator?.(coord);
  const url = await swarm.listen();
  await hooks.onListening?.(url);
  log(`coordinator on ${url}: ${o.workers} workers, ${o.stages} stages (${run.layersPerStage.join('+')} layers), codec ${o.codec}, ${o.steps} steps\n`);
  const loss: [number, number][] = [];
  const val: [number, number][] = [];
  coord.on('commit', (c) => c.loss !== undefined && loss.push([c.step, c.loss]));
  coord.on('evaluated', (e) => val.push([e.step, e.valLoss]));
  const t0 = performance.now();
  for (let i = 0; i < o.workers; i++) {
    if (i && hooks.spawnGapMs) await new Promise((r) => setTimeout(r, hooks.spawnGapMs));
    swarm.spawn(i);
  }
  const ticker = setInterval(() => log(`\r${progressLine(coord)}   `), 1000);
  let stopped = false;
  const onSigint = () => {
    stopped = true;
    void swarm.close();
  };
  process.once('SIGINT', onSigint);
  try {
    // Ctrl-C closes the coordinator under `trained`: the run then ends here, with what it committed.
    await Promise.race([coord.trained, allWorkersGone(swarm)]).catch((e: unknown) => {
      if (!stopped) throw e;
    });
    clearInterval(ticker);
    if (run.serve && !stopped) await Promise.race([hooks.afterTraining?.(coord), allWorkersGone(swarm)]);
    if (!stopped) coord.stopRun('run complete');
    await Promise.all([...swarm.workers.values()].map((w) => w.exit));
  } finally {
    clearInterval(ticker);
    process.removeListener('SIGINT', onSigint);
    await swarm.close();
  }
  const wallMs = performance.now() - t0;
  const s = coord.stats;
  const result: SwarmResult = {
    run,
    peers: swarm.metrics(),
    wallMs,
    loss,
    val,
    coordinator: { binaryBytesReceived: s.binaryBytesReceived, badMessages: s.badMessages, messagesIn: s.messagesIn },
    stopped,
  };
  writeFileSync(join(o.out, 'result.json'), JSON.stringify(result, null, 2));
  const series = [
    { name: 'training (swarm mean)', points: loss },
    { name: 'validation', points: val },
  ].filter((x) => x.points.length);
  if (series.length) writeFileSync(join(o.out, 'loss.svg'), lossPlotSvg({ title: `swarm: ${o.workers} workers, ${o.stages} stages, ${o.codec}`, series }));
  log(`\nfinished in ${(wallMs / 1000).toFixed(1)} s; final validation loss ${val.at(-1)?.[1].toFixed(4) ?? 'n/a'}; results in ${o.out}/\n`);
  return result;
}

/** One line of swarm progress: phase and why, step, losses, throughput and who is where. */
export function progressLine(c: Coordinator): string {
  const p = c.progress();
  const live = p.peers.filter((q) => q.state !== 'gone');
  const f = (x: number | undefined, d = 4) => (x === undefined ? '–' : x.toFixed(d));
  const head = p.phase === 'training' ? `step ${p.step}/${p.steps}` : `[${p.phase}] ${p.reason}`;
  return `${head} | loss ${f(p.loss)} | val ${f(p.valLoss)} | ${Math.round(p.tokensPerSec ?? 0)} tok/s | peers ${live.map((q) => `s${q.stage}:${q.state[0]}`).join(' ')}`;
}

/** Rejects when no worker is left running: the run cannot go on. */
async function allWorkersGone(swarm: LocalSwarm): Promise<never> {
  for (;;) {
    const running = [...swarm.workers.values()];
    if (running.length === 0) break;
    await Promise.race(running.map((w) => w.exit));
  }
  const last = swarm.history.at(-1);
  throw new Error(`every worker has exited${last ? `; the last one (worker ${last.i}) ended with: ${swarm.tail(last.i)}` : ''}`);
}

/** The flags that take a whole number ≥ 0, and the option each sets. */
const INT_FLAGS = {
  workers: 'workers',
  stages: 'stages',
  'min-per-stage': 'minPerStage',
  'extra-warmup': 'extraWarmup',
  steps: 'steps',
  layers: 'layers',
  'd-model': 'dModel',
  heads: 'heads',
  seq: 'seq',
  batch: 'batch',
  microbatches: 'microbatches',
  'average-every': 'averageEvery',
  'eval-every': 'evalEvery',
  'eval-batches': 'evalBatches',
  seed: 'seed',
} as const satisfies Record<string, keyof SwarmOptions>;

export const SWARM_USAGE =
  'npm run swarm -- [--workers 4 --stages 2 --min-per-stage 1 --codec subspace:k=16:int8 --data FILE --steps N --layers L --d-model D --heads H --seq T --batch B --microbatches M --lr X --average-every N --eval-every N --eval-batches N --extra-warmup N --seed N --out DIR --tune]';

export function parseSwarmArgs(argv: string[]): SwarmOptions {
  const ints = Object.keys(INT_FLAGS) as (keyof typeof INT_FLAGS)[];
  const options = { ...stringOptions([...ints, 'codec', 'data', 'lr', 'out']), tune: { type: 'boolean' as const } };
  const { values } = parseArgs({ args: argv, options, strict: true });
  const o = { ...SWARM_DEFAULTS };
  for (const flag of ints) if (values[flag] !== undefined) o[INT_FLAGS[flag]] = intFlag(flag, values[flag]);
  if (values.lr !== undefined) o.lr = numberFlag('lr', values.lr);
  o.codec = values.codec ?? o.codec;
  o.data = values.data ?? o.data;
  o.out = values.out ?? o.out;
  if (values.tune) o.quickStart = false;
  parseCodec(o.codec); // fail fast with the codec parser's message
  return o;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // Ctrl-C stops the swarm (runSwarm closes it); the process then ends with the shell's code for an interrupt.
  let interrupted = false;
  // Kept, not once: tsx passes a terminal's Ctrl-C on again, and with no listener left the second would kill the process.
  process.on('SIGINT', () => {
    interrupted = true;
  });
  runSwarm(readFlags('npm run swarm', SWARM_USAGE, () => parseSwarmArgs(process.argv.slice(2)))).then(
    () => process.exit(interrupted ? 130 : 0),
    (e: unknown) => {
      if (interrupted) process.exit(130);
      console.error(`\nswarm error: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    },
  );
}
