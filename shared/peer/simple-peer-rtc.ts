// simple-peer behind the RtcPeer interface. Node and a browser tab differ only in how they build a
// simple-peer (Node hands it @roamhq/wrtc, a tab uses the package's prebuilt browser bundle on its
// own RTCPeerConnection), so each host passes its constructor in and shares everything else.
// Nothing of simple-peer is imported here, not even its types (they describe Node streams and would
// pull Node's types into the core): the part of it this adapter uses is spelled out below.
import { ChannelState } from './channel-state.js';
import { type LinkPath, selectedPath } from './link-path.js';
import type { RtcFactory, RtcPeer } from './rtc.js';

/** The part of a simple-peer instance the adapter uses. */
export interface SimplePeerLike {
  on(event: 'signal', cb: (data: unknown) => void): void;
  on(event: 'data', cb: (data: Uint8Array) => void): void;
  on(event: 'error', cb: (e: Error) => void): void;
  on(event: 'close', cb: () => void): void;
  once(event: 'connect', cb: () => void): void;
  signal(data: never): void;
  send(data: Uint8Array): void;
  destroy(): void;
  /** Bytes waiting in the data channel's send queue (its bufferedAmount). */
  readonly bufferSize: number;
  /** The connection's stats reports, flattened (simple-peer has it; its published types omit it). */
  getStats?(cb: (err: Error | null, reports: Record<string, unknown>[]) => void): void;
}

export interface SimplePeerOptions {
  initiator: boolean;
  trickle: boolean;
  config: RTCConfiguration;
  /** Node's WebRTC implementation (@roamhq/wrtc); a browser has its own. */
  wrtc?: { RTCPeerConnection: typeof RTCPeerConnection; RTCSessionDescription: typeof RTCSessionDescription; RTCIceCandidate: typeof RTCIceCandidate };
}

export type SimplePeerConstructor = new (opts: SimplePeerOptions) => SimplePeerLike;

/**
 * Most bytes we let wait in the data channel's own send queue (its bufferedAmount). That queue is
 * capped at 16 MiB: past it Chromium's send() throws and wrtc's silently drops the message (see
 * e2e/rtc-browser.test.ts, tests/node-rtc.test.ts). Beyond this mark, send() keeps a backlog.
 */
const HIGH_WATER = 8 * 2 ** 20;
/**
 * How often a backlog checks whether the channel's queue has room. A timer, because simple-peer
 * does not expose the 'bufferedamountlow' event, and its own write() path, which waits for that
 * event, stalls for good with wrtc now and then (a write left pending with bufferedAmount at 0).
 * A hidden tab runs timers about once a second, which caps a backlogged tab at HIGH_WATER a second.
 */
const POLL_MS = 5;

/**
 * Most remote ICE candidates one connection takes. A peer gathers a handful per local address and
 * protocol, and one more per STUN and TURN server; a neighbour sending more is sending garbage.
 */
const MAX_REMOTE_CANDIDATES = 64;

type OwnSignal = { type: 'offer' | 'answer'; sdp: string } | { type: 'candidate'; candidate: { candidate: string; sdpMLineIndex: number | null; sdpMid: string | null } };

/** `d` as one of the signals simple-peer sends on a data-channel-only connection, or undefined. */
function ownSignal(d: unknown): OwnSignal | undefined {
  if (typeof d !== 'object' || d === null) return undefined;
  const { type, sdp, candidate: c } = d as { type?: unknown; sdp?: unknown; candidate?: unknown };
  if ((type === 'offer' || type === 'answer') && typeof sdp === 'string') return { type, sdp };
  if (type !== 'candidate' || typeof c !== 'object' || c === null) return undefined;
  const { candidate, sdpMLineIndex, sdpMid } = c as { candidate?: unknown; sdpMLineIndex?: unknown; sdpMid?: unknown };
  if (typeof candidate !== 'string') return undefined;
  return { type, candidate: { candidate, sdpMLineIndex: typeof sdpMLineIndex === 'number' ? sdpMLineIndex : null, sdpMid: typeof sdpMid === 'string' ? sdpMid : null } };
}

/**
 * An RtcFactory building its peers with `Peer`; `extra` adds host options (Node's `wrtc`), and
 * `relayOnly` offers relay candidates only: through TURN, so neighbours never learn this machine's address.
 */
export function simplePeerRtc(Peer: SimplePeerConstructor, extra: Pick<SimplePeerOptions, 'wrtc'> & { relayOnly?: boolean } = {}): RtcFactory {
  const { relayOnly, ...host } = extra;
  return (o) => {
    const config: RTCConfiguration = { iceServers: (o.iceServers ?? []).map((s) => ({ ...s })), ...(relayOnly && { iceTransportPolicy: 'relay' as const }) };
    const peer = new Peer({ ...host, initiator: o.initiator, trickle: true, config });
    peer.on('signal', (data) => o.sendSignal(data));
    return new SimplePeerRtc(peer);
  };
}

