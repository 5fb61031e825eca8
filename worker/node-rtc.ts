// WebRTC data channels in Node: simple-peer over @roamhq/wrtc, as the peer session's RtcPeer (nodeRtc)
// and, for older callers, wrapped as the project's Link (rtcPeer).
import wrtc from '@roamhq/wrtc';
import Peer from 'simple-peer';
import type { RtcFactory } from '../shared/peer/rtc.js';
import { simplePeerRtc } from '../shared/peer/simple-peer-rtc.js';
import { ChunkedLink, type Link } from '../shared/wire/link.js';

/** The Node host's RtcFactory (the peer session's transport); `rtcPeer` below predates it. */
export const nodeRtc: RtcFactory = simplePeerRtc(Peer, { wrtc });

export interface RtcPeer {
  link: Link;
  /** Feed a signaling message relayed by the coordinator. */
  signal(data: unknown): void;
  /** Resolves when the data channel is open. */
  connected: Promise<void>;
  destroy(): void;
}

/**
 * One side of a peer connection. `sendSignal` forwards our offers/answers/candidates to the other
 * peer through the coordinator. The initiator is chosen deterministically by the caller.
 */
export function rtcPeer(initiator: boolean, sendSignal: (data: unknown) => void, onError: (e: Error) => void): RtcPeer {
  const peer = new Peer({ initiator, wrtc, trickle: true, config: { iceServers: [] } });
  let handler: (b: Uint8Array) => void = () => {};
  peer.on('signal', (data) => sendSignal(data));
  peer.on('data', (d: Uint8Array) => handler(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
  peer.on('error', (e) => onError(e));
  const connected = new Promise<void>((resolve, reject) => {
    peer.once('connect', () => resolve());
    peer.once('error', reject);
  });
  const link = new ChunkedLink(
    {
      send: (bytes) => peer.send(bytes),
      onMessage: (h) => {
        handler = h;
      },
    },
    undefined,
    onError,
  );
  return {
    link,
    signal: (data) => peer.signal(data as Peer.SignalData),
    connected,
    destroy: () => peer.destroy(),
  };
}
