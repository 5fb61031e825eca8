// A swarm on this machine: a coordinator in this process and worker processes (worker/worker.ts)
// that come and go on command. The launcher (`npm run swarm`, `npm start`), the churn benchmark and
// the tests drive it: spawn a worker, kill it (SIGKILL: a crash), pause it (SIGTERM: a graceful
// leave), bring it back with the same state directory (it offers the states it kept).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CommitEvent } from '../coordinator/run-control.js';
import { Coordinator, type CoordinatorOptions } from '../coordinator/server.js';
import type { StepWork } from '../shared/ledger/units.js';
import type { RunConfig } from '../shared/run/config.js';
import type { PeerStats } from '../shared/peer/session-events.js';
import type { LinkRecord } from '../shared/peer/link-ledger.js';

const WORKER = fileURLToPath(new URL('../worker/worker.ts', import.meta.url));

export interface LocalSwarmOptions {
  run: RunConfig;
  data: string;
  out: string;
  coordinator?: Omit<CoordinatorOptions, 'run' | 'log'>;
  /** Extra environment of worker i (its payout key and RPC endpoint). */
  workerEnv?(i: number): Record<string, string>;
  /** Workers skip their start-up benchmark and autotuning (see the worker's --quick-start). */
  quickStart?: boolean;
  /** Workers dump round 1's boundary tensors as sent and received into out/boundaries. */
  dump?: boolean;
  extraWarmup?: number;
  /** Where the coordinator listens (default loopback); workers connect there. */
  host?: string;
  /** Worker i's command line from the plain one (e.g. run inside a network namespace: bench/net/wan.ts). */
  launch?(i: number, argv: string[]): string[];
  /** Extra flags of worker i. */
  workerArgs?(i: number): string[];
  /** How worker i finds the run, instead of `--coordinator URL --data FILE` (e.g. `--network FILE --run ID`: bench/internet.ts). */
  joinArgs?(i: number): string[];
}

export interface PeerMetrics {
  peerId: string;
  stage: number;
  train: [number, number][];
  val: [number, number][];
  stats: PeerStats;
  links: LinkRecord[];
  phase: string;
  reason: string;
}

export interface WorkerProcess {
  i: number;
  child: ChildProcess;
  /** Resolves with the exit code (or the signal's name). */
  exit: Promise<number | string>;
  log: string;
  metrics: string;
}

export class LocalSwarm {
  readonly coordinator: Coordinator;
  readonly workers = new Map<number, WorkerProcess>();
  /** Every process ever started, restarts included. */
  readonly history: WorkerProcess[] = [];

  constructor(private readonly o: LocalSwarmOptions) {
    mkdirSync(o.out, { recursive: true });
    const logFile = join(o.out, 'coordinator.log');
    writeFileSync(logFile, '');
    this.coordinator = new Coordinator({ ...o.coordinator, run: o.run, log: (l) => writeFileSync(logFile, `${new Date().toISOString()} ${l}\n`, { flag: 'a' }) });
  }

  /** Listen on an ephemeral loopback port; returns the coordinator's URL. */
  async listen(): Promise<string> {
    await this.coordinator.listen(0, this.o.host);
    return this.coordinator.url!;
  }

