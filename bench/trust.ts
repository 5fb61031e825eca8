// `npm run bench:trust [ATTACK ...] [--seeds N] [--honest-runs N] [--update]`: every attack of
// bench/adversary.ts, each by real attacker processes among honest workers (bench/chaos.ts runs
// one swarm), over several seeds, at the default audit rate (0.25), against honest runs of the same
// swarm; writes bench/results/trust.json:
//   honest_runs, honest_peers_purged, audit_overhead_fraction (audits over microbatches computed:
//   each audit recomputes one microbatch of one stage), and per attack: runs, passed_runs, caught_runs,
//   median_detect_steps, honest_purged, attacker_units_vs_honest (the attacker's units over the
//   median honest replica's of its stage, the worst run, and the mean over runs), final_val_loss_gap
//   (against the honest run of the same seed and size, the worst run) and longest_stall_s (the
//   longest wait for a commit after training started); local_attacks: the attacks on the
//   volunteer's own machine (bench/local-attacks.ts: dns-rebinding, hold-open-coordinator), tried
//   as many times as there are seeds. `--update` re-measures the attacks named and replaces their
//   rows of the file (see updated()).
// Targets (issue 19): no honest peer purged in any run; per attack units < 1 (0 when caught), a
// stall ≤ 30 s, the final validation loss within 2 % of the honest runs'.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ATTACKS, ATTACK_TARGETS, type Attack, CONTAINED } from './adversary.js';
import { CHAOS_DEFAULTS, type ChaosOptions, type RunOutcome, actors, caughtAs, judge, medianHonestUnits, runSwarmWith } from './chaos.js';
import { holdOpenRun, type Probe, rebindingRun } from './local-attacks.js';

