// Who is in the swarm and where: every peer's record (kept after it is gone: its key checks late
// evidence, its account is in the ledger), the live ones indexed by stage, and the membership views
// (views.ts) that say who opens data channels to whom. Bookkeeping only: the run's rules live in
// the modules that read it (membership.ts, routing.ts, round-audits.ts, run-control.ts).
import type { Capability, ClientMessageOf, HeldState, PeerInfo, StateSource } from '../shared/swarm/protocol.js';
import { PeerViews, type ViewChanges } from './views.js';

export type PeerState = 'setup' | 'ready' | 'active' | 'gone';
export type Heartbeat = Omit<ClientMessageOf<'heartbeat'>, 'type'>;

export interface PeerRecord {
  peerId: string;
  name: string;
  /** Its session's Ed25519 key (it signs the peer's frames). */
  key: string;
  capability: Capability;
  account?: `0x${string}`;
  /** The address it registered from (none on loopback: coordinator/registration.ts). */
  address?: string;
  /** When it registered (ms, the run's clock). */
  arrivedAt?: number;
  held: HeldState[];
  stage: number;
  state: PeerState;
  /** The step of the state it loaded (when ready). */
  readyStep?: number;
  /** Neighbours it reports an open data channel to. */
  links: Set<string>;
  /** Measured milliseconds per microbatch (moving average), once it computed a round. */
  msPerMicrobatch?: number;
  hb?: Heartbeat;
  goneReason?: string;
  /** Where it was told to load its stage's state (while it sets up). */
  source?: StateSource;
  /** When it was last placed on a stage (a peer that never gets ready holds its place only so long). */
  assignedAt: number;
  /** It takes over the state of this leaving peer (a handoff), which is gone from the swarm but still sending. */
  heirOf?: string;
}

/** Peers arriving from the network this close together are one burst: neither judges the other. */
export const BURST_MS = 2000;

/** Estimated ms per microbatch of a peer never measured, when no replica of its stage was measured either. */
const FALLBACK_MS = 1000;
/** How much slower than its stage's median a replica must be measured to be given less work. */
export const SLOW_FACTOR = 1.5;
/** How far a replica routed nothing in a round moves back toward its stage's median measure (relaxIdle). */
const IDLE_EMA = 0.3;

export class Roster {
  private readonly records = new Map<string, PeerRecord>();
  /** Peers not gone, kept apart from `records` so that per-event work follows the swarm, not its history. */
  private readonly livePeers = new Map<string, PeerRecord>();
  private readonly onStage: Set<PeerRecord>[];
  private readonly views: PeerViews;

  constructor(stages: number, viewPerAdjacentStage: number) {
    this.onStage = Array.from({ length: stages }, () => new Set());
    this.views = new PeerViews(viewPerAdjacentStage);
  }

  get(peerId: string): PeerRecord | undefined {
    return this.records.get(peerId);
  }
  all(): PeerRecord[] {
    return [...this.records.values()];
  }
  live(): PeerRecord[] {
    return [...this.livePeers.values()];
  }
  isLive(peerId: string): boolean {
    return this.livePeers.has(peerId);
  }
  /** The live peers placed on `stage`. */
  placedOn(stage: number): PeerRecord[] {
    return [...this.onStage[stage]];
  }
  /** The active peers of `stage`, or of the whole swarm. */
  active(stage?: number): PeerRecord[] {
    return (stage === undefined ? this.live() : this.placedOn(stage)).filter((p) => p.state === 'active');
  }

  /** A new peer, not yet on any stage's view (place() puts it there). */
  add(rec: PeerRecord): void {
    this.records.set(rec.peerId, rec);
    this.livePeers.set(rec.peerId, rec);
    this.onStage[rec.stage].add(rec);
  }

  /** Put `p` on `stage` (again); returns whose views changed. */
  place(p: PeerRecord, stage: number): ViewChanges {
    this.onStage[p.stage].delete(p);
    p.stage = stage;
    this.onStage[stage].add(p);
    return this.views.place(p.peerId, stage);
  }

  /**
   * `p` is gone. Its record stays, but not what it said about itself: many peers coming and going
   * must not pile up their links. It stays in the views until forget().
   */
  retire(p: PeerRecord, goneReason: string): void {
    p.state = 'gone';
    p.goneReason = goneReason;
    this.livePeers.delete(p.peerId);
    this.onStage[p.stage].delete(p);
    p.links = new Set();
    p.held = [];
    p.hb = undefined;
  }

