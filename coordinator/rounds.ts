// The round in flight (ARCHITECTURE §3): global step t computed as round r along the planner's
// routes. Rounds are numbered once and never reused (peers' frames name them); each peer's report
// must cover exactly the microbatches its routes give it and cite the seals of exactly the inputs
// those routes sent it; the round is complete when every routed peer reported.
import type { Audit } from '../shared/trust/dispute.js';
import type { ClientMessageOf, Seal } from '../shared/swarm/protocol.js';
import { FrameKind } from '../shared/wire/frame.js';
import { microbatchesPerPeer } from './planner.js';
import type { PeerRecord } from './roster.js';

export interface Round {
  round: number;
  step: number;
  routes: string[][];
  work: Map<string, number>;
  reported: Map<string, ClientMessageOf<'round-done'>>;
  startedAt: number;
  /** Microbatches whose frames a receiver found out of band: audited before the round commits. */
  suspects: Array<{ peer: string; microbatch: number; reporter: string }>;
  /** Routed peers whose share is not paid when the round commits, and why (a suspect report that cost the round and was unconfirmed). */
  unpaid: Map<string, string>;
  /** Spot checks of this round, once every report is in (it commits when they are cleared). */
  audits?: Audit[];
  auditsSince?: number;
  /** When the last report came in, and when the peers late with theirs were asked what they wait for. */
  lastReportAt?: number;
  askedLateAt?: number;
  /** Whether every routed peer was asked what it waits for, nobody having reported. */
  askedAll?: boolean;
  /** How long the round should take by the routed peers' measured speeds (unknown while one of them is unmeasured). */
  expectedMs?: number;
}

/** What a report does to its round: nothing (late), an error for its sender, a purge, or it completes the round. */
export type ReportOutcome = { kind: 'late' } | { kind: 'error'; error: string } | { kind: 'purge'; reason: string } | { kind: 'taken'; complete: boolean };

/** Rounds whose training step is remembered (longer than any frame a peer keeps as evidence). */
const RECENT_ROUNDS = 256;
/**
 * A routed peer that has not reported LATE_FACTOR times as long after the others' last report as
 * the round took until then (and at least LATE_MIN_MS) holds the round no longer: a peer that
 * withholds its report must not hold everyone else's work for the round's whole time limit. It is
 * asked what it waits for: an honest peer names the neighbour that withheld its frame (a stall,
 * which cuts that one channel). One still late LATE_ANSWER_MS later, silent to the coordinator's own
 * question, loses every channel it has for routing: a peer that withholds its frames makes its
 * honest neighbour late too, but that neighbour names it when asked.
 */
export const LATE_FACTOR = 2;
export const LATE_MIN_MS = 5_000;
export const LATE_ANSWER_MS = 5_000;
/** Weight of a new measurement in the moving average of a peer's speed. */
const EMA = 0.3;

export class Rounds {
  current?: Round;
  private seq = 0;
  /** The training step of each recent round (replay evidence names rounds). */
  private readonly steps = new Map<number, number>();

  /** The last round number handed out (never reused, across restarts too). */
  get last(): number {
    return this.seq;
  }
  resume(lastRound: number): void {
    this.seq = lastRound;
  }

  /** The training step round `round` was for, if it is recent. */
  stepOf(round: number): number | undefined {
    return this.steps.get(round);
  }

  /** Route step `step` as a new round; `measured`: a peer's measured time per microbatch, if it has one. */
  start(step: number, routes: string[][], now: number, measured: (peerId: string) => number | undefined = () => undefined): Round {
    const r: Round = { round: ++this.seq, step, routes, work: microbatchesPerPeer(routes), reported: new Map(), suspects: [], unpaid: new Map(), startedAt: now };
    // A peer's measure is the time to its report over its microbatches: the slowest such product is the round's.
    const times = [...r.work].map(([p, n]) => (measured(p) ?? Number.NaN) * n);
    if (times.every(Number.isFinite)) r.expectedMs = Math.max(...times);
    this.steps.set(r.round, step);
    if (this.steps.size > RECENT_ROUNDS) this.steps.delete(this.steps.keys().next().value!);
    this.current = r;
    return r;
  }

  /** The round in flight ends (committed or discarded); returns it. */
  end(): Round | undefined {
    const r = this.current;
    this.current = undefined;
    return r;
  }

  /** Whether the round in flight routes a frame between a and b (consecutive hops of a path). */
  routesBetween(a: string, b: string): boolean {
    return !!this.current?.routes.some((path) => adjacent(path, a, b));
  }