export interface AttackResult {
  name: string;
  /** What beats it: the attacker purged (or refused, or dropped for never getting ready), or contained (chaos.ts CONTAINED). */
  expected: 'caught' | 'contained';
  colluders: number;
  runs: number;
  /** Runs the chaos judge passed (chaos.ts judge: beaten as expected, nobody honest blamed, no step lost, the loss within 2 %). */
  passed_runs: number;
  /** What the judge said of each run it did not pass. */
  failed_notes: string[];
  caught_runs: number;
  /** Of the runs caught, those in which the attacker was never routed (its channels to its assigned witnesses never opened): no harm, nothing earned. */
  never_routed_runs: number;
  /** Runs in which an attacker on weights reached one replica only (which left its weights out, or no second one to equivocate to): nothing provable, no harm done. */
  left_out_runs: number;
  median_detect_steps: number | null;
  honest_purged: number;
  attacker_units_vs_honest: number;
  /** The same ratio averaged over the runs: what the attack earns in expectation. */
  mean_units_vs_honest: number;
  final_val_loss_gap: number;
  longest_stall_s: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const purgedHonest = (r: RunOutcome) => r.gone.filter((g) => !r.adversaries.includes(g.peerId) && g.reason.startsWith('purged')).length;
const longestStallS = (r: RunOutcome) => Math.max(0, ...r.commitMs.slice(1).map((t, i) => t - r.commitMs[i])) / 1000;
/** Past the target: where in the run, so its logs can be read at that step. */
const STALL_TARGET_S = 30;
const stallNote = (r: RunOutcome): string[] => {
  const gaps = r.commitMs.slice(1).map((t, i) => t - r.commitMs[i]);
  const at = gaps.indexOf(Math.max(0, ...gaps));
  return longestStallS(r) > STALL_TARGET_S ? [`stalled ${longestStallS(r).toFixed(1)} s after step ${r.steps[at - 1] ?? 0} was committed`] : [];
};

/** One attack's runs (seeds 1, 2, …), judged against the honest runs of the same seeds. */
export function summarize(name: Attack, runs: RunOutcome[], honest: RunOutcome[], steps: number): AttackResult {
  const judged = runs.map((r, i) => judge(name, honest[i], r, steps));
  const beaten = runs.map((r) => caughtAs(name, r)).filter((c) => c?.expected);
  const caught = beaten.filter((c) => !c!.contained);
  const unitsVsHonest = runs.map((r) => Math.max(0, ...actors(name, r).map((id) => Number(r.ledger.units(r.accountOf(id))) / Math.max(1, medianHonestUnits(r, id)))));
  return {
    name,
    expected: CONTAINED.has(name) ? 'contained' : 'caught',
    colluders: ['lane', 'witnesses', 'state'].includes(ATTACK_TARGETS[name]) ? 2 : 1,
    runs: runs.length,
    passed_runs: judged.filter((j) => j.passed).length,
    failed_notes: judged.flatMap((j, i) => [...(j.passed ? [] : [j.notes]), ...stallNote(runs[i])].map((n) => `run ${i + 1}: ${n}`)),
    caught_runs: caught.length,
    never_routed_runs: caught.filter((c) => c!.reason.startsWith('never routed')).length,
    left_out_runs: beaten.length - caught.length,
    median_detect_steps: caught.length ? median(caught.map((c) => c!.afterSteps)) : null,
    honest_purged: runs.reduce((n, r) => n + purgedHonest(r), 0),
    attacker_units_vs_honest: Math.max(...unitsVsHonest),
    mean_units_vs_honest: unitsVsHonest.reduce((a, b) => a + b, 0) / unitsVsHonest.length,
    final_val_loss_gap: Math.max(...runs.map((r, i) => Math.abs(r.finalValLoss - honest[i].finalValLoss) / honest[i].finalValLoss)),
    longest_stall_s: Math.max(...runs.map(longestStallS)),
  };
}

/** An attack on the volunteer's own machine (bench/local-attacks.ts), not on the swarm: beaten when every try of it failed. */
export interface LocalAttackResult {
  name: string;
  /** Its number in issue 19's list. */
  issue_attack: number;
  runs: number;
  caught_runs: number;
  detail: string;
}

/** #12 and #13, `runs` times each. */
async function localAttacks(runs: number): Promise<LocalAttackResult[]> {
  const probes = [];
  const closeMs = [];
  for (let i = 0; i < runs; i++) {
    probes.push(await rebindingRun());
    closeMs.push(await holdOpenRun());
  }
  const refused = (ps: Probe[]) => ps.every((p) => (p.status === 421 || p.status === 403) && !p.leaked);
  const statuses = [...new Set(probes.flat().map((p) => p.status))].sort().join(' or ');
  return [
    {
      name: 'dns-rebinding',
      issue_attack: 12,
      runs,
      caught_runs: probes.filter(refused).length,
      detail: `${probes.flat().filter((p) => !p.leaked).length} of ${probes.flat().length} requests for /config.json (the local keys) and /machine (the processes), under a rebinding name, from another site's page and as a cross-site fetch, answered ${statuses} with nothing of either`,
    },
    {
      name: 'hold-open-coordinator',
      issue_attack: 13,
      runs,
      caught_runs: closeMs.filter((ms) => ms <= 5000).length,
      detail: `the coordinator closed in at most ${Math.max(...closeMs)} ms with a half-sent handshake, a silent socket and a client deaf to the close handshake connected (limit 5000 ms)`,
    },
  ];
}

type TrustJson = {
  honest_runs: number;
  honest_final_val_loss: number;
  honest_peers_purged: number;
  audit_overhead_fraction: number;
  attacks: AttackResult[];
  local_attacks: LocalAttackResult[];
};

/** A row measured before the bench kept the judge's notes of the runs it did not pass. */
const withNotes = (a: AttackResult): AttackResult => ({
  ...a,
  failed_notes: a.failed_notes ?? (a.passed_runs === a.runs ? [] : ['not recorded: measured before the bench kept the judge’s notes']),
});

/**
 * `--update`: the attacks measured now replace their rows of the file's, in place; the file's
 * honest runs stand, and honest peers purged now (in honest runs or attacks) are added to its count
 * after taking out the count of the rows replaced.
 */
function updated(before: TrustJson, now: TrustJson): TrustJson {
  const replaced = before.attacks.filter((a) => now.attacks.some((n) => n.name === a.name));
  const purgedNow = now.honest_peers_purged;
  return {
    ...before,
    honest_peers_purged: before.honest_peers_purged - replaced.reduce((n, a) => n + a.honest_purged, 0) + purgedNow,
    attacks: [
      ...before.attacks.map((a) => now.attacks.find((n) => n.name === a.name) ?? withNotes(a)),
      ...now.attacks.filter((n) => !before.attacks.some((a) => a.name === n.name)),
    ],
    local_attacks: now.local_attacks.length ? now.local_attacks : (before.local_attacks ?? []),
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { seeds: { type: 'string', default: '3' }, 'honest-runs': { type: 'string', default: '10' }, update: { type: 'boolean', default: false } },
    allowPositionals: true,
  });
  const seeds = Number(values.seeds);
  const honestRuns = values.update ? seeds : Math.max(seeds, Number(values['honest-runs']));
  const attacks = positionals.length ? ATTACKS.filter((a) => positionals.includes(a)) : ATTACKS;
  const o: ChaosOptions = { ...CHAOS_DEFAULTS, auditRate: 0.25 };
  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(
    `trust: swarms of ${o.honest + 1} workers on 2 stages, ${o.steps} steps, audit rate ${o.auditRate}: ${honestRuns} honest runs, then ${attacks.length} attack(s) × ${seeds} seed(s)`,
  );
  let restarts = 0;
  // A swarm that cannot train at all (a worker process died while setting up, as Dawn on lavapipe
  // sometimes does on a loaded machine) is run again once, and counted.
  const run = async (opts: ChaosOptions, attack?: Attack): Promise<RunOutcome> => {
    try {
      return await runSwarmWith(opts, attack);
    } catch (e) {
      restarts++;
      say(`  ${attack ?? 'honest'} run, seed ${opts.seed}: ${(e as Error).message}; running it again`);
      return runSwarmWith(opts, attack);
    }
  };
  const local = positionals.length === 0 || positionals.some((p) => ['dns-rebinding', 'hold-open-coordinator'].includes(p)) ? await localAttacks(seeds) : [];
  for (const l of local) say(`  ${l.name.padEnd(20)} refused ${l.caught_runs}/${l.runs}: ${l.detail}`);
  const honest: RunOutcome[] = [];
  for (let seed = 1; seed <= (attacks.length ? honestRuns : 0); seed++) {
    const r = await run({ ...o, seed });
    honest.push(r);
    say(`  honest run ${seed}/${honestRuns}: final validation loss ${r.finalValLoss.toFixed(4)}, ${purgedHonest(r)} purged, longest stall ${longestStallS(r).toFixed(1)} s`);
  }
  // Colluding witnesses attack a swarm of 12 (two stages of six): their runs are compared with honest ones of that size.
  const honestOfSix: RunOutcome[] = [];
  for (let seed = 1; seed <= seeds && attacks.some((a) => ATTACK_TARGETS[a] === 'witnesses'); seed++) {
    const r = await run({ ...o, honest: 11, seed });
    honestOfSix.push(r);
    say(
      `  honest run of 12 workers ${seed}/${seeds}: final validation loss ${r.finalValLoss.toFixed(4)}, ${purgedHonest(r)} purged, longest stall ${longestStallS(r).toFixed(1)} s`,
    );
  }
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'trust.json');
  const before: TrustJson | undefined = values.update ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
  const results: AttackResult[] = [];
  // Written after every attack: a bench that dies late keeps what it measured.
  const write = () => {
    const computed = honest.reduce((n, r) => n + r.computed, 0);
    const out: TrustJson & Record<string, unknown> = {
      config: { ...o, seeds },
      honest_runs: honest.length,
      honest_final_val_loss: honest.reduce((s, r) => s + r.finalValLoss, 0) / honest.length,
      honest_peers_purged: [...honest, ...honestOfSix].reduce((n, r) => n + purgedHonest(r), 0) + results.reduce((n, r) => n + r.honest_purged, 0),
      audit_overhead_fraction: honest.reduce((n, r) => n + r.audits, 0) / Math.max(1, computed),
      restarted_runs: restarts,
      complete: results.length === attacks.length,
      attacks: results,
      local_attacks: local,
    };
    if (before) Object.assign(out, updated(before, out));
    writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
    return out;
  };
  for (const attack of attacks) {
    const runs: RunOutcome[] = [];
    for (let seed = 1; seed <= seeds; seed++) runs.push(await run({ ...o, seed }, attack));
    const s = summarize(attack, runs, ATTACK_TARGETS[attack] === 'witnesses' ? honestOfSix : honest, o.steps);
    results.push(s);
    say(
      `  ${attack.padEnd(20)} passed ${s.passed_runs}/${s.runs}, caught ${s.caught_runs}/${s.runs} (median step ${s.median_detect_steps ?? '-'}), honest purged ${s.honest_purged}, units vs honest ${s.attacker_units_vs_honest.toFixed(2)} (mean ${s.mean_units_vs_honest.toFixed(2)}), loss gap ${(100 * s.final_val_loss_gap).toFixed(2)} %, longest stall ${s.longest_stall_s.toFixed(1)} s${s.failed_notes.map((n) => `\n      ${n}`).join('')}`,
    );
    write();
  }
  const out = write();
  say(
    `wrote bench/results/trust.json: ${out.honest_peers_purged} honest peer(s) purged; audits cost ${(100 * out.audit_overhead_fraction).toFixed(1)} % of the compute; ${restarts} run(s) started again`,
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
