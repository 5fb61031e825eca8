// `npm run bench:wan [-- --steps N --codecs a,b --links 80mbit-25ms,20mbit-50ms --quick]`: the
// swarm where its users are. The same 2-stage swarm trains on loopback and then with each worker
// in its own network namespace behind a home-like link (bench/net/wan.ts: a real token-bucket rate
// limit, an emulated one-way delay), once per boundary codec: tokens/s against loopback, each
// stage's steady-state busy fraction and wire bytes per token. Then stragglers: a replica slowed
// on purpose, routed by expected finish time against naive round-robin. Writes
// bench/results/wan.json and wan.svg (tokens/s on each link, one line per codec).
// `--plot-only` redraws wan.svg from wan.json.
// Needs root for the namespaces; without it, it says why and exits with 2.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { RoutingPolicy } from '../coordinator/planner.js';
import { makeTestCa } from './net/test-ca.js';
import type { CommitEvent } from '../coordinator/run-control.js';
import { lossPlotSvg } from '../cli/plot.js';
import { SWARM_DEFAULTS, type SwarmHooks, type SwarmOptions, type SwarmResult, runSwarm } from '../cli/swarm.js';
import { codecName, parseCodec } from '../shared/wire/codec.js';
import { COORDINATOR_IP, EmulatedWan, type LinkProfile, cannotEmulate } from './net/wan.js';

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results');
export const LINKS: LinkProfile[] = [
  { name: '80mbit-25ms', rateMbit: 80, oneWayDelayMs: 25 },
  { name: '20mbit-50ms', rateMbit: 20, oneWayDelayMs: 50 },
  // Below the two: where the dense codecs fall off on this machine's slow CPU adapter.
  { name: '5mbit-50ms', rateMbit: 5, oneWayDelayMs: 50 },
];
const CODECS = ['fp32', 'bf16', 'int8', 'subspace:k=16:int8'];
/** Steps left out of throughput: kernels compiling, channels opening, the first averaging. */
const WARMUP_STEPS = 3;

export interface WanRun {
  codec: string;
  tokens_per_s: number;
  loopback_tokens_per_s: number;
  /** Per stage: busy / the span from its first computation to its last in each round (RoundResult.spanMs). */
  steady_busy_fraction: number[];
  /** Per stage: busy / wall time since it joined (fill, drain, averaging and commits included). */
  overall_busy_fraction: number[];
  /** Activation and gradient bytes on the wire per token crossing a boundary, frame headers included. */
  bytes_per_token: number;
  final_val_loss: number;
}

export interface WanLink {
  name: string;
  rate_mbit: number | null;
  one_way_delay_ms: number;
  delay_emulated: boolean;
  runs: WanRun[];
}

/** What one swarm run measured. */
export interface Measured {
  tokensPerS: number;
  /** The step throughput is measured from (to the last). */
  fromStep: number;
  steadyBusy: number[];
  overallBusy: number[];
  bytesPerToken: number;
  finalValLoss: number;
  /** Each worker's stage and the microbatches of committed steps after the warm-up routed through it, by worker name. */
  byWorker: Record<string, { stage: number; microbatches: number }>;
}

/**
 * Throughput after warm-up (or from step `fromStep`, when later), busy fractions by stage and bytes
 * per boundary token, from a run's commits and its workers' stats.
 */
