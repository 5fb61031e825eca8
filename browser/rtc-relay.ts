// WebRTC for a peer session in a worker: Chromium offers RTCPeerConnection only to pages, so the
// page holds each connection (RtcRelay, over the page's own RtcFactory) and the worker's session
// holds a stand-in with the same contract (relayedRtc: shared/peer/rtc.ts). Messages cross as
// transferred buffers, so a boundary tensor is copied once per side, never serialised.
import type { LinkPath } from '../shared/peer/link-path.js';
import { ChannelState } from '../shared/peer/channel-state.js';
import type { RtcFactory, RtcPeer, RtcPeerOptions } from '../shared/peer/rtc.js';
import type { RtcNews, RtcOrder } from './worker-protocol.js';

type PostOrder = (o: RtcOrder, transfer?: Transferable[]) => void;
type PostNews = (n: RtcNews, transfer?: Transferable[]) => void;

/** A copy of `bytes` in a buffer of its own, to transfer (the sender may reuse its buffer). */
const own = (bytes: Uint8Array): Uint8Array => bytes.slice();

/** The page's side: the real connections, opened, fed and closed as the worker's session orders. */
export class RtcRelay {
  private readonly peers = new Map<number, RtcPeer>();

  constructor(
    private readonly rtc: RtcFactory,
    private readonly post: PostNews,
  ) {}

  order(o: RtcOrder): void {
    if (o.order === 'open') return this.open(o.id, o);
    const peer = this.peers.get(o.id);
    if (!peer) return; // closed already: what trails it is dropped, as a closed connection drops it
    if (o.order === 'signal') peer.signal(o.data);
    else if (o.order === 'send') this.send(o.id, peer, o.bytes);
    else {
      this.peers.delete(o.id);
      peer.destroy();
    }
  }

  path(id: number): Promise<LinkPath | undefined> {
    return this.peers.get(id)?.path() ?? Promise.resolve(undefined);
  }

  /** The worker is gone: close every connection it held. */
  closeAll(): void {
    for (const peer of this.peers.values()) peer.destroy();
    this.peers.clear();
  }

  private open(id: number, o: Pick<RtcPeerOptions, 'initiator' | 'iceServers'>): void {
    const peer = this.rtc({ ...o, sendSignal: (data) => this.post({ id, event: 'signal', data }) });
    this.peers.set(id, peer);
    peer.onData((bytes) => {
      const b = own(bytes);
      this.post({ id, event: 'data', bytes: b }, [b.buffer]);
    });
    peer.connected.then(
      () => this.post({ id, event: 'open' }),
      () => {}, // onClose says why
    );
    peer.onClose((why) => {
      if (this.peers.get(id) !== peer) return; // the worker destroyed it: it knows
      this.peers.delete(id);
      this.post({ id, event: 'close', why });
    });
  }

  private send(id: number, peer: RtcPeer, bytes: Uint8Array): void {
    try {
      peer.send(bytes);
    } catch (e) {
      // The worker's stand-in sends only while open; a send refused here means the channel broke.
      this.peers.delete(id);
      peer.destroy();
      this.post({ id, event: 'close', why: `sending failed: ${(e as Error).message}` });
    }
  }
}

/** The worker's side: an RtcFactory whose peers are stand-ins for the page's connections. */
export function relayedRtc(post: PostOrder, path: (id: number) => Promise<LinkPath | undefined>): { factory: RtcFactory; news(n: RtcNews): void } {
  const peers = new Map<number, RelayedPeer>();
  let next = 1;
  return {
    factory: (o) => {
      const id = next++;
      const peer = new RelayedPeer(id, o, post, path, () => peers.delete(id));
      peers.set(id, peer);
      post({ id, order: 'open', initiator: o.initiator, ...(o.iceServers && { iceServers: o.iceServers.map((s) => ({ ...s })) }) });
      return peer;
    },
    news: (n) => peers.get(n.id)?.news(n),
  };
}

class RelayedPeer implements RtcPeer {
  private readonly ch = new ChannelState();

  constructor(
    private readonly id: number,
    private readonly o: RtcPeerOptions,
    private readonly post: PostOrder,
    private readonly askPath: (id: number) => Promise<LinkPath | undefined>,
    private readonly forget: () => void,
  ) {}

  get connected(): Promise<void> {
    return this.ch.connected;
  }

  news(n: RtcNews): void {
    if (this.ch.closedWhy !== undefined) return;
    if (n.event === 'signal') this.o.sendSignal(n.data);
    else if (n.event === 'open') this.ch.opened();
    else if (n.event === 'data') this.ch.received(n.bytes);
    else this.closed(n.why);
  }

  signal(data: unknown): void {
    if (this.ch.closedWhy === undefined) this.post({ id: this.id, order: 'signal', data });
  }

  send(bytes: Uint8Array): void {
    this.ch.checkSend();
    const b = own(bytes);
    this.post({ id: this.id, order: 'send', bytes: b }, [b.buffer]);
  }

  onData(handler: (bytes: Uint8Array) => void): void {
    this.ch.onData(handler);
  }

  onClose(handler: (why: string) => void): void {
    this.ch.onClose(handler);
  }

  path(): Promise<LinkPath | undefined> {
    return this.ch.open ? this.askPath(this.id) : Promise.resolve(undefined);
  }

  destroy(): void {
    if (this.ch.closedWhy !== undefined) return;
    this.post({ id: this.id, order: 'destroy' });
    this.closed('destroyed locally');
  }

  private closed(why: string): void {
    if (this.ch.close(why)) this.forget();
  }
}
