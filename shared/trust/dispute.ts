// What witnesses' findings on an audited microbatch decide (ARCHITECTURE §6). Pure: the coordinator
// hands in the findings, who else could witness, and randomness the peers cannot predict.
//
// A witness finding a microbatch right clears it. A witness finding it wrong is an accusation, not
// proof: it opens a dispute between the accuser and the accused that neither of them judges. A panel
// of other replicas of the stage, drawn at random by the coordinator (never chosen by either party,
// never sharing an account or an address with either), recomputes the same microbatch from the
// same sealed frames. The design tolerates colluders up to `tolerated` of a stage's replicas (a
// third): a dispute has at least one honest party, so at most `tolerated − 1` colluders sit in the
// pool, and
// - a panel of `tolerated` members (at least 1) that agrees decides: it holds an honest member,
//   and honest members agree on what the same bytes compute;
// - a panel that splits is widened to every independent replica, and its strict majority decides
//   (honest replicas are most of them); a tie decides nothing.
// Whoever the decision proves wrong is purged: the accused or the accuser, and each panel member
// that found the other way. A dispute nobody can settle (no independent replica, a tie, a panel too
// small) discards the round and purges nobody.
import type { ClientMessageOf } from '../swarm/protocol.js';

export interface Audit {
  peer: string;
  witness: string;
  microbatch: number;
  /** The accuser, when this audit is a panel member's recomputation in a dispute. */
  against?: string;
  /** `missing`: no bundle came. The audited peer chose that, so it is no proof against the witness. */
  finding?: { ok: boolean; reason: string; missing?: true };
}

export interface DisputeRules {
  /** The replicas that could recompute `peer`'s work, independent of it: linked to it, another account and address. */
  witnesses(peer: string): string[];
  /** Whether `a` and `b` are independent (they share no account and no address). */
  independent(a: string, b: string): boolean;
  /** How many colluders of `peer`'s stage the panel must outvote (a third of its replicas, at least 1). */
  tolerated(peer: string): number;
  random(): number;
}

export type Outcome =
  | { kind: 'wait' }
  | { kind: 'commit' }
  /** Ask these panel members too. */
  | { kind: 'panel'; audits: Audit[] }
  /** Purge these peers; `cleared` when the accused was found right (its audit is settled). */
  | { kind: 'convict'; guilty: { peer: string; reason: string }[]; cleared?: Audit }
  /** Discard the round: a dispute nobody can settle; `noPanel` when the accused has no other independent replica linked. */
  | { kind: 'unresolved'; reason: string; noPanel?: { accused: string; accuser: string } };

/** Record a witness's finding; what the round must do now. Findings from anyone else, or twice, change nothing. */
export function onFinding(audits: Audit[], witness: string, v: ClientMessageOf<'verdict'>, rules: DisputeRules): Outcome {
  const a = audits.find((x) => x.witness === witness && x.peer === v.peer && x.microbatch === v.microbatch && !x.finding);
  if (!a) return { kind: 'wait' };
  a.finding = { ok: v.ok, reason: v.reason, ...(!v.ok && v.missing && { missing: true as const }) };
  if (a.against !== undefined) return onPanelFinding(audits, audits.find((x) => x.witness === a.against && x.peer === a.peer && x.against === undefined)!, v.round, rules);
  if (!v.ok) return openDispute(a, rules);
  return audits.every((x) => x.finding?.ok) ? { kind: 'commit' } : { kind: 'wait' };
}

/** The independent replicas that could sit on the panel of `accusation`. */
function pool(accusation: Audit, rules: DisputeRules): string[] {
  return rules.witnesses(accusation.peer).filter((w) => w !== accusation.witness && rules.independent(w, accusation.witness));
}

function openDispute(accusation: Audit, rules: DisputeRules): Outcome {
  const candidates = pool(accusation, rules);
  const { peer, witness, microbatch } = accusation;
  if (candidates.length === 0) {
    return {
      kind: 'unresolved',
      reason: `${witness} found ${peer}'s microbatch ${microbatch} wrong (${accusation.finding!.reason}), and no independent replica can settle it`,
      noPanel: { accused: peer, accuser: witness },
    };
  }
  const size = Math.min(candidates.length, Math.max(1, rules.tolerated(peer)));
  return { kind: 'panel', audits: sample(candidates, size, rules.random).map((w) => ({ peer, witness: w, microbatch, against: witness })) };
}

