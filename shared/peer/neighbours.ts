// Who this peer talks to and over which channels: the view the coordinator gives it (its stage's
// replicas and some peers of the stages next to it, with their keys), the data channels that
// follow that view (links.ts), the peers it loads its stage's state from, and the heir of its state
// when it leaves. Peers the coordinator declared gone are never waited for again (ids are never reused).
import type { IceServer, PeerInfo } from '../swarm/protocol.js';
import { type PeerContext, sleep } from './context.js';
import { LinkLedger } from './link-ledger.js';
import { NeighbourLinks } from './links.js';

/** Largest message a neighbour may make this peer reassemble before it holds a stage (then the stage says: place()). */
const UNPLACED_MAX_MESSAGE_BYTES = 1 << 20;
/** Keys of past views kept for checking seals of what their peers sent before they left. */
const MAX_KEYS_KEPT = 1024;
/** How often open channels' paths and byte counts are read (getStats costs little, but not nothing). */
const PATH_READ_MS = 5000;

export class Neighbours {
  private view: PeerInfo[] = [];
  /** Session keys of peers seen in a view, the newest MAX_KEYS_KEPT (views are bounded; this keeps a few past ones). */
  private readonly seenKeys = new Map<string, string>();
  /** The stage the coordinator placed this peer on (set before its seat is built). */
  placed?: number;
  /** Peers this one is loading its stage's state from: their channels stay open whatever the view says. */
  readonly stateSources = new Set<string>();
  /** The peer taking this one's state over as it leaves. */
  handoffTo?: string;
  /** Peers the coordinator declared gone. */
  readonly gone = new Set<string>();
  private links?: NeighbourLinks;

  constructor(
    private readonly ctx: PeerContext,
    /** This peer as its dashboard draws it (once placed and registered). */
    private readonly self: () => Omit<PeerInfo, 'stage'> | undefined,
    /** Where the bytes neighbours send go (the trust gate). */
    private readonly onMessage: (from: string, bytes: Uint8Array) => void,
  ) {}

  /** Open for channels as peer `peerId`; signals go through the coordinator, candidates through `iceServers` (its welcome's). */
  open(peerId: string, sendSignal: (to: string, data: unknown) => void, iceServers: readonly IceServer[] = []): void {
    this.links = new NeighbourLinks({
      self: peerId,
      rtc: (o) => this.ctx.host.rtc({ ...o, iceServers }),
      sendSignal,
      onMessage: this.onMessage,
      onChange: (connected) => {
        this.ctx.send({ type: 'links', connected });
        this.tellNeighbours(connected);
      },
      log: (l) => this.ctx.say(l),
      maxMessageBytes: UNPLACED_MAX_MESSAGE_BYTES,
      relayed: iceServers.some((s) => s.urls.some((u) => u.startsWith('turn'))),
    });
  }

  /** How each channel's bytes travel, direct or relayed, and how many (link-ledger.ts). */
  readonly ledger = new LinkLedger();
  private refresher?: ReturnType<typeof setInterval>;

  /** The open channels as the dashboard shows them; again once the paths of new ones are read. */
  private tellNeighbours(connected: string[]): void {
    this.ledger.openNow(connected);
    this.ctx.emit('neighbours', { connected, paths: this.ledger.paths(), peers: this.known() });
    const fresh = connected.filter((id) => !this.ledger.has(id));
    if (fresh.length) void this.readPaths(fresh).then((any) => any && this.ctx.emit('neighbours', { connected, paths: this.ledger.paths(), peers: this.known() }));
    // Bytes keep flowing after a channel opens: read them now and then, to count what was relayed.
    this.refresher ??= setInterval(() => void this.readPaths(this.links?.connected() ?? []), PATH_READ_MS);
  }

  /** Read the paths of these open channels into the ledger, and tell the host the links' bytes; whether any was read. */
  private async readPaths(ids: string[], links = this.links): Promise<boolean> {
    if (!links) return false;
    const found = await Promise.all(ids.map((id) => links.read(id)));
    found.forEach((r, i) => r && this.ledger.read(ids[i], r.connection, r.path, r.connectMs));
    const any = found.some((r) => r);
    // Wall-clock time, not the host's now() (monotonic, per process): the dashboard reading it runs in another window.
    if (any) this.ctx.emit('links', { at: Date.now(), links: this.ledger.byPeer() });
    return any;
  }

