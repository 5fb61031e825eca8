// The steps of e2e/rtc-browser.test.ts, run the same way by the tab (over browser/rtc.ts) and by
// Node (over worker/node-rtc.ts): signal through the test's relay, connect, exchange checked
// messages through a ChunkedLink, flood the RtcPeer itself (no ChunkedLink), watch for the close.
import type { RtcFactory, RtcPeer } from '../../shared/peer/rtc.js';
import { ChunkedLink } from '../../shared/wire/link.js';
import { compare, floodMessage, payloads } from './rtc-payloads.js';

/** What both the browser's WebSocket and the `ws` package's offer. */
export interface TextSocket {
  send(text: string): void;
  addEventListener(type: 'message', listener: (e: { data: unknown }) => void): void;
}

export interface Connected {
  peer: RtcPeer;
  /** From creating the peer to its data channel being open. */
  connectMs: number;
  /** Settles when onClose fires, with the reason and the time (performance.now()). */
  closed: Promise<{ why: string; at: number }>;
}

/** One side of the pair, signaling through `socket` (already open and joined to the room). */
export async function connect(rtc: RtcFactory, socket: TextSocket, initiator: boolean, timeoutMs: number): Promise<Connected> {
  const t0 = performance.now();
  const peer = rtc({ initiator, sendSignal: (data) => socket.send(JSON.stringify(data)) });
  socket.addEventListener('message', (e) => peer.signal(JSON.parse(String(e.data))));
  const closed = new Promise<{ why: string; at: number }>((resolve) => peer.onClose((why) => resolve({ why, at: performance.now() })));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no data channel within ${timeoutMs} ms (${initiator ? 'initiator' : 'answerer'})`)), timeoutMs);
  });
  try {
    await Promise.race([peer.connected, timeout]);
  } catch (e) {
    peer.destroy();
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return { peer, connectMs: performance.now() - t0, closed };
}

export interface ExchangeReport {
  /** Problems with what this side received; empty when every message arrived byte-identical. */
  problems: string[];
  ms: number;
}

/**
 * Send our seeded messages through a ChunkedLink and check the other side's as they arrive. Gives
 * up once nothing has arrived for `stallMs` (a machine under load may be slow, a stall is a failure).
 */
export function exchange(peer: RtcPeer, ourSeed: number, theirSeed: number, stallMs: number): Promise<ExchangeReport> {
  const t0 = performance.now();
  const want = payloads(theirSeed);
  const got: Uint8Array[] = [];
  const linkErrors: string[] = [];
  const link = new ChunkedLink({ send: (b) => peer.send(b), onMessage: (h) => peer.onData(h) }, undefined, (e) => linkErrors.push(e.message));
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = (stalled: boolean) => {
      clearTimeout(timer);
      const stall = stalled ? [`stalled: ${got.length} of ${want.length} messages arrived, then nothing for ${stallMs} ms`] : [];
      resolve({ problems: [...stall, ...linkErrors, ...compare(got, want)], ms: performance.now() - t0 });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => done(true), stallMs);
    };
    arm();
    link.onMessage((b) => {
      got.push(b);
      if (got.length === want.length) done(false);
      else arm();
    });
    for (const m of payloads(ourSeed)) link.send(m);
  });
}

export interface FloodSendReport {
  /** How long the tight loop of send() calls took. */
  loopMs: number;
  sent: number;
  /** The exception send() threw, if it did. */
  error?: string;
}

/** `count` messages of `size` bytes straight into RtcPeer.send in a tight loop, never waiting. */
export function floodSend(peer: RtcPeer, count: number, size: number): FloodSendReport {
  const t0 = performance.now();
  let sent = 0;
  try {
    for (; sent < count; sent++) peer.send(floodMessage(sent, size));
  } catch (e) {
    return { loopMs: performance.now() - t0, sent, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
  return { loopMs: performance.now() - t0, sent };
}

export interface FloodReceiveReport {
  received: number;
  /** From the call (made just before the other side starts sending) to the last message. */
  ms: number;
  problems: string[];
}

/** Bounds the report when a gap makes every later message look wrong. */
const MAX_PROBLEMS = 10;

/**
 * Receive a flood, checking each message's size and its sequence number in every byte. Gives up
 * once nothing has arrived for `stallMs`: a flood may legitimately take long, a stall may not.
 */
export function floodReceive(peer: RtcPeer, count: number, size: number, stallMs: number): Promise<FloodReceiveReport> {
  const t0 = performance.now();
  const problems: string[] = [];
  let received = 0;
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = (stalled: boolean) => {
      clearTimeout(timer);
      if (stalled) problems.push(`stalled: ${received} of ${count} messages arrived, then nothing for ${stallMs} ms`);
      resolve({ received, ms: performance.now() - t0, problems });
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => done(true), stallMs);
    };
    arm();
    peer.onData((b) => {
      const bad = b.length !== size || !b.every((x) => x === (received & 0xff));
      if (bad && problems.length < MAX_PROBLEMS) problems.push(`flood message ${received}: ${b.length} bytes, first byte ${b[0]} (lost, reordered or corrupt)`);
      if (++received === count) done(false);
      else arm();
    });
  });
}
