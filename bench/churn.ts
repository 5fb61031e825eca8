// `npm run bench:churn [-- --steps 300 --replicas 3 --quick]`: a local swarm (2 stages × 3 worker
// processes) trains while volunteers come and go: a worker is killed (SIGKILL), one hangs (SIGSTOP:
// silent with its sockets open), one pauses (SIGTERM: a graceful leave), a new one joins, then a stage is brought down to its last replica,
// that one is killed and brought back from the state it kept. Every event's detection and recovery
// time, the throughput around it and the microbatches lost or replayed are measured from the
// coordinator's own events; the final validation loss is compared with an undisturbed run of the
// same configuration; every peer's credited units are compared with the work it recorded itself.
// Writes bench/results/churn.json and churn.svg.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalSwarm, workByPeer } from '../cli/local-swarm.js';
import { lossPlotSvg } from '../cli/plot.js';
import { SWARM_DEFAULTS, type SwarmOptions, runConfig } from '../cli/swarm.js';
import type { CommitEvent } from '../coordinator/run-control.js';
import { parseRisk, stepWorkFlops, unitsByAccount } from '../shared/ledger/index.js';
import { runStageConfigs } from '../shared/run/derive.js';
import type { RunConfig } from '../shared/run/config.js';

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results');
const { values } = parseArgs({
  options: { steps: { type: 'string' }, replicas: { type: 'string' }, quick: { type: 'boolean', default: false }, out: { type: 'string' } },
  strict: true,
});
const replicas = Number(values.replicas ?? 3);
// Long enough for every event to recover and be followed by WINDOW steps: a worker takes ~20 s to start here.
const steps = Number(values.steps ?? (values.quick ? 160 : 300));
const opts: SwarmOptions = {
  ...SWARM_DEFAULTS,
  workers: 2 * replicas,
  stages: 2,
  minPerStage: replicas,
  layers: 4,
  dModel: 64,
  heads: 4,
  seq: 32,
  batch: 8,
  microbatches: 2 * replicas,
  steps,
  lr: 3e-3,
  averageEvery: 5,
  evalEvery: Math.max(5, Math.round(steps / 10 / 5) * 5),
  evalBatches: 4,
  quickStart: true,
  quiet: true,
  out: values.out ?? join('runs', 'bench-churn'),
};
const RISK = parseRisk('exp:4');
/** The coordinator's default: a peer silent this long is lost (what detects a hang or a dropped network). */
const HEARTBEAT_TIMEOUT_MS = 10_000;
const WINDOW = 20;
const STEP_TIMEOUT_MS = 10 * 60_000;

type Kind = 'kill' | 'hang' | 'pause' | 'join' | 'last-replica';
interface EventRecord {
  kind: Kind;
  worker: number;
  stage?: number;
  at_step: number;
  detect_s: number;
  recover_s: number;
  tokens_per_s_before: number;
  tokens_per_s_after: number;
  microbatches_lost: number;
  microbatches_replayed: number;
  rounds_discarded: number;
  microbatches_redone: number;
  gpu_released_ms?: number;
  note: string;
}

/** Everything the coordinator says, timestamped. */
class Recorder {
  readonly commits: Array<CommitEvent & { at: number }> = [];
  readonly discarded: Array<{ at: number; round: number; step: number; microbatches: number }> = [];
  readonly gone: Array<{ at: number; peerId: string; name: string; stage: number; graceful: boolean }> = [];
  readonly phases: Array<{ at: number; phase: string; reason: string }> = [];
  readonly val: [number, number][] = [];
  readonly registered: Array<{ at: number; name: string; peerId: string }> = [];
  readonly names = new Map<string, string>(); // peerId → worker name
  readonly peerOf = new Map<string, string>(); // worker name → newest peerId

