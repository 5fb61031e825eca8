// WebRTC data channels in Node: simple-peer over @roamhq/wrtc, behind the session's RtcPeer interface.
import wrtc from '@roamhq/wrtc';
import Peer from 'simple-peer';
import type { RtcFactory } from '../shared/peer/rtc.js';
import { simplePeerRtc } from '../shared/peer/simple-peer-rtc.js';

/** The Node host's RtcFactory (the peer session's transport). */
export const nodeRtc: RtcFactory = simplePeerRtc(Peer, { wrtc });