class SimplePeerRtc implements RtcPeer {
  private readonly ch = new ChannelState();
  /** Messages waiting for room in the channel's send queue (see HIGH_WATER). */
  private readonly backlog: Uint8Array[] = [];
  private pumpTimer: ReturnType<typeof setTimeout> | undefined;
  /** Remote ICE candidates taken so far (see MAX_REMOTE_CANDIDATES). */
  private candidates = 0;

  constructor(private readonly peer: SimplePeerLike) {
    peer.once('connect', () => this.ch.opened());
    // simple-peer emits 'error' (with the cause) and then 'close'; the first one names the reason.
    peer.on('error', (e) => this.closed(closeReason(e)));
    peer.on('close', () => this.closed('the remote peer closed the connection'));
    peer.on('data', (d: Uint8Array) => this.received(d));
  }

  get connected(): Promise<void> {
    return this.ch.connected;
  }

  signal(data: unknown): void {
    // Signals that trail a closed connection (late candidates) are expected; drop them.
    if (this.ch.closedWhy !== undefined) return;
    // The coordinator relays whatever a neighbour sends: only the kinds of signal simple-peer itself
    // makes get through, rebuilt field by field, and only so many candidates. simple-peer keeps every
    // candidate that comes before the offer and adds a transceiver per request, without limit.
    const s = ownSignal(data);
    if (!s || ('candidate' in s && ++this.candidates > MAX_REMOTE_CANDIDATES)) return;
    this.peer.signal(s as never);
  }

  send(bytes: Uint8Array): void {
    this.ch.checkSend();
    if (this.backlog.length === 0 && this.peer.bufferSize < HIGH_WATER) {
      this.peer.send(bytes);
      return;
    }
    this.backlog.push(bytes.slice()); // the caller may reuse its buffer before the backlog drains
    this.pumpLater();
  }

  onData(handler: (bytes: Uint8Array) => void): void {
    this.ch.onData(handler);
  }

  onClose(handler: (why: string) => void): void {
    this.ch.onClose(handler);
  }

  path(): Promise<LinkPath | undefined> {
    const peer = this.peer;
    if (!this.ch.open || !peer.getStats) return Promise.resolve(undefined);
    return new Promise((resolve) => peer.getStats?.((err, reports) => resolve(err ? undefined : selectedPath(reports))));
  }

  destroy(): void {
    this.closed('destroyed locally');
    this.peer.destroy();
  }

  private received(d: Uint8Array): void {
    // simple-peer hands out Buffers (a polyfill in the tab); a plain view keeps Uint8Array semantics
    // (Buffer#slice shares memory, Uint8Array#slice copies) without copying the payload.
    this.ch.received(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }

  private pumpLater(): void {
    this.pumpTimer ??= setTimeout(() => this.pump(), POLL_MS);
  }

  /** Moves the backlog into the channel, in order, as far as its queue has room. */
  private pump(): void {
    this.pumpTimer = undefined;
    try {
      while (this.ch.closedWhy === undefined && this.backlog.length > 0 && this.peer.bufferSize < HIGH_WATER) {
        const next = this.backlog.shift();
        if (next) this.peer.send(next);
      }
    } catch (e) {
      // Nobody is on the stack to catch this (a timer): a channel that cannot send is broken.
      this.closed(`sending failed: ${e instanceof Error ? e.message : String(e)}`);
      this.peer.destroy();
      return;
    }
    if (this.ch.closedWhy === undefined && this.backlog.length > 0) this.pumpLater();
  }

  private closed(why: string): void {
    if (!this.ch.close(why)) return;
    clearTimeout(this.pumpTimer);
    this.backlog.length = 0;
  }
}

/** What simple-peer's codes mean to someone reading "channel to X closed: …". */
const CODE_SENTENCES: Record<string, string> = {
  ERR_ICE_CONNECTION_FAILURE: 'no network path to the peer held (ICE failed)',
  ERR_CONNECTION_FAILURE: 'the connection failed',
  ERR_DATA_CHANNEL: 'the data channel failed',
  ERR_SIGNALING: 'the handshake failed',
  ERR_SET_REMOTE_DESCRIPTION: "the peer's handshake was refused",
  ERR_ADD_ICE_CANDIDATE: 'a network address the peer sent was refused',
};

/** A simple-peer error (tagged with a code: ERR_DATA_CHANNEL, ...) as the reason a channel closed. */
export function closeReason(e: Error): string {
  const code = 'code' in e && typeof e.code === 'string' ? e.code : undefined;
  // Chromium reports the far end closing (an SCTP ABORT, "User-Initiated Abort, reason=Close called") as an error.
  if (/User-Initiated Abort/i.test(e.message)) return 'the remote peer closed the channel';
  const sentence = code && CODE_SENTENCES[code];
  return sentence ? `${sentence} (${e.message})` : e.message;
}
