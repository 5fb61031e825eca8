// `npm run bench:chaos`: every attack of bench/adversary.ts, each by one real worker process among
// honest ones in a local swarm, against an honest run of the same swarm; writes
// bench/results/chaos.json. A scenario passes when the attacker is purged, nobody honest is,
// none of the attacker's work is credited, every step is committed and the final validation loss
// is within 2 % of the honest run's. tests/adversaries.test.ts runs the same scenarios, shorter.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LocalSwarm } from '../cli/local-swarm.js';
import { ECONOMY_DEFAULTS } from '../cli/start.js';
import { SWARM_DEFAULTS, type SwarmOptions, runConfig } from '../cli/swarm.js';
import { ContributionLedger, parseRisk, stepUnits, stepWorkFlops } from '../shared/ledger/index.js';
import { runStageConfigs } from '../shared/run/derive.js';
import { DEFAULT_DATA } from '../node/corpus.js';
import { HELD_EPOCHS } from '../coordinator/settlement.js';
import { ATTACK_MADE, ATTACKS, ATTACK_TARGETS, type Attack, CONTAINED } from './adversary.js';

const ADVERSARY = fileURLToPath(new URL('./adversary.ts', import.meta.url));
/** A scenario's swarm trains in ~20 s here; past this it is stuck. */
const TRAIN_LIMIT_MS = 300_000;
/** How far the final validation loss may be from the honest run's. */
export const LOSS_TOLERANCE = 0.02;

export interface ChaosOptions {
  steps: number;
  honest: number;
  /** Committed steps per settlement epoch (an epoch's units are posted, and no longer forfeit, when it closes). */
  epochSteps: number;
  /** The model the swarm trains, on 2 stages: small, so that the CPU adapter trains it in seconds. */
  model: Pick<SwarmOptions, 'dModel' | 'heads' | 'seq' | 'batch' | 'layers'>;
  /** The coordinator's audit rate (1 here: every routed peer audited every round) and the run's seed. */
  auditRate?: number;
  seed?: number;
}

export interface RunOutcome {
  /** Committed steps, in order. */
  steps: number[];
  finalValLoss: number;
  /**
   * The settlement's ledger of this run (coordinator/settlement.ts's rules, without a chain): each
   * committed step credits risk-weighted units by the coordinator's routes, an epoch closes every
   * `epochSteps`, held HELD_EPOCHS closes, and a purged peer forfeits what is not settled. Accounts stand for peer ids.
   */
  ledger: ContributionLedger;
  accountOf(peerId: string): string;
  gone: Array<{ peerId: string; reason: string; afterSteps: number }>;
  /** Registrations the coordinator refused. */
  refused: Array<{ name: string; reason: string; afterSteps: number }>;
  /** The attackers' peer ids, once registered (two for a lane of colluders). */
  adversaries: string[];
  /** Each peer's stage, as commits credited it. */
  stageOf: Map<string, number>;
  /** When training started, then when each step committed (ms since the swarm listened). */
  commitMs: number[];
  /** Microbatches computed in committed steps (each stage's share counted), and audits the coordinator asked for. */
  computed: number;
  audits: number;
  /** The last lines of the log of each attacker whose connection closed on its own (why it left). */
  leftLogs: string[];
  /** Peers whose weights a replica left out of an average (outlier-votes.ts). */
  leftOut: Set<string>;
  /** The attackers whose log says they made their attack (adversary.ts ATTACK_MADE; only attacks that may not get to write it). */
  madeBy: string[];
  /**
   * The honest peer that joined mid-run (a poisoned-state scenario): its log, whether it got ready
   * with a state the coordinator took, and why the coordinator had it load again, if it did.
   */
  joiner?: { log: string; ready: boolean; reloaded?: string };
}

export interface ScenarioResult {
  name: string;
  passed: boolean;
  detected_after_steps: number | null;
  final_val_loss: number;
  honest_final_val_loss: number;
  credited_to_bad_peer: number;
  notes: string;
}

/**
 * How long the coordinator lets a placed peer set up in the never-computes scenario (15 min by
 * default). It holds for the honest peers too: a worker loads a stage here in 4–13 s when six start at once.
 */