  constructor(readonly swarm: LocalSwarm) {
    const c = swarm.coordinator;
    c.on('commit', (e) => this.commits.push({ ...e, at: Date.now() }));
    c.on('round-aborted', (e) => {
      const r = c.control.currentRound;
      this.discarded.push({ at: Date.now(), round: e.round, step: e.step, microbatches: r?.round === e.round ? r.routes.length : swarm.coordinator.run.microbatches });
    });
    c.on('peer-gone', (e) => this.gone.push({ at: Date.now(), ...e }));
    c.on('phase', (e) => this.phases.push({ at: Date.now(), ...e }));
    c.on('evaluated', (e) => this.val.push([e.step, e.valLoss]));
    c.on('register', (r) => {
      this.registered.push({ at: Date.now(), name: r.name, peerId: r.peerId });
      this.names.set(r.peerId, r.name);
      this.peerOf.set(r.name, r.peerId);
    });
  }

  get step(): number {
    return this.swarm.coordinator.control.step;
  }

  async until(what: string, done: () => boolean, timeoutMs = STEP_TIMEOUT_MS): Promise<void> {
    const t0 = Date.now();
    while (!done()) {
      const phase = this.swarm.coordinator.phase;
      if (phase === 'finished' || phase === 'stopped') throw new Error(`the run ended (${phase}) before ${what}: give it more --steps`);
      if (Date.now() - t0 > timeoutMs)
        throw new Error(
          `gave up after ${timeoutMs / 1000} s waiting for ${what} (swarm at step ${this.step}, ${this.swarm.coordinator.phase}: ${this.swarm.coordinator.control.reason})`,
        );
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Tokens per second over `n` commits ending at index `end` (exclusive) or starting at `start`. */
  rate(from: number, to: number): number {
    const c = this.commits.slice(Math.max(0, from), Math.min(this.commits.length, to));
    if (c.length < 2) return 0;
    const run = this.swarm.coordinator.run;
    return ((c.length - 1) * run.microbatches * run.model.batch * run.model.seq) / ((c[c.length - 1].at - c[0].at) / 1000);
  }
}

function liveWorkers(rec: Recorder, stage: number): number[] {
  const c = rec.swarm.coordinator.control;
  return [...rec.swarm.workers.keys()].filter((i) => {
    const p = c.peer(rec.peerOf.get(`worker-${i}`) ?? '');
    return p && p.state === 'active' && p.stage === stage;
  });
}

async function event(rec: Recorder, kind: Kind, worker: number, act: () => Promise<void>, recovered: (t0: number) => boolean, note: string): Promise<EventRecord> {
  const peerId = rec.peerOf.get(`worker-${worker}`);
  const stage = peerId ? rec.swarm.coordinator.control.peer(peerId)?.stage : undefined;
  const atStep = rec.step;
  const before = rec.rate(rec.commits.length - WINDOW, rec.commits.length);
  const discarded0 = rec.discarded.length;
  const t0 = Date.now();
  await act();
  await rec.until(`recovery from the ${kind} of worker ${worker}`, () => recovered(t0));
  // A join is "detected" when the coordinator has placed the newcomer; a departure when it has declared the peer gone.
  const detectedAt =
    kind === 'join'
      ? (rec.registered.find((r) => r.name === `worker-${worker}` && r.at >= t0)?.at ?? Date.now())
      : (rec.gone.find((g) => g.peerId === peerId && g.at >= t0)?.at ?? Date.now());
  const firstAfter = rec.commits.findIndex((c) => c.at > Math.max(t0, detectedAt));
  await rec.until(`${WINDOW} steps after the ${kind}`, () => rec.commits.length >= firstAfter + WINDOW || rec.step >= rec.swarm.coordinator.run.steps);
  const discarded = rec.discarded.slice(discarded0).filter((d) => d.at <= rec.commits[firstAfter]?.at);
  return {
    kind,
    worker,
    stage,
    at_step: atStep,
    detect_s: +((detectedAt - t0) / 1000).toFixed(3),
    recover_s: +((rec.commits[firstAfter].at - t0) / 1000).toFixed(3),
    tokens_per_s_before: +before.toFixed(1),
    tokens_per_s_after: +rec.rate(firstAfter, firstAfter + WINDOW).toFixed(1),
    microbatches_lost: 0,
    microbatches_replayed: 0,
    rounds_discarded: discarded.length,
    microbatches_redone: discarded.reduce((s, d) => s + d.microbatches, 0),
    note,
  };
}

/** The churn scenario; returns its events. */
async function churn(rec: Recorder): Promise<EventRecord[]> {
  const swarm = rec.swarm;
  const run = swarm.coordinator.run;
  const at = (f: number) => Math.max(WINDOW + 2, Math.round(f * run.steps));
  const events: EventRecord[] = [];
  const reached = (s: number) => rec.until(`step ${s}`, () => rec.step >= s);
  const nextCommitAfter = (t0: number) => rec.commits.some((c) => c.at > t0);
  const goneAfter = (worker: number) => (t0: number) => rec.gone.some((g) => g.name === `worker-${worker}` && g.at >= t0) && nextCommitAfter(t0);

  await reached(at(0.15));
  const victim = liveWorkers(rec, 1)[0];
  events.push(await event(rec, 'kill', victim, async () => void swarm.stop(victim, 'SIGKILL'), goneAfter(victim), 'SIGKILL of a stage-1 replica'));

  await reached(at(0.22));
  const hung = liveWorkers(rec, 0)[0];
  events.push(
    await event(
      rec,
      'hang',
      hung,
      async () => swarm.freeze(hung),
      goneAfter(hung),
      `SIGSTOP of a stage-0 replica: silent, its sockets open (a dropped network or a frozen machine); lost after the ${HEARTBEAT_TIMEOUT_MS / 1000} s heartbeat timeout`,
    ),
  );
  await swarm.stop(hung, 'SIGKILL');

  await reached(at(0.3));
  const pauser = liveWorkers(rec, 0)[0];
  events.push(await event(rec, 'pause', pauser, async () => void swarm.stop(pauser, 'SIGTERM'), goneAfter(pauser), 'SIGTERM: graceful leave of a stage-0 replica'));
  events.at(-1)!.gpu_released_ms = await releasedMs(swarm, pauser);

  await reached(at(0.4));
  const joiner = Math.max(...swarm.history.map((w) => w.i)) + 1;
  events.push(
    await event(
      rec,
      'join',
      joiner,
      async () => void swarm.spawn(joiner),
      (t0) => rec.commits.some((c) => c.at > t0 && c.work.some((w) => rec.names.get(w.peerId) === `worker-${joiner}` && w.microbatches > 0)),
      'a new worker: placed, loads its stage from a replica, catches up at the next averaging',
    ),
  );
  events.at(-1)!.stage = rec.swarm.coordinator.control.peer(rec.peerOf.get(`worker-${joiner}`)!)?.stage;

  // Bring the thinner stage down to one replica (graceful leaves), then kill that one and bring it back.
  await reached(at(0.6));
  const thin = [0, 1].sort((a, b) => liveWorkers(rec, a).length - liveWorkers(rec, b).length)[0];
  const [last, ...others] = liveWorkers(rec, thin);
  for (const w of others) {
    events.push(await event(rec, 'pause', w, async () => void swarm.stop(w, 'SIGTERM'), goneAfter(w), `SIGTERM: graceful leave, leaving stage ${thin} one replica`));
    events.at(-1)!.gpu_released_ms = await releasedMs(swarm, w);
  }
  const stepBefore = rec.step;
  const e = await event(
    rec,
    'last-replica',
    last,
    async () => {
      await swarm.stop(last, 'SIGKILL');
      await rec.until(`the run to pause for stage ${thin}`, () => swarm.coordinator.phase === 'paused');
      swarm.spawn(last);
    },
    nextCommitAfter,
    `SIGKILL of stage ${thin}'s last replica; the same worker restarted from the state it kept`,
  );
  // The stage came back at the state its peer kept (its last averaging point): that stage lost
  // the updates of the steps after it; no other stage rolled back, and no step was redone.
  const back = swarm.coordinator.control.peer(rec.peerOf.get(`worker-${last}`)!);
  const resumedFrom = back?.readyStep ?? 0;
  e.microbatches_lost = (stepBefore - resumedFrom) * run.microbatches;
  e.note += `; stage ${thin} resumed from its state at step ${resumedFrom}, the run was at step ${stepBefore}: the stage lost ${stepBefore - resumedFrom} steps of updates`;
  events.push(e);
  return events;
}

/** How long the worker's graceful leave took to free the GPU, from its own log (once it has exited). */
async function releasedMs(swarm: LocalSwarm, worker: number): Promise<number | undefined> {
  await swarm.history.filter((w) => w.i === worker).at(-1)?.exit;
  const text = readFileSync(join(opts.out, 'churn', `worker-${worker}.log`), 'utf8');
  const m = [...text.matchAll(/GPU released in (\d+) ms/g)].at(-1);
  return m ? Number(m[1]) : undefined;
}

/** Steps committed more than once, and steps whose committed work does not cover every microbatch at every stage. */
function audit(commits: CommitEvent[], run: RunConfig): { replayed: number; incomplete: number } {
  const seen = new Map<number, number>();
  let incomplete = 0;
  for (const c of commits) {
    seen.set(c.step, (seen.get(c.step) ?? 0) + 1);
    for (let s = 0; s < run.stages; s++) if (c.work.filter((w) => w.stage === s).reduce((n, w) => n + w.microbatches, 0) !== run.microbatches) incomplete++;
  }
  const replayed = [...seen.values()].reduce((n, k) => n + (k - 1), 0) * run.microbatches;
  return { replayed, incomplete };
}

/** Units by peer from the coordinator's commits (credited) and from each worker's own record of what it computed (work). */
function credits(rec: Recorder, run: RunConfig): Array<{ peer: string; worker: string; credited_units: number; work_units: number; killed?: boolean }> {
  const flops = runStageConfigs(run).map((c) => stepWorkFlops(c, 1));
  const credited = unitsByAccount(rec.commits.map(workByPeer), flops, run.steps, RISK);
  const work = unitsByAccount(rec.swarm.recordedWork(), flops, run.steps, RISK);
  const peers = [...new Set([...credited.keys(), ...work.keys()])];
  // A killed peer's own record stops at the kill: the step it applied as it died may be missing from it.
  const killed = new Set(rec.gone.filter((g) => !g.graceful && g.at < rec.commits.at(-1)!.at).map((g) => g.peerId));
  return peers.map((p) => ({
    peer: p,
    worker: rec.names.get(p) ?? '?',
    credited_units: Number(credited.get(p) ?? 0n),
    work_units: Number(work.get(p) ?? 0n),
    ...(killed.has(p) && { killed: true }),
  }));
}

async function scenario(name: 'churn' | 'undisturbed', run: RunConfig) {
  const out = join(opts.out, name);
  rmSync(out, { recursive: true, force: true });
  const swarm = new LocalSwarm({ run, data: opts.data, out, coordinator: { heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS }, quickStart: true });
  const rec = new Recorder(swarm);
  await swarm.listen();
  for (let i = 0; i < opts.workers; i++) swarm.spawn(i);
  const ticker = setInterval(
    () => process.stdout.write(`\r${name}: step ${rec.step}/${run.steps} [${swarm.coordinator.phase}] ${swarm.coordinator.control.reason.slice(0, 80).padEnd(80)}`),
    1000,
  );
  try {
    const events = name === 'churn' ? await churn(rec) : [];
    await swarm.coordinator.trained;
    swarm.coordinator.stopRun();
    await Promise.all([...swarm.workers.values()].map((w) => w.exit));
    return { rec, events, stats: swarm.coordinator.stats };
  } finally {
    clearInterval(ticker);
    await swarm.close();
    process.stdout.write('\n');
  }
}

async function main(): Promise<void> {
  mkdirSync(RESULTS, { recursive: true });
  const run = await runConfig(opts);
  console.log(
    `churn bench: ${opts.stages} stages × ${replicas} workers, d_model ${opts.dModel}, ${opts.layers} layers, ${run.microbatches} microbatches of ${opts.batch}×${opts.seq} tokens per step, ${steps} steps`,
  );
  const base = await scenario('undisturbed', { ...run, runId: 'churn-undisturbed' });
  const churned = await scenario('churn', { ...run, runId: 'churn' });
  const audited = audit(churned.rec.commits, run);
  for (const e of churned.events) e.microbatches_replayed = audited.replayed; // 0 unless a step was committed twice
  const result = {
    config: {
      stages: opts.stages,
      replicas,
      d_model: opts.dModel,
      n_layer: opts.layers,
      seq: opts.seq,
      microbatch_size: opts.batch,
      microbatches_per_step: run.microbatches,
      steps,
      average_every: opts.averageEvery,
      heartbeat_timeout_s: HEARTBEAT_TIMEOUT_MS / 1000,
      delay: 'loopback, no shaping',
    },
    events: churned.events,
    steps_committed_twice: audited.replayed / run.microbatches,
    steps_with_missing_microbatches: audited.incomplete,
    final_val_loss: churned.rec.val.at(-1)?.[1],
    undisturbed_final_val_loss: base.rec.val.at(-1)?.[1],
    val_loss_gap: churned.rec.val.at(-1)![1] / base.rec.val.at(-1)![1] - 1,
    credits: credits(churned.rec, run),
    coordinator_weight_bytes: churned.stats.binaryBytesReceived,
    wall_s: {
      undisturbed: +((base.rec.commits.at(-1)!.at - base.rec.commits[0].at) / 1000).toFixed(1),
      churn: +((churned.rec.commits.at(-1)!.at - churned.rec.commits[0].at) / 1000).toFixed(1),
    },
  };
  writeFileSync(join(RESULTS, 'churn.json'), `${JSON.stringify(result, null, 2)}\n`);
  const curve = (r: Recorder) => r.commits.filter((c) => c.loss !== undefined).map((c) => [c.step, c.loss!] as [number, number]);
  writeFileSync(
    join(RESULTS, 'churn.svg'),
    lossPlotSvg({
      title: `loss under churn: ${churned.events.map((e) => `${e.kind}@${e.at_step}`).join(', ')}`,
      width: 960,
      series: [
        { name: 'undisturbed', points: curve(base.rec) },
        { name: 'churn', points: curve(churned.rec) },
        { name: 'val (undisturbed)', points: base.rec.val },
        { name: 'val (churn)', points: churned.rec.val },
      ],
    }),
  );
  for (const e of result.events)
    console.log(
      `${e.kind.padEnd(13)} worker ${e.worker} (stage ${e.stage}) at step ${e.at_step}: detected in ${e.detect_s} s, recovered in ${e.recover_s} s, ${e.tokens_per_s_before} → ${e.tokens_per_s_after} tok/s, lost ${e.microbatches_lost}, replayed ${e.microbatches_replayed}, discarded rounds ${e.rounds_discarded}${e.gpu_released_ms !== undefined ? `, GPU released in ${e.gpu_released_ms} ms` : ''}`,
    );
  console.log(
    `final validation loss ${result.final_val_loss?.toFixed(4)} vs undisturbed ${result.undisturbed_final_val_loss?.toFixed(4)} (${(result.val_loss_gap * 100).toFixed(2)} %)`,
  );
  const exact = result.credits.filter((c) => !c.killed).every((c) => c.credited_units === c.work_units);
  console.log(`credited = recorded work for every peer not killed: ${exact}; coordinator weight bytes ${result.coordinator_weight_bytes}`);
  console.log(`wrote ${join(RESULTS, 'churn.json')} and churn.svg`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`\nbench error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
