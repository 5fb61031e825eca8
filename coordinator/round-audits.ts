// Spot checks of the round in flight (ARCHITECTURE §6): once every report is in, some routed peers
// are audited by a witness replica (shared/trust/audit-choice.ts picks whom; trust/dispute.ts says
// what findings decide, drawing a panel when a witness accuses);
// a microbatch a receiver found out of band is audited whatever the rate. The round commits when
// every audit agrees. This module sends the audits and says what the round must do next; the run's
// state machine does it.
import { auditedFrames, chooseAudits, PROBATION_AUDITS } from '../shared/trust/audit-choice.js';
import { type Audit, type DisputeRules, type Outcome, onFinding, settleLate } from '../shared/trust/dispute.js';
import type { ClientMessageOf, ServerMessage } from '../shared/swarm/protocol.js';
import { adjacent, type Round } from './rounds.js';

/** Unwarranted suspect reports after which a peer's reports are no longer acted on. */
export const MAX_UNCONFIRMED_SUSPECTS = 3;

/**
 * Audits a witness may leave unanswered past the time limit before it is no longer drawn as a
 * witness: each one held a round for the whole limit, so a silent witness costs the run at most
 * this many waits, never one per round.
 */
export const MAX_SILENT_AUDITS = 2;

/** What the round must do after an audit event. */
export type AuditStep =
  | { kind: 'wait' }
  | { kind: 'commit' }
  | { kind: 'abort'; reason: string }
  /** Purge these (the round commits after, if it still can and its audits are settled). */
  | { kind: 'purge'; guilty: { peer: string; reason: string }[] };

export interface RoundAuditsOptions {
  send(peerId: string, msg: ServerMessage): void;
  log(line: string): void;
  now(): number;
  /** The probability each routed peer is audited in a round, and randomness peers cannot predict. */
  audit?: { rate: number; random(): number };
  /** The witnesses assigned to `peer` it is linked to (witness-sets.ts): its audits' first witness is one of them. */
  assigned(peer: string): string[];
  /** Who may sit on a dispute's panel, and what else a dispute needs (trust/dispute.ts): the roster. */
  panel: Omit<DisputeRules, 'random'>;
  /** A finding against `accused` nobody could settle: it had no independent replica but `accuser` linked (witness-sets.ts). */
  noPanel?(accused: string, accuser: string): void;
}

export class RoundAudits {
  /** Clean audits each peer's work has passed (probation ends at PROBATION_AUDITS). */
  private readonly clean = new Map<string, number>();
  /** Suspect reports of each peer that the audit found unwarranted. */
  private readonly unconfirmed = new Map<string, number>();
  /** Audits each witness left unanswered past the time limit. */
  private readonly silent = new Map<string, number>();

  constructor(private readonly o: RoundAuditsOptions) {}

  /** The probability `peer`'s work is audited in a round: always while on probation (when spot checks are on at all). */
  rateOf(peer: string): number {
    const rate = this.o.audit?.rate ?? 0;
    return rate > 0 && (this.clean.get(peer) ?? 0) < PROBATION_AUDITS ? 1 : rate;
  }

  /** Whether `witness` left MAX_SILENT_AUDITS audits unanswered: it is drawn as a witness no more. */
  muted(witness: string): boolean {
    return (this.silent.get(witness) ?? 0) >= MAX_SILENT_AUDITS;
  }

  /** Every report of `r` is in: start its audits; 'commit' when there are none. */
  begin(r: Round): AuditStep {
    const a = this.o.audit;
    const audits =
      a && (a.rate > 0 || r.suspects.length)
        ? chooseAudits(
            r,
            r.work,
            (p) => this.o.assigned(p),
            (p) => this.rateOf(p),
            a.random,
            r.suspects,
          )
        : [];
    for (const s of r.suspects) {
      if (!audits.some((x) => x.peer === s.peer)) this.o.log(`round ${r.round}: no replica can audit ${s.peer}'s out-of-band microbatch ${s.microbatch}; committing it unverified`);
    }
    if (audits.length === 0) return { kind: 'commit' };
    r.audits = audits;
    r.auditsSince = this.o.now();
    for (const x of audits) this.send(r, x);
    return { kind: 'wait' };
  }

  /** A witness's finding on an audited microbatch of `r`. */
  onVerdict(r: Round, witness: string, v: ClientMessageOf<'verdict'>): AuditStep {
    if (!r.audits || v.round !== r.round) return { kind: 'wait' };
    const out = onFinding(r.audits, witness, v, this.rules());
    if (!v.ok) this.o.log(`round ${r.round}: ${witness} finds ${v.peer}'s microbatch ${v.microbatch} wrong: ${v.reason}`);
    return this.step(r, out);
  }

  private rules(): DisputeRules {
    const { panel } = this.o;
    return {
      witnesses: (p) => panel.witnesses(p).filter((w) => !this.muted(w)),
      independent: (a, b) => panel.independent(a, b),
      tolerated: (p) => panel.tolerated(p),
      random: this.o.audit!.random,
    };
  }

  /** What the round must do after a dispute's outcome. */
  private step(r: Round, out: Outcome): AuditStep {
    if (out.kind === 'commit') this.cleared(r);
    switch (out.kind) {
      case 'panel':
        r.audits!.push(...out.audits);
        for (const a of out.audits) this.send(r, a);
        return { kind: 'wait' };
      case 'unresolved':
        if (out.noPanel) this.o.noPanel?.(out.noPanel.accused, out.noPanel.accuser);
        return { kind: 'abort', reason: out.reason };
      case 'convict':
        if (out.cleared) this.settle(r, out.cleared);
        return { kind: 'purge', guilty: out.guilty };
      default:
        return out;
    }
  }