export function measured(r: SwarmResult, commits: CommitEvent[], commitsAt: Map<number, number>, names: Map<string, string>, fromStep = 0): Measured {
  const { model, microbatches, steps } = r.run;
  const from = Math.min(Math.max(WARMUP_STEPS, fromStep), steps - 1);
  const t0 = commitsAt.get(from);
  const t1 = commitsAt.get(steps);
  if (t0 === undefined || t1 === undefined) throw new Error(`the run did not commit steps ${from} and ${steps}`);
  const tokens = (steps - from) * microbatches * model.batch * model.seq;
  const stages = [...new Set(r.peers.map((p) => p.stage))].sort((a, b) => a - b);
  const sum = (stage: number, f: (p: SwarmResult['peers'][number]) => number) => r.peers.filter((p) => p.stage === stage).reduce((s, p) => s + f(p), 0);
  const sent = r.peers.reduce((s, p) => s + p.stats.fwdBytesSent + p.stats.bwdBytesSent, 0);
  const crossed = r.peers.reduce((s, p) => s + p.stats.fwdTokens + p.stats.bwdTokens, 0);
  return {
    tokensPerS: tokens / ((t1 - t0) / 1000),
    fromStep: from,
    steadyBusy: stages.map(
      (s) =>
        sum(s, (p) => p.stats.busyMs) /
        Math.max(
          1,
          sum(s, (p) => p.stats.roundSpanMs),
        ),
    ),
    overallBusy: stages.map(
      (s) =>
        sum(s, (p) => p.stats.busyMs) /
        Math.max(
          1,
          sum(s, (p) => p.stats.wallMs),
        ),
    ),
    bytesPerToken: sent / Math.max(1, crossed),
    finalValLoss: r.val.at(-1)?.[1] ?? Number.NaN,
    byWorker: Object.fromEntries(
      r.peers.map((p) => {
        const microbatches = commits.filter((c) => c.step > from).reduce((n, c) => n + c.work.filter((w) => w.peerId === p.peerId).reduce((m, w) => m + w.microbatches, 0), 0);
        return [names.get(p.peerId) ?? p.peerId, { stage: p.stage, microbatches }];
      }),
    ),
  };
}

export interface WanOptions {
  swarm: SwarmOptions;
  /** Extra flags per worker (e.g. a straggler's --slowdown). */
  workerArgs?(i: number): string[];
  routing?: RoutingPolicy;
}

/** One swarm run, on loopback (no link) or with every worker behind `link`. */
export async function runOn(link: LinkProfile | undefined, o: WanOptions): Promise<Measured> {
  const wan = link && (await EmulatedWan.create(link, o.swarm.workers));
  // Across the emulated internet the coordinator serves wss://, as it must beyond loopback.
  const ca = wan && makeTestCa([COORDINATOR_IP]);
  const commitsAt = new Map<number, number>();
  const commits: CommitEvent[] = [];
  const names = new Map<string, string>();
  const hooks: SwarmHooks = {
    coordinator: { routing: o.routing, ...(ca && { access: { tls: { cert: ca.cert, key: ca.key } } }) },
    ...(ca && { workerEnv: () => ({ NODE_EXTRA_CA_CERTS: ca.caFile }) }),
    local: {
      workerArgs: o.workerArgs,
      ...(wan && { host: COORDINATOR_IP, launch: (i: number, argv: string[]) => wan.wrap(i, argv) }),
    },
    onCoordinator: (c) => {
      c.on('commit', (e) => {
        commitsAt.set(e.step, performance.now());
        commits.push(e);
      });
      c.on('register', (e) => names.set(e.peerId, e.name));
    },
  };
  try {
    return measured(await runSwarm(o.swarm, undefined, hooks), commits, commitsAt, names);
  } finally {
    const last = await wan?.close();
    if (last) process.stdout.write(`  ${last}\n`);
  }
}

function swarmOptions(steps: number, codec: string): SwarmOptions {
  return {
    ...SWARM_DEFAULTS,
    codec,
    steps,
    workers: 2,
    stages: 2,
    minPerStage: 1,
    // The model of bench:swarm (d_model 128, 4 layers), a smaller batch: a step in ~2 s on this CPU adapter.
    batch: 8,
    microbatches: 4,
    averageEvery: 5,
    evalEvery: steps,
    evalBatches: 4,
    extraWarmup: 1,
    quiet: true,
    out: mkdtempSync(join(tmpdir(), 'wan-')),
  };
}