  /** A retired peer leaves the views; returns whose views changed. */
  forget(peerId: string): ViewChanges {
    return this.views.remove(peerId);
  }

  /** The ids `peerId` opens channels to. */
  viewIds(peerId: string): string[] {
    return this.views.view(peerId);
  }
  /** The peers `peerId` opens channels to (see PeerViews), as peers are told of them. */
  view(peerId: string): PeerInfo[] {
    return this.viewIds(peerId).map((id) => info(this.records.get(id)!));
  }
  info(peerId: string): PeerInfo {
    return info(this.records.get(peerId)!);
  }

  /** Whether both ends report the channel between a and b open. */
  linked(a: string, b: string): boolean {
    return !!this.records.get(a)?.links.has(b) && !!this.records.get(b)?.links.has(a);
  }

  /**
   * The other active replicas of `peer`'s stage it is independent of (and, unless `linked` is false,
   * has a channel to): who could check its work.
   */
  witnesses(peer: string, o: { linked: boolean } = { linked: true }): string[] {
    const stage = this.records.get(peer)?.stage;
    return this.active(stage)
      .filter((q) => q.peerId !== peer && (!o.linked || this.linked(peer, q.peerId)) && this.independent(peer, q.peerId))
      .map((q) => q.peerId);
  }

  /**
   * Whether a and b share neither an account, nor an address, nor an arrival burst (both came from
   * the network within BURST_MS of each other: sybils are made in batches), so one may judge the
   * other's work. Loopback peers (a local swarm, one machine by design) have no address and no burst.
   */
  independent(a: string, b: string): boolean {
    const p = this.records.get(a);
    const q = this.records.get(b);
    if (!p || !q) return false;
    const same = <T>(x: T | undefined, y: T | undefined) => x !== undefined && x === y;
    const burst = p.address !== undefined && q.address !== undefined && Math.abs((p.arrivedAt ?? 0) - (q.arrivedAt ?? 0)) < BURST_MS;
    return !same(p.account?.toLowerCase(), q.account?.toLowerCase()) && !same(p.address, q.address) && !burst;
  }

  /** How many colluders among `peer`'s stage's replicas a dispute's panel must outvote: a third, at least 1. */
  tolerated(peer: string): number {
    return Math.max(1, Math.floor(this.active(this.records.get(peer)?.stage).length / 3));
  }

  /**
   * The time a microbatch on `p` is planned to take: the stage's (lower) median, unless the
   * coordinator measured `p` at least SLOW_FACTOR times slower (rounds.ts measures). Replicas within
   * that band take equal turns: timing noise, or a peer reporting early, never earns a larger share;
   * a straggler gets less. Fewer than half the replicas cannot lower the median.
   */
  plannedMs(p: Readonly<PeerRecord>): number {
    const typical = this.typicalMs(p.stage);
    const ms = p.msPerMicrobatch ?? typical;
    return ms >= SLOW_FACTOR * typical ? ms : typical;
  }

  /**
   * A replica measured slow and then routed nothing is never measured again, so one bad sample (its
   * first round after joining, say, with cold caches) would starve it for good: each round it sits
   * idle, its measure moves IDLE_EMA of the way back to its stage's median, until it is routed and
   * measured anew. A true straggler is measured slow again and gets a microbatch now and then.
   */
  relaxIdle(routed: ReadonlySet<string>): void {
    for (const p of this.active()) {
      if (routed.has(p.peerId) || p.msPerMicrobatch === undefined) continue;
      const typical = this.typicalMs(p.stage);
      if (p.msPerMicrobatch > typical) p.msPerMicrobatch += IDLE_EMA * (typical - p.msPerMicrobatch);
    }
  }

  /** A peer not measured yet is taken to be as fast as the stage's measured replicas. */
  typicalMs(stage: number): number {
    const measured = this.active(stage).flatMap((q) => (q.msPerMicrobatch === undefined ? [] : [q.msPerMicrobatch]));
    return measured.length ? median(measured) : FALLBACK_MS;
  }
}

/** The lower median: a minority of values below it cannot pull it down (with two, the faster one). */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

const info = (p: PeerRecord): PeerInfo => ({ peerId: p.peerId, stage: p.stage, name: p.name, key: p.key });
