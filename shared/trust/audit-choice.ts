// Which work is spot-checked, and what a witness's finding means (ARCHITECTURE §6). Pure: the run's
// state machine hands in the round, who could witness, and a source of randomness the peers cannot
// predict, and acts on what this says.
//
// Rate. Once every report of a round is in, each routed peer with a witness is audited with
// probability `rate(peer)`, on one of its microbatches chosen uniformly: 1 while it is on probation
// (its first PROBATION_AUDITS clean audits: a new identity's work is all checked), the run's rate
// after. A peer that cheats on a fraction f of its microbatches is caught in a round with
// probability rate·f, and within n rounds with 1 − (1 − rate·f)^n: at rate 0.25, f = 0.1 over 100
// rounds, 92 %; f = 1 (a free-rider), 1 − 0.75^n: 94 % within 10 rounds.
//
// Why cheating does not pay: units are credited per committed microbatch, and a peer's share of a
// round is at most its stage's equal share whatever it claims (coordinator/roster.ts plannedMs),
// so a cheater earns no more per round than an honest replica; caught, it is purged, forfeits every
// unit not yet settled (the open epoch and the HELD_EPOCHS closed before it: ledger.ts) and earns
// nothing after. Over N rounds it expects at most u·Σ_{t<N} (1 − rate·f)^t < N·u, the honest
// replica's, for every f > 0; a cheat caught within the hold keeps nothing at all.
//
// What a witness's finding decides is trust/dispute.ts's job.
import type { Seal, ServerMessageOf } from '../swarm/protocol.js';
import { FrameKind } from '../wire/frame.js';
import { type Audit, sample } from './dispute.js';

export interface AuditedRound {
  round: number;
  routes: string[][];
  reported: ReadonlyMap<string, { inputs: readonly Seal[] }>;
}

/** Peers that could witness `peer`'s work: the other replicas of its stage it has a channel to. */
export type Witnesses = (peer: string) => string[];

/** Clean audits a peer's work must pass before it is audited at the run's rate rather than always. */
export const PROBATION_AUDITS = 3;

/**
 * The round's audits: every suspect microbatch a witness can check (a receiver found its frame out
 * of band), then each other routed peer with probability `rate(peer)`.
 */
export function chooseAudits(
  r: AuditedRound,
  work: ReadonlyMap<string, number>,
  witnesses: Witnesses,
  rate: (peer: string) => number,
  random: () => number,
  suspects: ReadonlyArray<{ peer: string; microbatch: number }> = [],
): Audit[] {
  const audits: Audit[] = [];
  for (const s of suspects) {
    const ws = witnesses(s.peer);
    if (ws.length && !audits.some((a) => a.peer === s.peer)) audits.push({ peer: s.peer, witness: pick(ws, random), microbatch: s.microbatch });
  }
  for (const [peer, n] of work) {
    if (n === 0 || audits.some((a) => a.peer === peer) || random() >= rate(peer)) continue;
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

function pick<T>(xs: readonly T[], random: () => number): T {
  return sample(xs, 1, random)[0];
}