  /**
   * Audits of `r` have waited longer than `limitMs`: work nobody found wrong commits; a dispute is
   * decided by the panel members that answered (trust/dispute.ts settleLate), or discards the round.
   */
  timedOut(r: Round, limitMs: number): AuditStep {
    if (!r.audits || this.o.now() - r.auditsSince! <= limitMs) return { kind: 'wait' };
    const unanswered = r.audits.filter((x) => !x.finding);
    this.o.log(`round ${r.round}: ${unanswered.length} audit(s) unanswered within ${limitMs} ms, by ${unanswered.map((x) => x.witness).join(', ')}`);
    // A witness whose audited peer withholds its bundle answers "missing" within BUNDLE_WAIT_MS,
    // well inside the limit: silence past it is the witness's own, and it costs its round's share.
    for (const { witness } of unanswered) {
      this.unanswered(witness);
      if (r.work.has(witness)) r.unpaid.set(witness, `it left its audit of round ${r.round} unanswered for ${limitMs} ms`);
    }
    const out = settleLate(r.audits, r.round, this.rules());
    if (out.kind === 'unresolved') return { kind: 'abort', reason: `a disputed audit of round ${r.round} was not settled within ${limitMs} ms: ${out.reason}` };
    return this.step(r, out);
  }

  /** `witness` left an audit unanswered, or said no bundle came from a peer that showed its bundle to others. */
  private unanswered(witness: string): void {
    this.silent.set(witness, (this.silent.get(witness) ?? 0) + 1);
    if (this.muted(witness)) this.o.log(`${witness} left ${MAX_SILENT_AUDITS} audits unanswered: it is no longer drawn as a witness`);
  }

  /**
   * A panel found the accused right: its audit and the panel's are settled. A witness that said no
   * bundle came is not proven wrong (the accused chose whom to show it to), but it counts as an
   * unanswered audit, so one that says so falsely is soon drawn no more.
   */
  private settle(r: Round, accusation: Audit): void {
    for (const x of r.audits ?? []) {
      if (x !== accusation && !(x.peer === accusation.peer && x.against === accusation.witness)) continue;
      if (x.finding?.missing) this.unanswered(x.witness);
      x.finding = { ok: true, reason: 'cleared by an independent panel' };
    }
  }

  /**
   * `reporter` took a training frame of `msg.peer` out of its norm band. Honest loss spikes can be
   * as far out as a gradient scaled ×100, so the band does not decide: the microbatch is audited
   * before the round commits. Returns an error for a report about a frame the round never routed to it.
   */
  onSuspect(r: Round | undefined, reporter: string, msg: ClientMessageOf<'suspect'>): string | undefined {
    if (!r || msg.round !== r.round) return undefined;
    const path = r.routes[msg.microbatch];
    if (!path || !adjacent(path, reporter, msg.peer)) return `round ${msg.round} routes no frame of microbatch ${msg.microbatch} from ${msg.peer} to ${reporter}`;
    if (r.suspects.some((s) => s.peer === msg.peer)) return undefined;
    if ((this.unconfirmed.get(reporter) ?? 0) >= MAX_UNCONFIRMED_SUSPECTS) {
      this.o.log(`round ${r.round}: ${reporter}'s report of ${msg.peer} is not acted on: ${MAX_UNCONFIRMED_SUSPECTS} of its reports were found unwarranted`);
      r.unpaid.set(reporter, `it reported ${msg.peer} again after ${MAX_UNCONFIRMED_SUSPECTS} unwarranted reports`);
      return undefined;
    }
    r.suspects.push({ peer: msg.peer, microbatch: msg.microbatch, reporter });
    this.o.log(`round ${r.round}: ${reporter} took ${msg.peer}'s frame of microbatch ${msg.microbatch} out of band (${msg.reason}); it is audited before the round commits`);
    return undefined;
  }

  /**
   * Every audit of `r` agreed: each audited peer passed one more; a suspect report the audit found
   * unwarranted costs its reporter its share of the round (the audit cost a witness as much), puts
   * it back on probation, and after MAX_UNCONFIRMED_SUSPECTS such reports its reports are no longer
   * acted on.
   */
  private cleared(r: Round): void {
    for (const x of r.audits ?? []) if (!x.against && x.finding?.ok) this.clean.set(x.peer, (this.clean.get(x.peer) ?? 0) + 1);
    for (const s of r.suspects) {
      if (!r.audits?.some((x) => x.peer === s.peer && x.finding?.ok)) continue;
      this.unconfirmed.set(s.reporter, (this.unconfirmed.get(s.reporter) ?? 0) + 1);
      r.unpaid.set(s.reporter, `its report of ${s.peer}'s microbatch ${s.microbatch} was found unwarranted`);
      this.clean.set(s.reporter, 0);
    }
  }

  private send(r: Round, a: Audit): void {
    this.o.log(`round ${r.round}: ${a.witness} audits ${a.peer}'s microbatch ${a.microbatch}${a.against ? ` (on the panel of ${a.against}'s accusation)` : ''}`);
    this.o.send(a.peer, { type: 'audit', round: r.round, microbatch: a.microbatch, witness: a.witness });
    this.o.send(a.witness, { type: 'verify', round: r.round, step: r.step, microbatch: a.microbatch, peer: a.peer, frames: auditedFrames(r, a) });
  }
}
