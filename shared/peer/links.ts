// A peer's data channels to its neighbours: the peers of its own stage and of the stages next to
// it. The set follows the coordinator's membership: channels open to new neighbours and close to
// gone ones. The lower peer id of a pair initiates, so exactly one side does. A channel that does
// not open in time, or closes while its neighbour is still wanted, is tried again by the initiator
// as a new attempt; signals carry their attempt number, so a late signal of an old attempt never
// confuses a new one. Large messages are chunked (ChunkedLink); every message received is handed
// on with its sender.
import { ChunkedLink } from '../wire/link.js';
import type { LinkPath } from './link-path.js';
import type { RtcFactory, RtcPeer } from './rtc.js';

export interface LinksOptions {
  self: string;
  rtc: RtcFactory;
  sendSignal(to: string, data: unknown): void;
  onMessage(from: string, bytes: Uint8Array): void;
  /** The set of open channels changed. */
  onChange(connected: string[]): void;
  log(line: string): void;
  /** Largest message a neighbour may make us reassemble. */
  maxMessageBytes: number;
  /** How long a first attempt may take to open before the initiator tries again (OPEN_TIMEOUT_MS; doubling each attempt). */
  openTimeoutMs?: number;
  /** Whether a TURN relay was offered: without one, a channel that cannot open says the network may be why. */
  relayed?: boolean;
}

const NO_RELAY = 'if this keeps happening, your network blocks direct connections and no relay is available (this run’s coordinator names no TURN server)';

interface Neighbour {
  attempt: number;
  rtc: RtcPeer;
  link: ChunkedLink;
  open: boolean;
  closed: boolean;
  timer?: ReturnType<typeof setTimeout>;
  /** When the first attempt of this connection started (retries keep it): what connecting took is measured from it. */
  since: number;
  /** Milliseconds from the first attempt until the channel opened. */
  connectMs?: number;
  /** This connection's number among all this peer made (its stats count from 0). */
  serial: number;
}

/** The open channel to a neighbour as its stats read: its path, what connecting took, which connection. */
export interface LinkReading {
  path: LinkPath;
  connectMs?: number;
  connection: number;
}

/** What travels in a signal: the attempt it belongs to, and simple-peer's own signal. */
interface Envelope {
  n: number;
  s: unknown;
}

const isEnvelope = (d: unknown): d is Envelope => typeof d === 'object' && d !== null && Number.isInteger((d as Envelope).n) && (d as Envelope).n >= 0 && 's' in d;
/** A closed channel to a wanted neighbour is tried again after this pause. */
const RETRY_PAUSE_MS = 1000;
/**
 * An attempt that has not opened by then is made again, each attempt waiting twice as long (to
 * MAX_OPEN_TIMEOUT_MS). Not sooner: a peer compiling its kernels at start keeps a small machine's
 * cores busy, and an attempt started again loses what its ICE checks had done.
 */
const OPEN_TIMEOUT_MS = 10_000;
const MAX_OPEN_TIMEOUT_MS = 30_000;

export class NeighbourLinks {
  private readonly peers = new Map<string, Neighbour>();
  private wanted = new Set<string>();
  /** Bytes over channels that have since closed (so totals never go down). */
  private past = { sent: 0, received: 0 };
  private closedAll = false;
  private serials = 0;

  constructor(private readonly o: LinksOptions) {}

  /** Make the channels match `wanted` (peer ids other than self). */
  set(wanted: Iterable<string>): void {
    // A membership update that arrives while the peer leaves must not open new channels.
    if (this.closedAll) return;
    this.wanted = new Set([...wanted].filter((p) => p !== this.o.self));
    for (const id of [...this.peers.keys()]) if (!this.wanted.has(id)) this.drop(id);
    for (const id of this.wanted) if (!this.peers.has(id)) this.open(id, 0);
  }

  /** A signaling message the coordinator relayed from `from`. */
  signal(from: string, data: unknown): void {
    if (!isEnvelope(data)) return this.o.log(`malformed signal from ${from} dropped`);
    let n = this.peers.get(from);
    // The initiator started a new attempt: follow it with a fresh connection.
    if (this.wanted.has(from) && (!n || data.n > n.attempt) && !this.initiates(from)) n = this.open(from, data.n);
    if (!n || n.closed || data.n !== n.attempt) return;
    try {
      n.rtc.signal(data.s);
    } catch (e) {
      this.o.log(`bad signal from ${from}: ${(e as Error).message}`);
    }
  }

