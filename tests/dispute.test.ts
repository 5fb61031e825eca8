// What a dispute over an audited microbatch decides (shared/trust/dispute.ts), played out to its end
// for every stage size from 2 to 12 replicas, with colluders up to a third of them taking every
// role (false accuser, cheater, voucher on the panel, false accuser on the panel) and lying in
// every way a finding can: no honest replica is ever purged, and a colluder whose word is tested
// against the truth is purged unless nobody independent can settle it.
import { describe, expect, it } from 'vitest';
import { type Audit, type DisputeRules, type Outcome, onFinding, settleLate } from '../shared/trust/dispute.js';
import { Rng } from './fuzz/rng.js';

interface Scene {
  replicas: string[];
  colluders: Set<string>;
  /** Whether the accused's microbatch really is wrong (it cheated). */
  cheated: boolean;
}

/** How a replica finds the microbatch: honest ones tell the truth, colluders say what helps their side. */
function finding(s: Scene, witness: string, accused: string): boolean {
  if (!s.colluders.has(witness)) return !s.cheated;
  return s.colluders.has(accused); // cover a fellow colluder, accuse anyone else
}

type Said = { ok: boolean; missing?: true };

/** Run the dispute a first witness opens to its end; returns the peers purged and whether it was unresolved. */
function play(
  s: Scene,
  accused: string,
  accuser: string,
  rng: Rng,
  says: (witness: string) => Said = (w) => ({ ok: finding(s, w, accused) }),
): { purged: string[]; unresolved: boolean } {
  const rules: DisputeRules = {
    witnesses: (p) => s.replicas.filter((q) => q !== p),
    independent: () => true,
    tolerated: () => Math.max(1, Math.floor(s.replicas.length / 3)),
    random: () => rng.next(),
  };
  const audits: Audit[] = [{ peer: accused, witness: accuser, microbatch: 0 }];
  const pending: Audit[] = [audits[0]];
  let out: Outcome = { kind: 'wait' };
  while (pending.length) {
    const a = pending.splice(rng.int(0, pending.length), 1)[0];
    const { ok, missing } = says(a.witness);
    const reason = ok ? 'agrees' : missing ? `no bundle from ${accused}` : 'cos 0.1';
    out = onFinding(audits, a.witness, { type: 'verdict', round: 1, microbatch: 0, peer: accused, ok, reason, ...(missing && { missing }) }, rules);
    if (out.kind === 'panel') {
      audits.push(...out.audits);
      pending.push(...out.audits);
    }
    if (out.kind === 'convict' || out.kind === 'unresolved' || out.kind === 'commit') break;
  }
  return { purged: out.kind === 'convict' ? out.guilty.map((g) => g.peer) : [], unresolved: out.kind === 'unresolved' };
}