  /**
   * The routed peers long late with their report of the round in flight (LATE_FACTOR), if any: to
   * `ask` what they wait for when first found late; LATE_ANSWER_MS later, those still `silent`.
   */
  late(now: number): { ask: string[] } | { silent: string[] } | undefined {
    const r = this.current;
    if (!r || r.reported.size === r.work.size) return undefined;
    if (!r.lastReportAt) return this.noneReported(r, now);
    if (now - r.lastReportAt < Math.max(LATE_MIN_MS, LATE_FACTOR * (r.lastReportAt - r.startedAt))) return undefined;
    const peers = [...r.work.keys()].filter((p) => !r.reported.has(p));
    if (r.askedLateAt === undefined) {
      r.askedLateAt = now;
      return { ask: peers };
    }
    return now - r.askedLateAt < LATE_ANSWER_MS ? undefined : { silent: peers };
  }

  /**
   * A round nobody reported, LATE_FACTOR times as long as its routed peers' measured speeds say (and
   * at least LATE_MIN_MS): every routed peer is asked once what it waits for, so one stuck peer that
   * holds up its whole path is named by its neighbours. Not while a routed peer is unmeasured (a
   * newcomer may be slow, honestly), and nobody is benched for silence here: peers still averaging
   * or computing honestly have nothing to name either.
   */
  private noneReported(r: Round, now: number): { ask: string[] } | undefined {
    if (r.expectedMs === undefined || r.askedAll) return undefined;
    if (now - r.startedAt < Math.max(LATE_MIN_MS, LATE_FACTOR * r.expectedMs)) return undefined;
    r.askedAll = true;
    return { ask: [...r.work.keys()] };
  }

  /** A peer's share of the round in flight, reported at `now`. */
  report(p: PeerRecord, msg: ClientMessageOf<'round-done'>, now: number): ReportOutcome {
    const r = this.current;
    if (!r || msg.round !== r.round) return { kind: 'late' }; // a discarded round's late report: nothing to do
    const planned = r.work.get(p.peerId);
    if (planned === undefined) return { kind: 'error', error: `round ${msg.round} routes nothing through ${p.peerId}` };
    if (msg.microbatches !== planned) return { kind: 'error', error: `round ${msg.round} routes ${planned} microbatches through ${p.peerId}, it reported ${msg.microbatches}` };
    if (r.reported.has(p.peerId)) return { kind: 'error', error: `round ${msg.round} was already reported by ${p.peerId}` };
    const missing = missingInputs(r, p.peerId, msg.inputs);
    if (missing) return { kind: 'purge', reason: `reported round ${msg.round} done without ${missing}` };
    r.reported.set(p.peerId, msg);
    r.lastReportAt = now;
    if (planned > 0) {
      // Measured here, never claimed: how long after the round's start the report came, per
      // microbatch. A peer cannot report before its inputs came (it must cite their seals), and
      // reporting later only slows its own measure. At least 1 ms: never infinitely fast.
      const ms = Math.max(1, (now - r.startedAt) / planned);
      p.msPerMicrobatch = p.msPerMicrobatch === undefined ? ms : (1 - EMA) * p.msPerMicrobatch + EMA * ms;
    }
    return { kind: 'taken', complete: r.reported.size === r.work.size };
  }
}

/**
 * What a peer's report of round `r` lacks: the seal of each input its routes say it computed from
 * (the activation from the previous hop, the gradient from the next). A peer cannot have computed
 * without them; seals for anything else are equally a false claim. Undefined when they match.
 */
function missingInputs(r: Round, peerId: string, inputs: readonly Seal[]): string | undefined {
  const want = new Set<string>();
  r.routes.forEach((path, mb) => {
    const s = path.indexOf(peerId);
    if (s > 0) want.add(`${FrameKind.Activation}:${mb}:${path[s - 1]}`);
    if (s >= 0 && s < path.length - 1) want.add(`${FrameKind.Gradient}:${mb}:${path[s + 1]}`);
  });
  const have = inputs.filter((i) => i.tag === r.round && i.to === peerId).map((i) => `${i.kind}:${i.microbatch}:${i.from}`);
  const extra = have.find((k) => !want.delete(k));
  if (extra) return `a routed input: it reports ${describeInput(extra)}, which round ${r.round} never routed to it (or twice)`;
  if (inputs.length !== have.length) return 'seals of its own: a seal for another round or receiver';
  const lacking = [...want][0];
  return lacking && describeInput(lacking);
}

const describeInput = (key: string) => {
  const [kind, mb, from] = key.split(':');
  return `the ${Number(kind) === FrameKind.Activation ? 'activation' : 'gradient'} of microbatch ${mb} from ${from}`;
};

/** Whether a and b are consecutive hops of `path` (in either order). */
export function adjacent(path: string[], a: string, b: string): boolean {
  const i = path.indexOf(a);
  return i >= 0 && (path[i - 1] === b || path[i + 1] === b);
}
