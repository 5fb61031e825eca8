// WebRTC data channels in a browser tab: simple-peer on the tab's own RTCPeerConnection.
//
// simple-peer's main entry requires Node built-ins (buffer, events, stream), which a browser bundle
// would have to polyfill. The package also ships `simplepeer.min.js`, a browserify build with those
// polyfills inside; it is a UMD module, which esbuild wraps as CommonJS, so importing it bundles
// with no plugin and no Node shims. browser/simple-peer.d.ts gives it @types/simple-peer's types.
import Peer from 'simple-peer/simplepeer.min.js';
import type { RtcFactory } from '../shared/peer/rtc.js';
import { simplePeerRtc } from '../shared/peer/simple-peer-rtc.js';

/** The browser host's RtcFactory: no `wrtc` option, simple-peer finds `RTCPeerConnection` on window. */
export const browserRtc: RtcFactory = simplePeerRtc(Peer);