describe('disputes', () => {
  it('never purge an honest replica, with up to a third of a stage colluding in every role', () => {
    const rng = new Rng(19);
    let decided = 0;
    let colludersPurged = 0;
    for (let n = 2; n <= 12; n++) {
      const replicas = Array.from({ length: n }, (_, i) => `r${i}`);
      for (let c = 1; c <= Math.max(1, Math.floor(n / 3)); c++) {
        for (let trial = 0; trial < 60; trial++) {
          const shuffled = [...replicas].sort(() => rng.next() - 0.5);
          const colluders = new Set(shuffled.slice(0, c));
          const accused = rng.pick(replicas);
          const accuser = rng.pick(replicas.filter((r) => r !== accused));
          const scene: Scene = { replicas, colluders, cheated: colluders.has(accused) && rng.chance(0.5) };
          // Only a wrong finding opens a dispute.
          if (finding(scene, accuser, accused)) continue;
          const { purged, unresolved } = play(scene, accused, accuser, rng);
          expect(
            purged.filter((p) => !colluders.has(p)),
            `n ${n}, colluders ${[...colluders]}, ${accuser} accuses ${accused}`,
          ).toEqual([]);
          if (!unresolved) decided++;
          colludersPurged += purged.length;
          // Beyond two replicas someone independent can always settle it, and a liar or cheater is in it.
          if (n >= 3) {
            expect(unresolved).toBe(false);
            expect(purged.length).toBeGreaterThan(0);
          }
        }
      }
    }
    expect(decided).toBeGreaterThan(300);
    expect(colludersPurged).toBeGreaterThan(decided);
  });

  it('an accused that shows its bundle to whom it likes purges no honest replica, and one that shows it to no honest one is convicted', () => {
    const rng = new Rng(23);
    let withheldConvicted = 0;
    for (let n = 3; n <= 12; n++) {
      const replicas = Array.from({ length: n }, (_, i) => `r${i}`);
      for (let trial = 0; trial < 80; trial++) {
        const c = rng.int(1, Math.max(1, Math.floor(n / 3)) + 1);
        const colluders = new Set([...replicas].sort(() => rng.next() - 0.5).slice(0, c));
        const accused = rng.pick(replicas);
        const accuser = rng.pick(replicas.filter((r) => r !== accused));
        const scene: Scene = { replicas, colluders, cheated: colluders.has(accused) && rng.chance(0.5) };
        // A colluding accused shows its bundle to a random few (or nobody); an honest one to every witness.
        const shown = new Set(colluders.has(accused) ? replicas.filter(() => rng.chance(0.4)) : replicas);
        const says = (w: string): Said => {
          // Colluders cover a fellow colluder and, against anyone else, say no bundle came: a claim nobody can check.
          if (colluders.has(w)) return colluders.has(accused) ? { ok: true } : { ok: false, missing: true };
          return shown.has(w) ? { ok: !scene.cheated } : { ok: false, missing: true };
        };
        if (says(accuser).ok) continue;
        const { purged, unresolved } = play(scene, accused, accuser, rng, says);
        expect(
          purged.filter((p) => !colluders.has(p)),
          `n ${n}, colluders ${[...colluders]}, shown ${[...shown]}, ${accuser} accuses ${accused}`,
        ).toEqual([]);
        const honestShown = replicas.some((r) => r !== accused && !colluders.has(r) && shown.has(r));
        if (colluders.has(accused) && !honestShown && !unresolved && purged.includes(accused)) withheldConvicted++;
      }
    }
    expect(withheldConvicted).toBeGreaterThan(20);
  });

  it('no bundle is no proof against the witness: a panel that recomputes the microbatch right clears the accused and purges nobody', () => {
    const rules: DisputeRules = { witnesses: () => ['a', 'b', 'c'], independent: () => true, tolerated: () => 1, random: () => 0 };
    const v = (ok: boolean, reason: string, missing?: true) => ({ type: 'verdict' as const, round: 7, microbatch: 2, peer: 'p', ok, reason, ...(missing && { missing }) });
    const shown: Audit[] = [{ peer: 'p', witness: 'a', microbatch: 2 }];
    shown.push(...(onFinding(shown, 'a', v(false, 'no bundle from p within 8000 ms', true), rules) as { audits: Audit[] }).audits);
    expect(onFinding(shown, 'b', v(true, 'agrees'), rules)).toEqual({ kind: 'convict', guilty: [], cleared: shown[0] });
    // Shown to nobody: the accused is convicted, on its withholding.
    const hidden: Audit[] = [{ peer: 'p', witness: 'a', microbatch: 2 }];
    hidden.push(...(onFinding(hidden, 'a', v(false, 'no bundle from p within 8000 ms', true), rules) as { audits: Audit[] }).audits);
    expect(onFinding(hidden, 'b', v(false, 'no bundle from p within 8000 ms', true), rules)).toEqual({
      kind: 'convict',
      guilty: [
        {
          peer: 'p',
          reason:
            'it showed its microbatch 2 of round 7 neither to its accuser nor to 1 of 1 independent replicas that asked: no bundle from p within 8000 ms; no bundle from p within 8000 ms',
        },
      ],
    });
  });

  it('a panel that agrees with the accuser convicts the accused; one that agrees with the accused convicts the accuser', () => {
    const rules: DisputeRules = { witnesses: () => ['a', 'b', 'c'], independent: () => true, tolerated: () => 1, random: () => 0 };
    const v = (peer: string, ok: boolean, reason = ok ? 'agrees' : 'cos 0.2') => ({ type: 'verdict' as const, round: 7, microbatch: 2, peer, ok, reason });
    const audits: Audit[] = [{ peer: 'p', witness: 'a', microbatch: 2 }];
    const opened = onFinding(audits, 'a', v('p', false), rules);
    expect(opened).toEqual({ kind: 'panel', audits: [{ peer: 'p', witness: 'b', microbatch: 2, against: 'a' }] });
    audits.push(...(opened as { audits: Audit[] }).audits);
    expect(onFinding(audits, 'b', v('p', false, 'cos 0.3'), rules)).toEqual({
      kind: 'convict',
      guilty: [{ peer: 'p', reason: 'its accuser and 1 of 1 independent replicas found its microbatch 2 of round 7 wrong: cos 0.2; cos 0.3' }],
    });
    // A finding from someone not asked, or asked twice, changes nothing.
    expect(onFinding(audits, 'c', v('p', true), rules)).toEqual({ kind: 'wait' });
    expect(onFinding(audits, 'b', v('p', true), rules)).toEqual({ kind: 'wait' });

    const again: Audit[] = [{ peer: 'p', witness: 'a', microbatch: 2 }];
    again.push(...(onFinding(again, 'a', v('p', false), rules) as { audits: Audit[] }).audits);
    expect(onFinding(again, 'b', v('p', true), rules)).toMatchObject({
      kind: 'convict',
      guilty: [{ peer: 'a', reason: "it found p's microbatch 2 of round 7 wrong, and 1 of 1 independent replicas recomputing it found it right" }],
      cleared: again[0],
    });
  });

  it('when time is up, decides by the panel members that answered: a silent one cannot hold the round, nor outvote anyone', () => {
    const rules = (tolerated: number): DisputeRules => ({ witnesses: () => ['a', 'b', 'c', 'd'], independent: () => true, tolerated: () => tolerated, random: () => 0 });
    const audits = (): Audit[] => [
      { peer: 'p', witness: 'a', microbatch: 1, finding: { ok: false, reason: 'cos 0.2' } },
      { peer: 'p', witness: 'b', microbatch: 1, against: 'a', finding: { ok: true, reason: 'agrees' } },
      { peer: 'p', witness: 'c', microbatch: 1, against: 'a' },
    ];
    expect(settleLate(audits(), 3, rules(1))).toMatchObject({ kind: 'convict', guilty: [{ peer: 'a' }] });
    // A third of the stage is two: one answer is too few to decide.
    expect(settleLate(audits(), 3, rules(2))).toMatchObject({ kind: 'unresolved' });
    // Nobody on the panel answered; no dispute at all commits.
    expect(
      settleLate(
        audits()
          .slice(0, 1)
          .concat([{ peer: 'p', witness: 'c', microbatch: 1, against: 'a' }]),
        3,
        rules(1),
      ),
    ).toMatchObject({ kind: 'unresolved' });
    expect(settleLate([{ peer: 'p', witness: 'a', microbatch: 1, finding: { ok: true, reason: 'agrees' } }], 3, rules(1))).toEqual({ kind: 'commit' });
  });

  it('leaves a dispute nobody independent can settle unresolved, and a witness sharing the accuser’s account off the panel', () => {
    const v = { type: 'verdict' as const, round: 1, microbatch: 0, peer: 'p', ok: false, reason: 'cos 0.1' };
    const twoReplicas: DisputeRules = { witnesses: () => ['a'], independent: () => true, tolerated: () => 1, random: () => 0 };
    expect(onFinding([{ peer: 'p', witness: 'a', microbatch: 0 }], 'a', v, twoReplicas)).toEqual({
      kind: 'unresolved',
      reason: "a found p's microbatch 0 wrong (cos 0.1), and no independent replica can settle it",
      noPanel: { accused: 'p', accuser: 'a' },
    });
    const sybil: DisputeRules = { witnesses: () => ['a', 'a2'], independent: (x, y) => !['a', 'a2'].includes(x) || !['a', 'a2'].includes(y), tolerated: () => 1, random: () => 0 };
    expect(onFinding([{ peer: 'p', witness: 'a', microbatch: 0 }], 'a', v, sybil)).toMatchObject({ kind: 'unresolved' });
  });
});
