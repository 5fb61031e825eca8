// Which work is spot-checked, and what a witness's finding means (ARCHITECTURE §6). Pure: the run's
// state machine hands in the round, who could witness, and a source of randomness the peers cannot
// predict, and acts on what this says.
//
// Rate. Once every report of a round is in, each routed peer whose stage has another replica it is
// linked to is audited with probability `rate`, on one of its microbatches chosen uniformly. A peer
// that cheats on a fraction f of its microbatches is caught in a round with probability rate·f, and
// within n rounds with 1 − (1 − rate·f)^n: at rate 0.25, f = 0.1 over 100 rounds, 92 %; f = 1
// (a free-rider), 1 − 0.75^n: 94 % within 10 rounds.
//
// Findings. A witness agreeing clears the microbatch. A witness disagreeing is one replica's word
// against another's: a second witness settles it (two of three). Both disagreeing convict the peer;
// the second agreeing convicts the first witness. With no second witness the round is discarded
// (the model is not touched by work nobody could vouch for) and nobody is purged.
import type { ClientMessageOf, Seal, ServerMessageOf } from '../swarm/protocol.js';
import { FrameKind } from '../wire/frame.js';

export interface Audit {
  peer: string;
  witness: string;
  microbatch: number;
  /** The witness that disagreed first, when this audit is the second opinion. */
  against?: string;
  finding?: { ok: boolean; reason: string };
}

export interface AuditedRound {
  round: number;
  routes: string[][];
  reported: ReadonlyMap<string, { inputs: readonly Seal[] }>;
}

/** Peers that could witness `peer`'s work: the other replicas of its stage it has a channel to. */
export type Witnesses = (peer: string) => string[];

/**
 * The round's audits: every suspect microbatch a witness can check (a receiver found its frame out
 * of band), then each other routed peer with probability `rate`.
 */
export function chooseAudits(
  r: AuditedRound,
  work: ReadonlyMap<string, number>,
  witnesses: Witnesses,
  rate: number,
  random: () => number,
  suspects: ReadonlyArray<{ peer: string; microbatch: number }> = [],
): Audit[] {
  const audits: Audit[] = [];
  for (const s of suspects) {
    const ws = witnesses(s.peer);
    if (ws.length && !audits.some((a) => a.peer === s.peer)) audits.push({ peer: s.peer, witness: pick(ws, random), microbatch: s.microbatch });
  }
  for (const [peer, n] of work) {
    if (n === 0 || audits.some((a) => a.peer === peer) || random() >= rate) continue;
    const ws = witnesses(peer);
    if (ws.length === 0) continue;
    const mine = r.routes.flatMap((path, mb) => (path.includes(peer) ? [mb] : []));
    audits.push({ peer, witness: pick(ws, random), microbatch: pick(mine, random) });
  }
  return audits;
}

/** The SHA-256 of each frame of an audited microbatch, as the seals its receivers reported prove them. */
export function auditedFrames(r: AuditedRound, a: Audit): ServerMessageOf<'verify'>['frames'] {
  const path = r.routes[a.microbatch];
  const s = path.indexOf(a.peer);
  const prev = path[s - 1];
  const next = path[s + 1];
  const cited = (reporter: string | undefined, kind: number, from: string | undefined) =>
    reporter === undefined ? undefined : r.reported.get(reporter)?.inputs.find((i) => i.kind === kind && i.microbatch === a.microbatch && i.from === from)?.hash;
  const frames = {
    xIn: cited(a.peer, FrameKind.Activation, prev),
    yOut: cited(next, FrameKind.Activation, a.peer),
    gIn: cited(a.peer, FrameKind.Gradient, next),
    dxOut: cited(prev, FrameKind.Gradient, a.peer),
  };
  return Object.fromEntries(Object.entries(frames).filter(([, h]) => h !== undefined));
}

export type Outcome =
  | { kind: 'wait' }
  | { kind: 'commit' }
  /** Ask another witness (the audit to add). */
  | { kind: 'second'; audit: Audit }
  | { kind: 'purge'; peer: string; reason: string }
  /** Discard the round: a finding nobody can settle. */
  | { kind: 'unresolved'; reason: string };

/** Record a witness's finding; what the round must do now. Findings from anyone else, or twice, change nothing. */
export function onFinding(audits: Audit[], witness: string, v: ClientMessageOf<'verdict'>, witnesses: Witnesses, random: () => number): Outcome {
  const a = audits.find((x) => x.witness === witness && x.peer === v.peer && x.microbatch === v.microbatch && !x.finding);
  if (!a) return { kind: 'wait' };
  a.finding = { ok: v.ok, reason: v.reason };
  if (a.against !== undefined) {
    const first = audits.find((x) => x.witness === a.against && x.peer === a.peer)!;
    return v.ok
      ? { kind: 'purge', peer: a.against, reason: `its audit of ${a.peer} (${first.finding!.reason}) was contradicted by ${witness}` }
      : { kind: 'purge', peer: a.peer, reason: `two witnesses found its microbatch ${a.microbatch} of round ${v.round} wrong: ${first.finding!.reason}; ${v.reason}` };
  }
  if (!v.ok) {
    const others = witnesses(a.peer).filter((w) => w !== witness);
    if (others.length === 0)
      return { kind: 'unresolved', reason: `${witness} found ${a.peer}'s microbatch ${a.microbatch} wrong (${v.reason}), and no other replica can settle it` };
    return { kind: 'second', audit: { peer: a.peer, witness: pick(others, random), microbatch: a.microbatch, against: witness } };
  }
  return audits.every((x) => x.finding?.ok) ? { kind: 'commit' } : { kind: 'wait' };
}

function pick<T>(xs: readonly T[], random: () => number): T {
  return xs[Math.min(xs.length - 1, Math.floor(random() * xs.length))];
}
