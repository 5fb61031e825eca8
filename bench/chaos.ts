// `npm run bench:chaos`: every attack of bench/adversary.ts, each by one real worker process among
// honest ones in a local swarm, against an honest run of the same swarm; writes
// bench/results/chaos.json. A scenario passes when the attacker is purged, nobody honest is,
// none of the attacker's work is credited, every step is committed and the final validation loss
// is within 2 % of the honest run's. tests/adversaries.test.ts runs the same scenarios, shorter.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LocalSwarm } from '../cli/local-swarm.js';
import { ECONOMY_DEFAULTS } from '../cli/start.js';
import { SWARM_DEFAULTS, type SwarmOptions, runConfig } from '../cli/swarm.js';
import { ContributionLedger, parseRisk, stepUnits, stepWorkFlops } from '../shared/ledger/index.js';
import { runStageConfigs } from '../shared/swarm/run.js';
import { DEFAULT_DATA } from '../worker/node-corpus.js';
import { ATTACKS, ATTACK_TARGETS, type Attack } from './adversary.js';

const ADVERSARY = fileURLToPath(new URL('./adversary.ts', import.meta.url));
/** How far the final validation loss may be from the honest run's. */
export const LOSS_TOLERANCE = 0.02;

export interface ChaosOptions {
  steps: number;
  honest: number;
  /** Committed steps per settlement epoch (an epoch's units are posted, and no longer forfeit, when it closes). */
  epochSteps: number;
  /** The model the swarm trains, on 2 stages: small, so that the CPU adapter trains it in seconds. */
  model: Pick<SwarmOptions, 'dModel' | 'heads' | 'seq' | 'batch' | 'layers'>;
}

