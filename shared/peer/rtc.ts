// The WebRTC data channel a host hands the peer session: one per neighbour. Node implements it
// with simple-peer over @roamhq/wrtc (worker/node-rtc.ts), a browser tab with simple-peer over the
// browser's own RTCPeerConnection (browser/rtc.ts). The session only ever sees this interface.
import type { IceServer } from '../swarm/protocol.js';
import type { LinkPath } from './link-path.js';

/** One side of a peer-to-peer connection: a reliable, ordered, message-oriented data channel. */
export interface RtcPeer {
  /** Feed a signaling message (offer, answer, ICE candidate) the coordinator relayed from the other side. */
  signal(data: unknown): void;
  /** Send one message (at most 64 KiB: ChunkedLink splits larger ones). */
  send(bytes: Uint8Array): void;
  /** The handler of every message received (replaces the previous one). */
  onData(handler: (bytes: Uint8Array) => void): void;
  /** Resolves when the data channel is open; rejects if the connection fails first. */
  readonly connected: Promise<void>;
  /** Called once when the connection closes or fails, with why. */
  onClose(handler: (why: string) => void): void;
  /** How its bytes travel (direct or through a relay), once open; undefined before, or if the stack cannot tell. */
  path(): Promise<LinkPath | undefined>;
  /** Close the connection and free its resources; idempotent. */
  destroy(): void;
}

export interface RtcPeerOptions {
  /** Exactly one side of a pair initiates (the session picks the lower peer id). */
  initiator: boolean;
  /** Forward our offers, answers and candidates to the other side, through the coordinator. */
  sendSignal(data: unknown): void;
  /** STUN and TURN servers to gather candidates through (none: host candidates only, one machine or a LAN). */
  iceServers?: readonly IceServer[];
}

export type RtcFactory = (o: RtcPeerOptions) => RtcPeer;