const LURKER_READY_MS = 30_000;

/**
 * One swarm of `honest` + 1 workers (12 for colluding witnesses: pass `honest` 11 for the honest run to compare them with). With `attack`, one of them
 * attacks from inside the worker (frames, reports), or two colluding ones (a lane, a stage's
 * witnesses), or, for an impostor (registration, never computes), all
 * are honest and the impostor comes as one more client once they have registered.
 */
export async function runSwarmWith(o: ChaosOptions, attack?: Attack): Promise<RunOutcome> {
  const out = mkdtempSync(join(tmpdir(), `chaos-${attack ?? 'honest'}-`));
  const target = attack && ATTACK_TARGETS[attack];
  // Two colluding witnesses are a third of a stage of six: that swarm has 12 workers.
  const total = target === 'witnesses' ? 12 : o.honest + 1;
  const run = await runConfig({
    ...SWARM_DEFAULTS,
    ...o.model,
    stages: 2,
    minPerStage: Math.ceil(total / 2),
    seed: o.seed ?? SWARM_DEFAULTS.seed,
    microbatches: 6,
    steps: o.steps,
    averageEvery: 4,
    evalEvery: 1,
    evalBatches: 4,
    out,
  });
  const squatter = target === 'place' || target === 'flood';
  const impostor = target === 'registration' || squatter;
  const coordinator = { auditRate: o.auditRate ?? 1, ...(squatter && { readyTimeoutMs: LURKER_READY_MS }) };
  const swarm = new LocalSwarm({ run, data: DEFAULT_DATA, out, quickStart: true, coordinator });
  const c = swarm.coordinator;
  const risk = parseRisk(ECONOMY_DEFAULTS.risk);
  const flops = runStageConfigs(run).map((cfg) => stepWorkFlops(cfg, 1));
  const accountOf = (peerId: string) => `0x${createHash('sha256').update(peerId).digest('hex').slice(0, 40)}`;
  const pair = target === 'lane' || target === 'witnesses' || target === 'state';
  const honestCount = total - (pair ? 2 : 1);
  const attackers = pair ? [total - 2, total - 1] : [impostor ? total : total - 1];
  const attackerNames = attackers.map((i) => `worker-${i}`);
  const result: RunOutcome = {
    ...{ steps: [], finalValLoss: Number.NaN, ledger: new ContributionLedger(HELD_EPOCHS), accountOf, gone: [], refused: [], adversaries: [] },
    ...{ stageOf: new Map(), commitMs: [], computed: 0, audits: 0, leftLogs: [], leftOut: new Set(), madeBy: [] },
  };
  const t0 = Date.now();
  c.on('commit', (e) => {
    result.steps.push(e.step);
    result.commitMs.push(Date.now() - t0);
    for (const w of e.work) result.stageOf.set(w.peerId, w.stage);
    result.computed += e.work.reduce((n, w) => n + w.microbatches, 0);
    const work = e.work.map((w) => ({ account: accountOf(w.peerId), stage: w.stage, microbatches: w.microbatches }));
    for (const [account, u] of stepUnits(work, flops, e.step, run.steps, risk)) result.ledger.credit(account, u);
    if (e.step % o.epochSteps === 0 || e.step === run.steps) result.ledger.closeEpoch({ final: e.step === run.steps });
  });
  c.on('purged', (p) => result.ledger.forfeit(accountOf(p.peerId)));
  c.on('phase', (p) => p.phase === 'training' && result.commitMs.length === 0 && result.commitMs.push(Date.now() - t0));
  c.on('evaluated', (e) => e.step === run.steps && (result.finalValLoss = e.valLoss));
  const workerOf = new Map<string, number>();
  const joiner = { i: o.honest + 1, peerId: '' };
  c.on('register', (r) => {
    if (target === 'state' && r.name === `worker-${joiner.i}`) joiner.peerId = r.peerId;
    if (!attack || !attackerNames.includes(r.name)) return;
    result.adversaries.push(r.peerId);
    workerOf.set(r.peerId, attackers[attackerNames.indexOf(r.name)]);
  });
  c.on('refused', (r) => result.refused.push({ ...r, afterSteps: result.steps.length }));
  // Peers leave when the run is over: only who was lost while it trained counts.
  let over = false;
  void c.trained.then(() => (over = true));
  c.on('peer-gone', (g) => (!over || result.adversaries.includes(g.peerId)) && result.gone.push({ peerId: g.peerId, reason: g.reason, afterSteps: result.steps.length }));
  try {
    await swarm.listen();
    let arrived = 0;
    c.on('register', () => arrived++);
    c.on('refused', () => arrived++);
    const arrivals = async (n: number) => {
      while (arrived < n) await new Promise((r) => setTimeout(r, 50));
    };
    const spawnHonestFrom = (first: number, n: number, args: string[] = []) => {
      const before = arrived;
      for (let i = first; i < first + n; i++) swarm.spawn(i, args);
      return arrivals(before + n);
    };
    const spawnHonest = (n: number) => spawnHonestFrom(0, n);
    const spawnAttacker = async (i: number, args: string[], after: number) => {
      const w = swarm.spawn(i, ['--attack', attack!, ...args], ADVERSARY);
      const exited = w.exit.then((code) => (arrived > after ? undefined : Promise.reject(new Error(`worker-${i} exited (${code}) before registering; see ${w.log}`))));
      await Promise.race([arrivals(after + 1), exited]);
    };
    const colluders = join(out, 'colluders');
    writeFileSync(colluders, '');
    if (!attack) {
      await spawnHonest(o.honest + 1);
    } else if (target === 'witnesses') {
      // Placement fills the stage with fewer peers, the first on a tie: colluder, honest, colluder puts both on stage 0.
      await spawnAttacker(attackers[0], ['--colluders', colluders, '--lead'], 0);
      await spawnHonest(1);
      await spawnAttacker(attackers[1], ['--colluders', colluders], 2);
      await spawnHonestFrom(1, honestCount - 1);
    } else if (squatter) {
      // Once the run trains (the short time to get ready then applies to the impostor alone).
      const training = new Promise<void>((resolve) => c.on('phase', (p) => p.phase === 'training' && resolve()));
      await spawnHonest(o.honest + 1);
      await training;
      await spawnAttacker(o.honest + 1, [], o.honest + 1);
    } else if (impostor) {
      // The victim: an honest peer's session key, and an account whose key the impostor lacks.
      await spawnHonest(o.honest + 1);
      const victim = c.control.live()[0];
      await spawnAttacker(o.honest + 1, ['--victim-key', victim.key, '--victim-account', accountOf(victim.peerId)], o.honest + 1);
    } else if (target === 'lane') {
      // Registering first, one after the other, puts the colluders on the two stages nobody holds.
      await spawnAttacker(attackers[0], [], 0);
      await spawnAttacker(attackers[1], [], 1);
      await spawnHonest(o.honest - 1);
    } else if (target === 'state') {
      // A poisoner on each stage (registering first, one after the other), the first its stage's
      // joiner asks; a joiner once the run trains (the state it gets is a replica's: the seed until
      // the first averaging, an averaged one after).
      // Computing as slowly as a real model's stage (STATE_SLOWDOWN): the tiny model's 24 steps are
      // over within the seconds a joiner takes to compile its kernels, before it asks for a state.
      const slow = ['--slowdown', String(STATE_SLOWDOWN)];
      const training = new Promise<void>((resolve) => c.on('commit', () => resolve()));
      await spawnAttacker(attackers[0], slow, 0);
      await spawnAttacker(attackers[1], slow, 1);
      await spawnHonestFrom(0, honestCount, slow);
      await training;
      await spawnHonestFrom(joiner.i, 1);
    } else if (target === 'gradients' || target === 'reports') {
      // Gradients are sent down by the last stage (which also receives every kind of frame). Placement puts a peer on the first stage nobody
      // holds, then on the one with fewer peers: registering after the five honest peers puts the
      // attacker on stage 1.
      await spawnHonest(o.honest);
      await spawnAttacker(o.honest, [], o.honest);
    } else {
      // Activations are sent up by stage 0: registering first puts the attacker there.
      await spawnAttacker(o.honest, [], 0);
      await spawnHonest(o.honest);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`the swarm did not train within ${TRAIN_LIMIT_MS / 1000} s (${c.control.phase}: ${c.control.reason}); logs in ${out}`)),
        TRAIN_LIMIT_MS,
      );
    });
    await Promise.race([c.trained, stuck]).finally(() => clearTimeout(timer));
    // A peer that never gets ready is dropped by time, not steps: a short run may end first.
    const lurking = () => target === 'place' && !result.gone.some((g) => result.adversaries.includes(g.peerId));
    for (let t = 0; lurking() && t < (LURKER_READY_MS + 10_000) / 100; t++) await new Promise((r) => setTimeout(r, 100));
    // The final evaluation comes in after the last commit.
    for (let t = 0; Number.isNaN(result.finalValLoss) && t < 600; t++) await new Promise((r) => setTimeout(r, 100));
  } finally {
    await swarm.close();
  }
  for (const [id, i] of workerOf) {
    if (existsSync(join(out, `worker-${i}.log`)) && readFileSync(join(out, `worker-${i}.log`), 'utf8').includes(ATTACK_MADE)) result.madeBy.push(id);
    // Before the run ended: every peer's connection closes once it is over.
    if (result.gone.some((g) => g.peerId === id && g.reason === 'connection closed' && g.afterSteps < o.steps)) result.leftLogs.push(`worker-${i}: ${swarm.tail(i, 8)}`);
  }
  const log = readFileSync(join(out, 'coordinator.log'), 'utf8');
  if (joiner.peerId) {
    const reloaded = new RegExp(`${joiner.peerId} loaded a state of stage \\d+ at step \\d+ its replicas do not vouch for \\((.*)\\): loading again`).exec(log)?.[1];
    result.joiner = { log: readFileSync(join(out, `worker-${joiner.i}.log`), 'utf8'), ready: log.includes(`${joiner.peerId} ready on stage`), reloaded };
  }
  result.audits = (log.match(/: p\S+ audits p\S+'s microbatch/g) ?? []).length;
  for (const m of log.matchAll(/\sp\S+ left (p\S+)'s weights out of the average/g)) result.leftOut.add(m[1]);
  return result;
}

/**
 * How the attackers were caught, if they were as their attack should be: purged, refused at
 * registration, or dropped for never getting ready; or never routed at all. Of two colluders, one
 * purged is enough if the other earned no more than an honest replica (a lane colluder never
 * routed, a voucher never asked).
 * The reason is the first one's; the steps, the last one's.
 */
export function caughtAs(name: string, r: RunOutcome): { reason: string; afterSteps: number; expected: boolean; contained?: boolean } | undefined {
  const target = ATTACK_TARGETS[name as Attack];
  if (target === 'registration') {
    const refused = r.refused[0];
    return refused && { ...refused, expected: r.adversaries.length === 0 };
  }
  // A flood from one address: refused past the address's limits, and no squatter let in was ever routed.
  if (target === 'flood') {
    const refused = r.refused.find((x) => /per address|in the last minute/.test(x.reason));
    return refused && { ...refused, expected: r.adversaries.every((id) => !r.stageOf.has(id)) };
  }
  const gone = r.adversaries.map((id) => ({ id, g: r.gone.find((g) => g.peerId === id) }));
  const purged = gone.flatMap(({ g }) => (g?.reason.startsWith('purged:') ? [g] : []));
  // An attacker in no committed round all run (its channels to its assigned witnesses never opened,
  // or every channel it had was cut) did no harm and earned nothing, though nothing could catch it either.
  if (target !== 'place' && purged.length === 0 && gone.length > 0 && gone.every(({ id }) => !r.stageOf.has(id))) {
    return { reason: 'never routed: no round through it committed', afterSteps: 0, expected: true };
  }
  // An attacker on weights whose channel to all but one replica never opened: one replica's finding
  // convicts nobody (it could lie), but its weights were left out and its state loaded again.
  if (target === 'weights' && purged.length === 0 && r.adversaries.every((id) => r.leftOut.has(id))) {
    const harmless = r.adversaries.every((id) => outEarnsNoHonest(r, id));
    return { reason: 'left out: its weights reached one replica, which left them out of the average', afterSteps: 0, expected: harmless, contained: true };
  }
  // A poisoned state is refused by the joiner it is given (or loaded again at the coordinator's
  // word), which shows the coordinator its sender's seal: having reported another hash for that
  // step, the sender is purged. The joiner then gets ready with an honest replica's state.
  if (target === 'state') {
    if (!r.joiner?.ready) return undefined;
    if (r.madeBy.length === 0) return { reason: 'never made: the joiner loaded its state from an honest replica first', afterSteps: 0, expected: true, contained: true };
    const poisoners = purged.filter((g) => r.madeBy.includes(g.peerId));
    if (poisoners.length < r.madeBy.length) return { reason: 'a poisoner that gave its state was not purged', afterSteps: 0, expected: false };
    return { reason: poisoners[0].reason, afterSteps: Math.max(...poisoners.map((g) => g.afterSteps)), expected: true };
  }
  // Different weights to different replicas needs two linked: one whose channel to all but one never opened never made it.
  if (name === 'equivocate-weights' && purged.length === 0 && r.madeBy.length === 0) {
    const harmless = r.adversaries.every((id) => outEarnsNoHonest(r, id));
    return { reason: 'never made: it never had two replicas to send different weights to', afterSteps: 0, expected: harmless, contained: true };
  }
  if (target === 'lane' || target === 'witnesses') {
    if (purged.length === 0) return undefined;
    const harmless = gone.every(({ id, g }) => g?.reason.startsWith('purged:') || outEarnsNoHonest(r, id));
    return { reason: purged[0].reason, afterSteps: Math.max(...purged.map((g) => g.afterSteps)), expected: harmless };
  }
  if (gone.length === 0 || gone.some(({ g }) => !g)) return undefined;
  const expected = gone.every(({ g }) => g!.reason.startsWith(target === 'place' ? 'not ready' : 'purged:'));
  return { reason: gone[0].g!.reason, afterSteps: Math.max(...gone.map(({ g }) => g!.afterSteps)), expected };
}

/**
 * The attackers whose earnings an attack is judged by: for a poisoned state, the poisoners that gave
 * one (the other is there only so a joiner on either stage meets one, and never attacks); else all.
 */
export function actors(name: string, r: RunOutcome): string[] {
  return ATTACK_TARGETS[name as Attack] === 'state' && r.madeBy.length ? r.madeBy : r.adversaries;
}

/** The units of the honest replicas of `peerId`'s stage in `r`, fewest first. */
function honestUnits(r: RunOutcome, peerId: string): number[] {
  const stage = r.stageOf.get(peerId);
  return [...r.stageOf]
    .filter(([id, s]) => s === stage && !r.adversaries.includes(id))
    .map(([id]) => Number(r.ledger.units(r.accountOf(id))))
    .sort((a, b) => a - b);
}

/** The units of the median honest replica of `peerId`'s stage in `r`. */
export function medianHonestUnits(r: RunOutcome, peerId: string): number {
  const units = honestUnits(r, peerId);
  return units[Math.floor(units.length / 2)] ?? 0;
}

/**
 * How far above the best-paid honest replica of its stage an attacker not purged may earn: routing
 * noise on an equal share (honest replicas of one stage earn 250 to 490 units in a run of 12).
 */
export const SHARE_NOISE = 1.1;

/** Whether `peerId` earned no more than the best-paid honest replica of its stage, within SHARE_NOISE (one never routed earned nothing). */
export function outEarnsNoHonest(r: RunOutcome, peerId: string): boolean {
  return Number(r.ledger.units(r.accountOf(peerId))) <= SHARE_NOISE * (honestUnits(r, peerId).at(-1) ?? 0);
}

/**
 * What a scenario's run shows, judged against the honest run (of the same size). A caught attacker
 * must earn nothing (what it did is forfeit while held); a contained one (CONTAINED), caught or
 * not, no more than the best-paid honest replica of its stage (within SHARE_NOISE).
 */
export function judge(name: string, honest: RunOutcome, r: RunOutcome, steps: number): ScenarioResult {
  const caught = caughtAs(name, r);
  const blamed = r.gone.filter((g) => !r.adversaries.includes(g.peerId));
  const credited = actors(name, r).reduce((sum, id) => sum + Number(r.ledger.units(r.accountOf(id))), 0);
  const contained = CONTAINED.has(name as Attack) || !!caught?.contained;
  const earnedOk = contained ? r.adversaries.every((id) => outEarnsNoHonest(r, id)) : ATTACK_TARGETS[name as Attack] === 'witnesses' ? !!caught?.expected : credited === 0;
  const allSteps = r.steps.length === steps && r.steps.every((s, i) => s === i + 1);
  const lossOk = Math.abs(r.finalValLoss - honest.finalValLoss) <= LOSS_TOLERANCE * honest.finalValLoss;
  const notes = [
    caught ? `caught: ${caught.reason}` : contained ? 'not purged (contained)' : 'not caught',
    ...blamed.map((g) => `honest peer ${g.peerId} lost: ${g.reason}`),
    ...(allSteps ? [] : [`committed steps ${r.steps.join(',')}`]),
    ...r.leftLogs.map((l) => `an attacker left on its own; its log ends: ${l}`),
    ...(lossOk ? [] : [`final validation loss ${r.finalValLoss.toFixed(4)} is not within ${LOSS_TOLERANCE * 100} % of the honest ${honest.finalValLoss.toFixed(4)}`]),
  ].join('; ');
  return {
    name,
    passed: (contained || !!caught?.expected) && blamed.length === 0 && earnedOk && allSteps && lossOk,
    detected_after_steps: caught ? caught.afterSteps : null,
    final_val_loss: r.finalValLoss,
    honest_final_val_loss: honest.finalValLoss,
    credited_to_bad_peer: credited,
    notes,
  };
}

/** How many times slower the first peers of a state scenario compute, so its joiner joins while the run trains. */
const STATE_SLOWDOWN = 8;

export const CHAOS_DEFAULTS: ChaosOptions = { steps: 24, honest: 5, epochSteps: 4, model: { dModel: 32, heads: 2, seq: 16, batch: 4, layers: 2 } };

async function main(): Promise<void> {
  const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const attacks = only.length ? ATTACKS.filter((a) => only.includes(a)) : ATTACKS;
  const o = CHAOS_DEFAULTS;
  process.stdout.write(`chaos: an honest swarm of ${o.honest + 1} workers, ${o.steps} steps, then ${attacks.length} scenario(s) in which one of them attacks (two for a lane)\n`);
  const honest = await runSwarmWith(o);
  process.stdout.write(`  honest run: final validation loss ${honest.finalValLoss.toFixed(4)}, ${honest.gone.length} peer(s) lost\n`);
  // Colluding witnesses attack a swarm of 12: they are judged against an honest run of that size.
  const ofTwelve = attacks.some((a) => ATTACK_TARGETS[a] === 'witnesses') ? await runSwarmWith({ ...o, honest: 11 }) : honest;
  const scenarios: ScenarioResult[] = [];
  for (const attack of attacks) {
    const t0 = Date.now();
    const s = judge(attack, ATTACK_TARGETS[attack] === 'witnesses' ? ofTwelve : honest, await runSwarmWith(o, attack), o.steps);
    scenarios.push(s);
    process.stdout.write(
      `  ${s.passed ? 'pass' : 'FAIL'}  ${attack.padEnd(20)} detected after ${s.detected_after_steps ?? '-'} step(s), val loss ${s.final_val_loss.toFixed(4)}, credited ${s.credited_to_bad_peer} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n        ${s.notes}\n`,
    );
  }
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'chaos.json'), `${JSON.stringify({ config: o, honest_final_val_loss: honest.finalValLoss, scenarios }, null, 2)}\n`);
  process.stdout.write(`wrote bench/results/chaos.json: ${scenarios.filter((s) => s.passed).length}/${scenarios.length} passed\n`);
  process.exitCode = scenarios.every((s) => s.passed) ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
