// A peer's data channels to its neighbours: the peers of its own stage and of the stages next to
// it. The set follows the coordinator's membership: channels open to new neighbours and close to
// gone ones. The lower peer id of a pair initiates, so exactly one side does. Large messages are
// chunked (ChunkedLink); every message received is handed on with its sender. A channel that
// closes stays closed until the membership changes again: the coordinator routes around it.
import { ChunkedLink } from '../wire/link.js';
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
}

interface Neighbour {
  rtc: RtcPeer;
  link: ChunkedLink;
  open: boolean;
  closed: boolean;
}

export class NeighbourLinks {
  private readonly peers = new Map<string, Neighbour>();
  /** Bytes over channels that have since closed (so totals never go down). */
  private past = { sent: 0, received: 0 };

  constructor(private readonly o: LinksOptions) {}

  /** Make the channels match `wanted` (peer ids other than self). */
  set(wanted: Iterable<string>): void {
    const want = new Set([...wanted].filter((p) => p !== this.o.self));
    for (const id of [...this.peers.keys()]) if (!want.has(id)) this.drop(id);
    for (const id of want) if (!this.peers.has(id)) this.open(id);
  }

  /** A signaling message the coordinator relayed from `from`. */
  signal(from: string, data: unknown): void {
    const n = this.peers.get(from);
    if (!n || n.closed) return;
    try {
      n.rtc.signal(data);
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

  close(): void {
    for (const id of [...this.peers.keys()]) this.drop(id);
  }

  private open(id: string): void {
    const rtc = this.o.rtc({ initiator: this.o.self < id, sendSignal: (data) => this.o.sendSignal(id, data) });
    const link = new ChunkedLink({ send: (b) => rtc.send(b), onMessage: (h) => rtc.onData(h) }, undefined, (e) => this.o.log(`from ${id}: ${e.message}`), this.o.maxMessageBytes);
    const n: Neighbour = { rtc, link, open: false, closed: false };
    this.peers.set(id, n);
    link.onMessage((bytes) => this.o.onMessage(id, bytes));
    rtc.onClose((why) => {
      if (n.closed) return;
      n.closed = true;
      const was = n.open;
      n.open = false;
      this.o.log(`channel to ${id} closed: ${why}`);
      if (was) this.o.onChange(this.connected());
    });
    rtc.connected.then(
      () => {
        if (n.closed) return;
        n.open = true;
        this.o.onChange(this.connected());
      },
      (e: Error) => this.o.log(`channel to ${id} failed to open: ${e.message}`),
    );
  }

  private drop(id: string): void {
    const n = this.peers.get(id)!;
    this.peers.delete(id);
    this.past.sent += n.link.bytesSent;
    this.past.received += n.link.bytesReceived;
    const was = n.open;
    n.closed = true;
    n.open = false;
    n.rtc.destroy();
    if (was) this.o.onChange(this.connected());
  }
}