const f2 = (x: number) => Number(x.toFixed(2));
const f3 = (x: number) => Number(x.toFixed(3));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string' },
      codecs: { type: 'string' },
      links: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'skip-stragglers': { type: 'boolean', default: false },
      'plot-only': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values['plot-only']) {
    const saved = JSON.parse(readFileSync(join(RESULTS, 'wan.json'), 'utf8')) as { loopback: WanRun[]; links: WanLink[] };
    writeFileSync(join(RESULTS, 'wan.svg'), plot(saved.loopback, saved.links));
    return;
  }
  const why = cannotEmulate();
  if (why) {
    process.stderr.write(`bench:wan cannot run here: ${why}\n`);
    process.exit(2);
  }
  const steps = Number(values.steps ?? (values.quick ? 8 : 24));
  const codecs = (values.codecs?.split(',') ?? (values.quick ? ['fp32', 'subspace:k=16:int8'] : CODECS)).map((c) => codecName(parseCodec(c)));
  const names = values.links?.split(',') ?? LINKS.map((l) => l.name);
  const links = names.map((n) => LINKS.find((l) => l.name === n) ?? fail(`unknown link ${n}: one of ${LINKS.map((l) => l.name).join(', ')}`));
  const out: WanLink[] = links.map((l) => ({ name: l.name, rate_mbit: l.rateMbit ?? null, one_way_delay_ms: l.oneWayDelayMs, delay_emulated: true, runs: [] }));
  const loopbackRuns: WanRun[] = [];
  for (const codec of codecs) {
    const say = (where: string, m: Measured) =>
      process.stdout.write(
        `${codec} on ${where}: ${m.tokensPerS.toFixed(0)} tok/s, steady busy ${m.steadyBusy.map(f2).join('/')}, ${m.bytesPerToken.toFixed(1)} B/token, val ${m.finalValLoss.toFixed(4)}\n`,
      );
    const lb = await runOn(undefined, { swarm: swarmOptions(steps, codec) });
    say('loopback', lb);
    loopbackRuns.push(row(codec, lb, lb));
    for (const [i, link] of links.entries()) {
      const m = await runOn(link, { swarm: swarmOptions(steps, codec) });
      say(link.name, m);
      out[i].runs.push(row(codec, m, lb));
    }
  }
  const stragglers = values['skip-stragglers'] ? undefined : await measureStragglers(steps);
  const result = { steps, warmup_steps: WARMUP_STEPS, loopback: loopbackRuns, links: out, ...(stragglers && { stragglers }) };
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'wan.json'), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(join(RESULTS, 'wan.svg'), plot(loopbackRuns, out));
  process.stdout.write('wrote bench/results/wan.json and wan.svg\n');
}

function row(codec: string, m: Measured, lb: Measured): WanRun {
  return {
    codec,
    tokens_per_s: f2(m.tokensPerS),
    loopback_tokens_per_s: f2(lb.tokensPerS),
    steady_busy_fraction: m.steadyBusy.map(f3),
    overall_busy_fraction: m.overallBusy.map(f3),
    bytes_per_token: f2(m.bytesPerToken),
    final_val_loss: Number(m.finalValLoss.toFixed(4)),
  };
}

/**
 * Four workers on 2 stages, the second stage-1 replica 3× slower than it could be (worker 3; workers
 * are placed in turn, so it lands on stage 1): expected-finish-time routing against round-robin, on loopback.
 */
async function measureStragglers(steps: number): Promise<{ slowdown: number; routed_tokens_per_s: number; round_robin_tokens_per_s: number }> {
  const slowdown = 3;
  const o = (routing: RoutingPolicy): WanOptions => ({
    swarm: { ...swarmOptions(steps, 'subspace:k=16:int8'), workers: 4, minPerStage: 2 },
    workerArgs: (i) => (i === 3 ? ['--slowdown', String(slowdown)] : []),
    routing,
  });
  const routed = await runOn(undefined, o('finish-time'));
  const rr = await runOn(undefined, o('round-robin'));
  process.stdout.write(`stragglers (one replica ${slowdown}× slower): finish-time routing ${routed.tokensPerS.toFixed(0)} tok/s, round-robin ${rr.tokensPerS.toFixed(0)} tok/s\n`);
  return { slowdown, routed_tokens_per_s: f2(routed.tokensPerS), round_robin_tokens_per_s: f2(rr.tokensPerS) };
}

/** Tokens/s on each link, slowest first, then loopback: a line per codec. */
function plot(loopback: WanRun[], links: WanLink[]): string {
  const order = [...links].sort((a, b) => (a.rate_mbit ?? 0) - (b.rate_mbit ?? 0));
  return lossPlotSvg({
    title: 'tokens/s over home-like links (rate shaped; one-way delay emulated)',
    xLabel: 'link',
    yLabel: 'tokens/s',
    xTicks: [...order.map((l, i): [number, string] => [i, l.name]), [order.length, 'loopback']],
    series: loopback.map((lb) => ({
      name: lb.codec,
      points: [...order.map((l, i): [number, number] => [i, l.runs.find((r) => r.codec === lb.codec)?.tokens_per_s ?? Number.NaN]), [order.length, lb.tokens_per_s]],
    })),
  });
}

function fail(message: string): never {
  throw new Error(message);
}

if (process.argv[1]?.endsWith('wan.ts')) await main();