/**
 * The audits' time is up: each open dispute is decided by the panel members that answered (a silent
 * one cannot hold the round, and silence only takes a colluder's vote away), by the same rules; a
 * dispute with no panel, or one still undecided, discards the round.
 */
export function settleLate(audits: Audit[], round: number, rules: DisputeRules): Outcome {
  const accusations = audits.filter((x) => x.against === undefined && x.finding && !x.finding.ok);
  if (accusations.length === 0) return { kind: 'commit' };
  const guilty: Array<{ peer: string; reason: string }> = [];
  let cleared: Audit | undefined;
  for (const a of accusations) {
    const out = onPanelFinding(audits, a, round, rules, true);
    if (out.kind !== 'convict') return out.kind === 'unresolved' ? out : { kind: 'unresolved', reason: `nobody settled ${a.witness}'s finding against ${a.peer}` };
    guilty.push(...out.guilty);
    cleared ??= out.cleared;
  }
  return { kind: 'convict', guilty, cleared };
}

function onPanelFinding(audits: Audit[], accusation: Audit, round: number, rules: DisputeRules, late = false): Outcome {
  const all = audits.filter((x) => x.peer === accusation.peer && x.against === accusation.witness);
  const panel = late ? all.filter((x) => x.finding) : all;
  if (panel.length === 0) return { kind: 'unresolved', reason: `no panel member answered on ${accusation.witness}'s finding against ${accusation.peer}` };
  const answered = panel.filter((x) => x.finding);
  const right = answered.filter((x) => x.finding!.ok);
  const wrong = answered.filter((x) => !x.finding!.ok);
  if (right.length && wrong.length && !late) {
    const more = pool(accusation, rules).filter((w) => !panel.some((x) => x.witness === w));
    if (more.length) return { kind: 'panel', audits: more.map((w) => ({ peer: accusation.peer, witness: w, microbatch: accusation.microbatch, against: accusation.witness })) };
  }
  if (answered.length < panel.length) return { kind: 'wait' };
  const { peer, witness, microbatch } = accusation;
  const what = `${peer}'s microbatch ${microbatch} of round ${round}`;
  const decisive = (side: Audit[]) => (side.length === panel.length ? panel.length >= Math.max(1, rules.tolerated(peer)) : 2 * side.length > panel.length);
  // A witness that got no bundle is proven wrong by nothing: the audited peer chose whom to send it to.
  const recomputed = (xs: Audit[]) => xs.filter((x) => !x.finding!.missing);
  if (decisive(right)) {
    return {
      kind: 'convict',
      guilty: recomputed([accusation, ...wrong]).map((x) => ({
        peer: x.witness,
        reason: `it found ${what} wrong, and ${right.length} of ${panel.length} independent replicas recomputing it found it right`,
      })),
      cleared: accusation,
    };
  }
  if (decisive(wrong)) {
    const findings = [accusation, ...wrong].map((x) => x.finding!.reason);
    const proven = recomputed([accusation, ...wrong]).length > 0;
    return {
      kind: 'convict',
      guilty: [
        {
          peer,
          reason: proven
            ? `its accuser and ${wrong.length} of ${panel.length} independent replicas found its microbatch ${microbatch} of round ${round} wrong: ${findings.join('; ')}`
            : `it showed its microbatch ${microbatch} of round ${round} neither to its accuser nor to ${wrong.length} of ${panel.length} independent replicas that asked: ${findings.join('; ')}`,
        },
        // Found right against a bundle only some were sent: no proof of a false finding without a recomputation against it.
        ...(proven ? right : []).map((x) => ({
          peer: x.witness,
          reason: `it found ${what} right, and ${wrong.length} of ${panel.length} independent replicas recomputing it found it wrong`,
        })),
      ],
    };
  }
  return { kind: 'unresolved', reason: `the panel on ${witness}'s finding against ${what} split ${right.length} right to ${wrong.length} wrong` };
}

/** `k` distinct items of `xs`, drawn at random. */
export function sample<T>(xs: readonly T[], k: number, random: () => number): T[] {
  const left = [...xs];
  const out: T[] = [];
  while (out.length < k && left.length) out.push(left.splice(Math.min(left.length - 1, Math.floor(random() * left.length)), 1)[0]);
  return out;
}
