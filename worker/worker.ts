// `npm run worker -- --coordinator wss://HOST:PORT [--data FILE] [--name NAME] [--state-dir DIR]`,
// or `--network NAME|FILE --run ID` instead of --coordinator to find the run on chain: a headless peer. It runs the peer session (shared/peer/session.ts) on the Node host and prints
// what the session reports. Ctrl-C (SIGINT) or SIGTERM is a graceful leave: the peer stops at
// once, keeps its stage's state in --state-dir, hands it over if the swarm needs it, and exits.
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { PeerSession, type SessionOptions } from '../shared/peer/session.js';
import { FrameKind } from '../shared/wire/frame.js';
import { nodeHost } from './node-host.js';
import { DEFAULT_DATA } from '../node/corpus.js';
import { checkListedCorpus, fetchListedCorpus } from '../node/corpus.js';
import { intFlag, numberFlag, readFlags } from '../node/flags.js';
import { loadNetwork } from '../node/network-file.js';
import { priorityFlag, runAt } from '../node/priority.js';
import { findRun } from '../shared/chain/find-run.js';
import { RUN_ID } from '../shared/app/join-run.js';

const USAGE =
  'npm run worker -- --coordinator ws://HOST:PORT | --network NAME|FILE --run ID [--data FILE] [--name NAME] [--state-dir DIR] [--quick-start] [--extra-warmup N] [--leave-after SECONDS] [--priority below-normal|normal]';

const args = readFlags('npm run worker', USAGE, () =>
  checked(
    parseArgs({
      options: {
        coordinator: { type: 'string' },
        /** A network (shared/chain/networks.ts by name, or a network file) and a run of it, found on chain. */
        network: { type: 'string' },
        run: { type: 'string' },
        /** The training text (default: the one the run lists on chain, with --network; else tinyshakespeare). */
        data: { type: 'string' },
        name: { type: 'string', default: `${os.hostname()}-${process.pid}` },
        /** Where this peer keeps its stage states (to resume after a restart) and settlement proofs. */
        'state-dir': { type: 'string' },
        quiet: { type: 'boolean', default: false },
        /**
         * Where to write this peer's loss curves and stats at the end (the local launcher reads them);
         * FILE.work.jsonl gets a line per committed step as it happens (it survives a crash).
         */
        metrics: { type: 'string' },
        'extra-warmup': { type: 'string', default: '0' },
        /**
         * Skip the start-up measurements (the GPU benchmark and matmul autotuning): with a cold shader
         * cache and several workers sharing a CPU they take minutes and measure the contention.
         */
        'quick-start': { type: 'boolean', default: false },
        /** Write the boundary tensors of round 1 as sent and as received (for end-to-end checks). */
        dump: { type: 'string' },
        /** Leave gracefully after this many seconds (for tests and benchmarks of churn). */
        'leave-after': { type: 'string' },
        /** Compute this many times slower (an emulated slow GPU, for benchmarks of stragglers). */
        slowdown: { type: 'string', default: '1' },
        /** The CPU priority this peer trains at (node/priority.ts): below normal yields to what its user runs. */
        priority: { type: 'string', default: 'below-normal' },
      },
      strict: true,
    }).values,
  ),
);

/** The flags' values checked before anything starts (each error names its flag). */
function checked<V extends { coordinator?: string; network?: string; run?: string; 'extra-warmup': string; slowdown: string; 'leave-after'?: string; priority: string }>(v: V) {
  if (!v.coordinator && !(v.network && v.run)) throw new Error('give --coordinator wss://HOST:PORT, or --network NAME|FILE and --run ID to find the run on chain');
  if (v.run !== undefined && !RUN_ID.test(v.run)) throw new Error(`--run ${v.run}: a run id is a positive integer`);
  const slowdown = Number(v.slowdown);
  if (!(slowdown >= 1)) throw new Error(`--slowdown must be a number ≥ 1, got ${v.slowdown}`);
  const leaveAfter = v['leave-after'] === undefined ? undefined : numberFlag('leave-after', v['leave-after']);
  return { ...v, extraWarmup: intFlag('extra-warmup', v['extra-warmup']), slowdown, leaveAfter, priority: priorityFlag(v.priority) };
}

function say(line: string): void {
  if (!args.quiet) process.stdout.write(line);
}

/** Files named by the boundary they cross, so a sender's and a receiver's dump pair up. */
function dumpBoundary(dir: string, stage: () => number | undefined): SessionOptions['onBoundary'] {
  mkdirSync(dir, { recursive: true });
  return (side, kind, round, mb, t) => {
    const s = stage();
    if (round !== 1 || s === undefined || kind === FrameKind.EvalActivation) return;
    // Activations cross from stage s to s+1, gradients from s to s−1: name the boundary by its lower stage.
    const forward = kind !== FrameKind.Gradient;
    const boundary = forward === (side === 'sent') ? s : s - 1;
    writeFileSync(join(dir, `b${boundary}-k${kind}-mb${mb}-${side}.f32`), t);
  };
}

/**
 * The coordinator to join and the text to train on: --coordinator and --data, or the run --network
 * and --run name, as it is listed on chain (--data, if given, must be its text; else it is fetched).
 */