  /** Close every channel and forget the view (the coordinator is lost, or the session ends). */
  close(): void {
    // A last reading of every channel, asked before they close: the bytes since the last one count too.
    if (this.links) void this.readPaths(this.links.connected(), this.links);
    this.links?.close();
    this.links = undefined;
    // After the links: closing them reports the change, which would start the reader again.
    clearInterval(this.refresher);
    this.refresher = undefined;
  }

  /** Forget the stage and the view: a new registration places this peer afresh. */
  reset(): void {
    this.close();
    this.placed = undefined;
    this.members = [];
  }

  signal(from: string, data: unknown): void {
    this.links?.signal(from, data);
  }

  /** Bytes to a neighbour; false when there is no open channel to it. */
  send(to: string, bytes: Uint8Array): boolean {
    return this.links?.send(to, bytes) ?? false;
  }

  get bytes(): { sent: number; received: number } {
    return this.links?.bytes ?? { sent: 0, received: 0 };
  }

  /** A neighbour's session key (its frames' seals are checked against it). */
  /** Whether a data channel to `peerId` is open now. */
  linked(peerId: string): boolean {
    return !!this.links?.connected().includes(peerId);
  }

  keyOf(peerId: string): string | undefined {
    return this.members.find((p) => p.peerId === peerId)?.key;
  }

  /** The session key of a peer in this view or a recent one: a leaver's state reaches its heir after the leaver left the view. */
  keySeen(peerId: string): string | undefined {
    return this.keyOf(peerId) ?? this.seenKeys.get(peerId);
  }

  /** The peers of this one's view. */
  get members(): PeerInfo[] {
    return this.view;
  }
  set members(peers: PeerInfo[]) {
    this.view = peers;
    for (const p of peers) {
      // Taken out and put back, so the oldest seen come first and go first.
      this.seenKeys.delete(p.peerId);
      this.seenKeys.set(p.peerId, p.key);
    }
    for (const id of this.seenKeys.keys()) {
      if (this.seenKeys.size <= MAX_KEYS_KEPT) break;
      this.seenKeys.delete(id);
    }
  }

  /** The view changed. */
  setView(peers: PeerInfo[]): void {
    this.members = peers;
    if (this.placed === undefined || !this.links) return;
    this.connect();
    this.tellNeighbours(this.links.connected());
  }

  /**
   * The coordinator placed this peer on `stage`, loading its state from `sources` (if replicas); no
   * neighbour may make it reassemble more than `maxMessageBytes` (the stage's largest honest message).
   */
  place(stage: number, sources: readonly string[], maxMessageBytes: number): void {
    this.links?.limitMessages(maxMessageBytes);
    this.placed = stage;
    this.stateSources.clear();
    for (const p of sources) this.stateSources.add(p);
    this.connect();
  }

  /** The coordinator names the peer taking this one's state over. */
  handOffTo(peerId: string): void {
    this.handoffTo = peerId;
    this.connect();
  }

  /**
   * Channels to the peers of our stage and the stages next to it, and to the replicas we load state
   * from; once leaving, only to the heir of our state (the others have dropped us, and reconnecting
   * to them would only start channels that the end of the session cuts).
   */
  connect(): void {
    if (this.placed === undefined || !this.links) return;
    const heir = this.handoffTo ? [this.handoffTo] : [];
    this.links.set(this.ctx.leaving() ? heir : [...this.neighbourIds(this.placed), ...heir, ...this.stateSources]);
  }

  /** The first of `peers` with an open data channel (not one known to be gone), or undefined after the timeout. */
  async firstChannel(peers: Set<string>, timeoutMs = this.ctx.timeoutMs): Promise<string | undefined> {
    const deadline = this.ctx.host.now() + timeoutMs;
    for (;;) {
      for (const p of peers) if (this.gone.has(p)) peers.delete(p);
      const open = this.links?.connected().find((p) => peers.has(p));
      if (open || peers.size === 0 || this.ctx.host.now() > deadline) return open;
      await sleep(50);
    }
  }

  /** The peers it was told of and itself: what a dashboard draws the stages from. */
  known(): PeerInfo[] {
    const me = this.self();
    return [...(this.placed !== undefined && me ? [{ ...me, stage: this.placed }] : []), ...this.members];
  }

  /** Peers of the same stage and of the stages next to it. */
  private neighbourIds(stage: number): string[] {
    const self = this.ctx.peerId();
    return this.members.filter((p) => p.peerId !== self && Math.abs(p.stage - stage) <= 1).map((p) => p.peerId);
  }
}
