// Browser entry for e2e/rtc-browser.test.ts: exposes the tab's side of the WebRTC checks as
// `window.__rtc`, which the test drives with page.evaluate. The peer is browser/rtc.ts, the same
// module a browser-tab host uses; signaling goes through the test's WebSocket relay.
import { browserRtc } from '../../browser/rtc.js';
import { type Connected, type ExchangeReport, type FloodReceiveReport, type FloodSendReport, connect, exchange, floodReceive, floodSend } from './rtc-steps.js';

export interface RtcTab {
  /** Join `room` on the relay and connect to the peer there; resolves with the connect time in ms. */
  connect(relay: string, room: string, initiator: boolean, timeoutMs: number): Promise<number>;
  exchange(ourSeed: number, theirSeed: number, stallMs: number): Promise<ExchangeReport>;
  floodSend(count: number, size: number): FloodSendReport;
  /** Installs the flood handler at once; `floodReceived` then waits for the result. */
  startFloodReceive(count: number, size: number, stallMs: number): void;
  floodReceived(): Promise<FloodReceiveReport>;
  destroy(): void;
  /** Resolves when the tab's peer reports its close, with the reason. */
  closed(): Promise<string>;
}

declare global {
  interface Window {
    __rtc: RtcTab;
  }
}

let current: Connected | undefined;
let flood: Promise<FloodReceiveReport> | undefined;

function connected(): Connected {
  if (!current) throw new Error('the tab has no peer: call connect first');
  return current;
}

function openSocket(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url);
  return new Promise((resolve, reject) => {
    socket.addEventListener('open', () => resolve(socket));
    socket.addEventListener('error', () => reject(new Error(`the tab could not reach the relay at ${url}`)));
  });
}

window.__rtc = {
  async connect(relay, room, initiator, timeoutMs) {
    const socket = await openSocket(`${relay}/${room}`);
    current = await connect(browserRtc, socket, initiator, timeoutMs);
    return current.connectMs;
  },
  exchange: (ourSeed, theirSeed, stallMs) => exchange(connected().peer, ourSeed, theirSeed, stallMs),
  floodSend: (count, size) => floodSend(connected().peer, count, size),
  startFloodReceive(count, size, stallMs) {
    flood = floodReceive(connected().peer, count, size, stallMs);
  },
  floodReceived: () => flood ?? Promise.reject(new Error('startFloodReceive was not called')),
  destroy: () => connected().peer.destroy(),
  closed: async () => (await connected().closed).why,
};
