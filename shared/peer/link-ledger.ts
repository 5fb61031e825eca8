// Each neighbour's link as this peer last read it, and the bytes it carried, relayed or direct,
// over every connection to that neighbour (a connection's stats count from 0, so a closed one's
// last reading is kept). For the dashboard's topology ("direct" / "relayed") and the peer's stats.
import { type CandidateType, type LinkPath, isRelayed } from './link-path.js';

export interface LinkRecord {
  peerId: string;
  /** The candidate types of the pair in use (or last used). */
  local: CandidateType;
  remote: CandidateType;
  /** From the first attempt to an open channel, for the last connection. */
  connectMs?: number;
  /** Bytes sent plus received over every connection to this neighbour. */
  bytes: number;
  /** Of those, the bytes that went through a TURN relay. */
  relayedBytes: number;
}

/** A neighbour's link as a dashboard shows it: how its bytes travel, and what it carried (plain JSON: it crosses IPC). */
export interface LinkBytes {
  path: 'direct' | 'relayed';
  bytes: number;
  relayedBytes: number;
}

interface Entry {
  path: LinkPath;
  /** Which connection the reading is of (a new one counts its bytes from 0). */
  connection: number;
  connectMs?: number;
  /** Bytes of this neighbour's closed connections. */
  pastBytes: number;
  pastRelayed: number;
  open: boolean;
}

/** At most this many neighbours are remembered (a view is bounded; so is what is kept of past ones). */
const MAX_KEPT = 256;

export class LinkLedger {
  private readonly entries = new Map<string, Entry>();

  /** A reading of connection `connection` to `peerId` (each connection has its own number). */
  read(peerId: string, connection: number, path: LinkPath, connectMs?: number): void {
    const e = this.entries.get(peerId);
    if (e && e.connection !== connection) {
      e.pastBytes += e.path.bytes;
      e.pastRelayed += isRelayed(e.path) ? e.path.bytes : 0;
    }
    this.entries.delete(peerId); // re-inserted last: the oldest is the first forgotten
    this.entries.set(peerId, { path, connection, connectMs, pastBytes: e?.pastBytes ?? 0, pastRelayed: e?.pastRelayed ?? 0, open: e?.connection !== connection || e.open });
    for (const id of this.entries.keys()) if (this.entries.size > MAX_KEPT) this.entries.delete(id);
  }

  /** The channels open now: the rest are closed (their last reading is kept, and folded in when another connection opens). */
  openNow(connected: readonly string[]): void {
    for (const [id, e] of this.entries) e.open = connected.includes(id);
  }

  /** The open channels' paths, as the dashboard draws them. */
  paths(): Record<string, LinkPath> {
    return Object.fromEntries([...this.entries].filter(([, e]) => e.open).map(([id, e]) => [id, e.path]));
  }

  has(peerId: string): boolean {
    return this.entries.get(peerId)?.open ?? false;
  }

  records(): LinkRecord[] {
    return [...this.entries].map(([peerId, e]) => ({
      peerId,
      local: e.path.local,
      remote: e.path.remote,
      ...(e.connectMs !== undefined && { connectMs: Math.round(e.connectMs) }),
      bytes: e.pastBytes + e.path.bytes,
      relayedBytes: e.pastRelayed + (isRelayed(e.path) ? e.path.bytes : 0),
    }));
  }

  /** Every kept neighbour's link by peer id, as the session's `links` event carries it. */
  byPeer(): Record<string, LinkBytes> {
    return Object.fromEntries(
      this.records().map((r): [string, LinkBytes] => [r.peerId, { path: isRelayed(r) ? 'relayed' : 'direct', bytes: r.bytes, relayedBytes: r.relayedBytes }]),
    );
  }
}