async function whereToJoin(stateDir: string): Promise<{ coordinator: string; data: string }> {
  if (args.coordinator) return { coordinator: args.coordinator, data: args.data ?? DEFAULT_DATA };
  const network = loadNetwork(args.network!);
  const { listing } = await findRun(network, BigInt(args.run!));
  say(`found run ${args.run} on ${network.name}: its coordinator is at ${listing.coordinator}\n`);
  if (!listing.corpusUrl) return { coordinator: listing.coordinator, data: args.data ?? DEFAULT_DATA };
  if (args.data) await checkListedCorpus(args.data, listing);
  return { coordinator: listing.coordinator, data: args.data ?? (await fetchListedCorpus(listing, join(stateDir, 'corpora'))) };
}

/** Run the worker; `hooks` are extra session options (the adversarial test peers use them: bench/adversary.ts). */
export async function main(hooks: Partial<SessionOptions> = {}): Promise<number> {
  const { extraWarmup, slowdown } = args;
  const unlowered = runAt(args.priority);
  if (unlowered) say(`${unlowered}\n`);
  const stateDir = args['state-dir'] ?? join('runs', 'peers', args.name);
  const { coordinator, data } = await whereToJoin(stateDir);
  const host = nodeHost({ data, stateDir, benchmark: !args['quick-start'], env: process.env, log: (l) => say(`\n${l}\n`) });
  const s: PeerSession = new PeerSession(host, {
    coordinator,
    name: args.name,
    extraWarmup,
    slowdown,
    autotune: !args['quick-start'],
    onBoundary: args.dump ? dumpBoundary(args.dump, () => s.stage) : undefined,
    ...hooks,
  });
  print(s);
  if (args.metrics) {
    const work = `${args.metrics}.work.jsonl`;
    s.on('credited', (c) => appendFileSync(work, `${JSON.stringify({ peerId: s.peerId, stage: s.stage, ...c })}\n`));
  }
  const leave = (why: string) => {
    if (s.phase === 'leaving' || s.phase === 'left') return;
    s.leave(why).catch((e: Error) => say(`\nleave failed: ${e.message}\n`));
  };
  process.on('SIGINT', () => leave('interrupted'));
  process.on('SIGTERM', () => leave('terminated'));
  if (args.leaveAfter !== undefined) setTimeout(() => leave(`asked to leave after ${args.leaveAfter} s`), args.leaveAfter * 1000);
  const reason = await s.run();
  const stats = s.stats();
  if (args.metrics) writeFileSync(args.metrics, JSON.stringify({ peerId: s.peerId, stage: stats?.stage, ...s.curves, stats, links: s.links(), phase: s.phase, reason }));
  say(`\n${s.phase}: ${reason}\n`);
  return s.phase === 'failed' || (s.phase === 'stopped' && reason !== 'run complete') ? 1 : 0;
}

/** One status line that updates in place, and a line of its own for everything else worth keeping. */
function print(s: PeerSession): void {
  let stage = '';
  s.on('gpu', ({ report, verdict }) =>
    say(`GPU: ${report.adapter?.description ?? 'none'}${report.bench ? `, ${report.bench.matmulGflops.toFixed(1)} GFLOP/s` : ''}; ${verdict.text}\n`),
  );
  s.on('registered', ({ peerId }) => say(`registered as ${peerId}\n`));
  s.on('assigned', (a) => {
    stage = `stage ${a.stage}/${a.run.stages}`;
    say(`placed on ${stage} of run ${a.run.runId} (state from ${a.state.from})\n`);
  });
  // Setting up reports progress (kernel timing, compiling): one line, updated in place.
  s.on('phase', ({ phase, why }) => phase !== 'training' && say(phase === 'setting-up' ? `\r[${phase}] ${why}   ` : `\n[${phase}] ${why}\n`));
  s.on('swarm', ({ phase, reason }) => phase !== 'training' && say(`\nswarm ${phase}: ${reason}\n`));
  s.on('step', (r) =>
    say(
      `\r${stage} step ${r.step}${r.loss !== undefined ? ` | loss ${r.loss.toFixed(4)}` : ''} | ${r.microbatches} mb | ${Math.round(r.tokensPerSec)} tok/s | busy ${(r.busyFraction * 100).toFixed(0)}%` +
        ` | sent ${(r.bytesSent / 1e6).toFixed(2)} MB, saved ${(r.bytesSaved / 1e6).toFixed(2)} MB   `,
    ),
  );
  s.on('evaluated', ({ step, valLoss }) => say(`\nvalidation loss after step ${step}: ${valLoss.toFixed(4)}\n`));
  s.on('settled', (m) => say(`\nepoch ${m.epoch} settled: ${m.cumulative} units credited to ${m.account}; proof kept (${m.key})\n`));
  s.on('released', ({ ms }) => say(`\nleaving: GPU released in ${Math.round(ms)} ms\n`));
  s.on('served', (m) => say(`served request ${m.requestId} (${m.tokens} tokens) in ${Math.round(m.ms)} ms\n`));
}

/** Exit with the worker's status (a launcher that imports this module runs `main` itself). */
export function exitWith(run: Promise<number>): void {
  run.then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`\nworker error: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    },
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) exitWith(main());