export interface RunOutcome {
  /** Committed steps, in order. */
  steps: number[];
  finalValLoss: number;
  /**
   * The settlement's ledger of this run (coordinator/settlement.ts's rules, without a chain): each
   * committed step credits risk-weighted units by the coordinator's routes, an epoch closes every
   * `epochSteps` and a purged peer forfeits what its open epoch holds. Accounts stand for peer ids.
   */
  ledger: ContributionLedger;
  accountOf(peerId: string): string;
  gone: Array<{ peerId: string; reason: string; afterSteps: number }>;
  adversary?: string;
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

/** One swarm: `honest` honest workers and one more, that attacks with `attack` or is honest too. */
export async function runSwarmWith(o: ChaosOptions, attack?: Attack): Promise<RunOutcome> {
  const out = mkdtempSync(join(tmpdir(), `chaos-${attack ?? 'honest'}-`));
  const run = await runConfig({
    ...SWARM_DEFAULTS,
    ...o.model,
    stages: 2,
    minPerStage: Math.ceil((o.honest + 1) / 2),
    microbatches: 6,
    steps: o.steps,
    averageEvery: 4,
    evalEvery: o.steps,
    evalBatches: 4,
    out,
  });
  const swarm = new LocalSwarm({ run, data: DEFAULT_DATA, out, quickStart: true, coordinator: { auditRate: 1 } });
  const c = swarm.coordinator;
  const risk = parseRisk(ECONOMY_DEFAULTS.risk);
  const flops = runStageConfigs(run).map((cfg) => stepWorkFlops(cfg, 1));
  const accountOf = (peerId: string) => `0x${createHash('sha256').update(peerId).digest('hex').slice(0, 40)}`;
  const result: RunOutcome = { steps: [], finalValLoss: Number.NaN, ledger: new ContributionLedger(), accountOf, gone: [] };
  c.on('commit', (e) => {
    result.steps.push(e.step);
    const work = e.work.map((w) => ({ account: accountOf(w.peerId), stage: w.stage, microbatches: w.microbatches }));
    for (const [account, u] of stepUnits(work, flops, e.step, run.steps, risk)) result.ledger.credit(account, u);
    if (e.step % o.epochSteps === 0 || e.step === run.steps) result.ledger.closeEpoch();
  });
  c.on('purged', (p) => result.ledger.forfeit(accountOf(p.peerId)));
  c.on('evaluated', (e) => e.step === run.steps && (result.finalValLoss = e.valLoss));
  c.on('register', (r) => attack && r.name === `worker-${o.honest}` && (result.adversary = r.peerId));
  // Peers leave when the run is over: only who was lost while it trained counts.
  let over = false;
  void c.trained.then(() => (over = true));
  c.on('peer-gone', (g) => !over && result.gone.push({ peerId: g.peerId, reason: g.reason, afterSteps: result.steps.length }));
  try {
    await swarm.listen();
    // Where the attack is made: activations are sent up by stage 0, gradients down by the last
    // stage. Placement puts a peer on the first stage nobody holds, then on the one with fewer
    // peers: registering first puts the attacker on stage 0, registering after the five honest
    // peers on stage 1. The honest run has as many peers, in the same order.
    let count = 0;
    c.on('register', () => count++);
    const registered = async (n: number) => {
      while (count < n) await new Promise((r) => setTimeout(r, 50));
    };
    const spawnSixth = () => (attack ? swarm.spawn(o.honest, ['--attack', attack], ADVERSARY) : swarm.spawn(o.honest));
    const honestFirst = attack !== undefined && ATTACK_TARGETS[attack] === 'gradients';
    if (honestFirst) {
      for (let i = 0; i < o.honest; i++) swarm.spawn(i);
      await registered(o.honest);
    }
    const w = spawnSixth();
    await Promise.race([
      registered(honestFirst ? o.honest + 1 : 1),
      w.exit.then((code) => Promise.reject(new Error(`worker-${o.honest} exited (${code}) before registering; see ${w.log}`))),
    ]);
    if (!honestFirst) for (let i = 0; i < o.honest; i++) swarm.spawn(i);
    await c.trained;
    // The final evaluation comes in after the last commit.
    for (let t = 0; Number.isNaN(result.finalValLoss) && t < 600; t++) await new Promise((r) => setTimeout(r, 100));
  } finally {
    await swarm.close();
  }
  return result;
}

/** What a scenario's run shows, judged against the honest run. */
export function judge(name: string, honest: RunOutcome, r: RunOutcome, steps: number): ScenarioResult {
  const caught = r.gone.find((g) => g.peerId === r.adversary);
  const blamed = r.gone.filter((g) => g.peerId !== r.adversary);
  const credited = r.adversary ? Number(r.ledger.units(r.accountOf(r.adversary))) : 0;
  const allSteps = r.steps.length === steps && r.steps.every((s, i) => s === i + 1);
  const lossOk = Math.abs(r.finalValLoss - honest.finalValLoss) <= LOSS_TOLERANCE * honest.finalValLoss;
  const notes = [
    caught ? `caught: ${caught.reason}` : 'not caught',
    ...blamed.map((g) => `honest peer ${g.peerId} lost: ${g.reason}`),
    ...(allSteps ? [] : [`committed steps ${r.steps.join(',')}`]),
    ...(lossOk ? [] : [`final validation loss ${r.finalValLoss.toFixed(4)} is not within ${LOSS_TOLERANCE * 100} % of the honest ${honest.finalValLoss.toFixed(4)}`]),
  ].join('; ');
  return {
    name,
    passed: !!caught && caught.reason.startsWith('purged:') && blamed.length === 0 && credited === 0 && allSteps && lossOk,
    detected_after_steps: caught ? caught.afterSteps : null,
    final_val_loss: r.finalValLoss,
    honest_final_val_loss: honest.finalValLoss,
    credited_to_bad_peer: credited,
    notes,
  };
}

export const CHAOS_DEFAULTS: ChaosOptions = { steps: 24, honest: 5, epochSteps: 4, model: { dModel: 32, heads: 2, seq: 16, batch: 4, layers: 2 } };

async function main(): Promise<void> {
  const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const attacks = only.length ? ATTACKS.filter((a) => only.includes(a)) : ATTACKS;
  const o = CHAOS_DEFAULTS;
  process.stdout.write(`chaos: an honest swarm of ${o.honest + 1} workers, ${o.steps} steps, then ${attacks.length} scenario(s) in which one of them attacks\n`);
  const honest = await runSwarmWith(o);
  process.stdout.write(`  honest run: final validation loss ${honest.finalValLoss.toFixed(4)}, ${honest.gone.length} peer(s) lost\n`);
  const scenarios: ScenarioResult[] = [];
  for (const attack of attacks) {
    const t0 = Date.now();
    const s = judge(attack, honest, await runSwarmWith(o, attack), o.steps);
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