  /** Send to a neighbour; false when there is no open channel to it. */
  send(to: string, bytes: Uint8Array): boolean {
    const n = this.peers.get(to);
    if (!n?.open) return false;
    try {
      n.link.send(bytes);
      return true;
    } catch (e) {
      this.o.log(`send to ${to} failed: ${(e as Error).message}`);
      return false;
    }
  }

  /** How the open channel to `peerId` carries its bytes (asked now: a reading asked before a close still comes). */
  async read(peerId: string): Promise<LinkReading | undefined> {
    const n = this.peers.get(peerId);
    const path = n?.open ? await n.rtc.path().catch(() => undefined) : undefined;
    return path && n && { path, connectMs: n.connectMs, connection: n.serial };
  }

  connected(): string[] {
    return [...this.peers].filter(([, n]) => n.open).map(([id]) => id);
  }

  has(peerId: string): boolean {
    return this.peers.has(peerId);
  }

  get bytes(): { sent: number; received: number } {
    let { sent, received } = this.past;
    for (const n of this.peers.values()) {
      sent += n.link.bytesSent;
      received += n.link.bytesReceived;
    }
    return { sent, received };
  }

  /** The largest message a neighbour may make us reassemble, from now on (the stage's largest honest message). */
  limitMessages(bytes: number): void {
    this.o.maxMessageBytes = bytes;
    for (const n of this.peers.values()) n.link.maxMessage = bytes;
  }

  close(): void {
    this.closedAll = true;
    this.wanted.clear();
    for (const id of [...this.peers.keys()]) this.drop(id);
  }

  private initiates(id: string): boolean {
    return this.o.self < id;
  }

  private open(id: string, attempt: number): Neighbour {
    const prev = this.peers.get(id);
    // A retry of a connection that never opened keeps its start; a reconnection starts afresh.
    const since = prev && prev.connectMs === undefined ? prev.since : performance.now();
    if (prev) this.drop(id);
    const rtc = this.o.rtc({ initiator: this.initiates(id), sendSignal: (s) => this.o.sendSignal(id, { n: attempt, s } satisfies Envelope) });
    const link = new ChunkedLink({ send: (b) => rtc.send(b), onMessage: (h) => rtc.onData(h) }, undefined, (e) => this.o.log(`from ${id}: ${e.message}`), this.o.maxMessageBytes);
    const n: Neighbour = { attempt, rtc, link, open: false, closed: false, since, serial: ++this.serials };
    this.peers.set(id, n);
    link.onMessage((bytes) => this.o.onMessage(id, bytes));
    if (this.initiates(id)) {
      const timeout = Math.min(MAX_OPEN_TIMEOUT_MS, (this.o.openTimeoutMs ?? OPEN_TIMEOUT_MS) * 2 ** attempt);
      n.timer = setTimeout(() => {
        if (n.open || n.closed || this.peers.get(id) !== n) return;
        this.o.log(`channel to ${id} did not open within ${timeout} ms: trying again (attempt ${attempt + 1})${this.o.relayed ? '' : `; ${NO_RELAY}`}`);
        this.open(id, attempt + 1);
      }, timeout);
    }
    rtc.onClose((why) => {
      if (n.closed) return;
      n.closed = true;
      clearTimeout(n.timer);
      const was = n.open;
      n.open = false;
      this.o.log(`channel to ${id} closed: ${why}`);
      if (was) this.o.onChange(this.connected());
      // The neighbour is still wanted: the initiator connects again (the other side follows its new attempt).
      if (this.initiates(id)) setTimeout(() => !this.closedAll && this.wanted.has(id) && this.peers.get(id) === n && this.open(id, attempt + 1), RETRY_PAUSE_MS);
    });
    rtc.connected.then(
      () => {
        if (n.closed) return;
        clearTimeout(n.timer);
        n.open = true;
        n.connectMs = performance.now() - n.since;
        this.o.onChange(this.connected());
      },
      (e: Error) => this.o.log(`channel to ${id} failed to open: ${e.message}`),
    );
    return n;
  }

  private drop(id: string): void {
    const n = this.peers.get(id)!;
    this.peers.delete(id);
    this.past.sent += n.link.bytesSent;
    this.past.received += n.link.bytesReceived;
    const was = n.open;
    n.closed = true;
    clearTimeout(n.timer);
    n.open = false;
    n.rtc.destroy();
    if (was) this.o.onChange(this.connected());
  }
}