  /** Start worker `i` (again: it keeps its state directory, so it offers what it kept). */
  /** `script`: another entry than worker/worker.ts taking the same flags (the adversarial peers of bench/adversary.ts). */
  spawn(i: number, extraArgs: string[] = [], script = WORKER): WorkerProcess {
    if (this.workers.has(i)) throw new Error(`worker ${i} is already running`);
    const o = this.o;
    const log = join(o.out, `worker-${i}.log`);
    const metrics = join(o.out, `worker-${i}.json`);
    const args = [
      '--import',
      'tsx',
      script,
      ...(o.joinArgs?.(i) ?? ['--coordinator', this.coordinator.url!, '--data', o.data]),
      '--name',
      `worker-${i}`,
      '--state-dir',
      join(o.out, 'peers', `worker-${i}`),
      '--metrics',
      metrics,
      '--extra-warmup',
      String(o.extraWarmup ?? 0),
      ...(o.dump ? ['--dump', join(o.out, 'boundaries')] : []),
      ...(o.quickStart ? ['--quick-start'] : []),
      ...(o.workerArgs?.(i) ?? []),
      ...extraArgs,
    ];
    const [command, ...argv] = o.launch?.(i, [process.execPath, ...args]) ?? [process.execPath, ...args];
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.workerEnv?.(i) } });
    writeFileSync(log, `--- started ${new Date().toISOString()} ---\n`, { flag: 'a' });
    const append = (b: Buffer) => writeFileSync(log, b, { flag: 'a' });
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    const exit = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? 1)));
    const w: WorkerProcess = { i, child, exit, log, metrics };
    this.workers.set(i, w);
    this.history.push(w);
    void exit.then(() => this.workers.get(i) === w && this.workers.delete(i));
    return w;
  }

  /** SIGKILL: a crash. SIGTERM: a graceful leave (the worker keeps its state and hands it over if asked). */
  async stop(i: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<number | string> {
    const w = this.workers.get(i);
    if (!w) throw new Error(`worker ${i} is not running`);
    w.child.kill(signal);
    return w.exit;
  }

  /**
   * SIGSTOP: the worker stops answering but its sockets stay open, as when its network drops or
   * its machine hangs; only silence tells. `stop(i, 'SIGKILL')` ends it afterwards.
   */
  freeze(i: number): void {
    const w = this.workers.get(i);
    if (!w) throw new Error(`worker ${i} is not running`);
    w.child.kill('SIGSTOP');
  }

  /** The last lines of a worker's log, for error messages. */
  tail(i: number, lines = 15): string {
    const file = join(this.o.out, `worker-${i}.log`);
    if (!existsSync(file)) return '';
    return readFileSync(file, 'utf8').replace(/\r/g, '\n').split('\n').filter(Boolean).slice(-lines).join('\n');
  }

  /** What each worker wrote when it ended (the last run of each). */
  metrics(): PeerMetrics[] {
    const last = new Map<number, WorkerProcess>();
    for (const w of this.history) last.set(w.i, w);
    // A worker that never trained (it came after the run ended, say) writes no stats: it has no metrics.
    const read = (w: WorkerProcess) => JSON.parse(readFileSync(w.metrics, 'utf8')) as Partial<PeerMetrics>;
    return [...last.values()].flatMap((w) => (existsSync(w.metrics) ? [read(w)] : [])).filter((m): m is PeerMetrics => m.stats !== undefined);
  }

  /**
   * The steps each worker recorded computing (its `.work.jsonl`), as the ledger's step work, so a
   * test or a benchmark can hold them against what the coordinator credited.
   */
  recordedWork(): Array<{ step: number; work: StepWork[] }> {
    // A restarted worker appends to the file of its first run: read each file once.
    const files = new Set(this.history.map((w) => `${w.metrics}.work.jsonl`));
    return [...files].flatMap((file) =>
      existsSync(file)
        ? readFileSync(file, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((line) => {
              const r = JSON.parse(line) as { peerId: string; stage: number; step: number; microbatches: number };
              return { step: r.step, work: [{ account: r.peerId, stage: r.stage, microbatches: r.microbatches }] };
            })
        : [],
    );
  }

  /** Stop every worker (gracefully, then by force after `graceMs`) and the coordinator. */
  async close(graceMs = 10_000): Promise<void> {
    const running = [...this.workers.values()];
    for (const w of running) w.child.kill('SIGTERM');
    const timer = setTimeout(() => running.forEach((w) => w.child.kill('SIGKILL')), graceMs);
    await Promise.all(running.map((w) => w.exit));
    clearTimeout(timer);
    await this.coordinator.close();
  }
}

/** A committed step's work credited to peer ids (the settlement credits accounts), to compare with `recordedWork`. */
export function workByPeer(c: CommitEvent): { step: number; work: StepWork[] } {
  return { step: c.step, work: c.work.map((w) => ({ account: w.peerId, stage: w.stage, microbatches: w.microbatches })) };
}
