// The RtcPeer contract of worker/node-rtc.ts (simple-peer over @roamhq/wrtc): two real peers in
// this process, their signaling handed straight across. The same contract holds for a session in a
// worker (browser/rtc-relay.ts): its stand-in peers reach real ones held by "the page" over a real
// MessageChannel, messages transferred as a worker's are. The browser side of the same adapter is
// covered by e2e/rtc-browser.test.ts.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RtcRelay, relayedRtc } from '../browser/rtc-relay.js';
import type { RtcNews, RtcOrder } from '../browser/worker-protocol.js';
import type { RtcFactory, RtcPeer } from '../shared/peer/rtc.js';
import { nodeRtc } from '../worker/node-rtc.js';

const made: RtcPeer[] = [];
afterEach(() => {
  for (const p of made.splice(0)) p.destroy();
});

const channels: MessageChannel[] = [];
afterAll(() => {
  for (const c of channels) {
    c.port1.close();
    c.port2.close();
  }
});

/** Peers as a worker's session sees them: stand-ins whose real connections (nodeRtc) live across a MessageChannel. */
function relayedThroughAPort(): RtcFactory {
  const channel = new MessageChannel();
  channels.push(channel);
  const relay = new RtcRelay(nodeRtc, (n, transfer = []) => channel.port1.postMessage(n, transfer));
  const worker = relayedRtc(
    (o, transfer = []) => channel.port2.postMessage(o, transfer),
    (id) => relay.path(id),
  );
  channel.port1.onmessage = (e: MessageEvent<RtcOrder>) => relay.order(e.data);
  channel.port2.onmessage = (e: MessageEvent<RtcNews>) => worker.news(e.data);
  return worker.factory;
}

describe.each([
  ['nodeRtc', nodeRtc],
  ['nodeRtc relayed to a worker', relayedThroughAPort()],
])('%s', (_name, rtc) => {
  function pair(): [RtcPeer, RtcPeer] {
    const peers: RtcPeer[] = [];
    const relay = (to: number) => (data: unknown) => setImmediate(() => peers[to].signal(data));
    peers.push(rtc({ initiator: true, sendSignal: relay(1) }), rtc({ initiator: false, sendSignal: relay(0) }));
    made.push(...peers);
    return [peers[0], peers[1]];
  }

  /** Resolves with every reason onClose reports, a little after the first one. */
  function closeReasons(p: RtcPeer): Promise<string[]> {
    const reasons: string[] = [];
    return new Promise((resolve) => {
      p.onClose((why) => {
        reasons.push(why);
        setTimeout(() => resolve(reasons), 200);
      });
    });
  }

  it('says how an open channel’s bytes travel (on loopback, host to host: direct)', async () => {
    const [a, b] = pair();
    expect(await a.path()).toBeUndefined(); // not open yet
    await Promise.all([a.connected, b.connected]);
    expect(await a.path()).toMatchObject({ local: 'host', remote: 'host' });
  });

  it('refuses to send before the data channel is open', () => {
    const [a] = pair();
    expect(() => a.send(new Uint8Array(1))).toThrow(/before the WebRTC data channel is open/);
  });

  it('delivers messages that arrived before onData was called, in order, as plain Uint8Arrays', async () => {
    const [a, b] = pair();
    await Promise.all([a.connected, b.connected]);
    a.send(Uint8Array.of(1, 2, 3));
    a.send(Uint8Array.of(4));
    await new Promise((r) => setTimeout(r, 300));
    const got: Uint8Array[] = [];
    b.onData((bytes) => got.push(bytes));
    await new Promise((r) => setTimeout(r, 50));
    expect(got.map((g) => [...g])).toEqual([[1, 2, 3], [4]]);
    expect(got.every((g) => Object.getPrototypeOf(g) === Uint8Array.prototype)).toBe(true);
  });

  it('absorbs a burst larger than the 16 MiB send queue of a data channel: all of it arrives, in order', async () => {
    // Straight into the channel, wrtc silently drops what does not fit in its send queue.
    const [a, b] = pair();
    await Promise.all([a.connected, b.connected]);
    const count = (40 * 2 ** 20) / 65536;
    const firstBytes: number[] = [];
    const all = new Promise<void>((resolve, reject) => {
      const stalled = () => reject(new Error(`${firstBytes.length} of ${count} messages arrived, then nothing for 5 s`));
      let timer = setTimeout(stalled, 5000);
      b.onData((bytes) => {
        firstBytes.push(bytes[0]);
        clearTimeout(timer);
        if (firstBytes.length === count) resolve();
        else timer = setTimeout(stalled, 5000);
      });
    });
    const message = new Uint8Array(65536);
    for (let i = 0; i < count; i++) a.send(message.fill(i & 0xff)); // reused: send must not keep a reference
    await all;
    expect(firstBytes).toEqual(Array.from({ length: count }, (_, i) => i & 0xff));
  }, 60_000);

  it('reports a close once on each side, never from inside destroy(), and refuses to send afterwards', async () => {
    const [a, b] = pair();
    await Promise.all([a.connected, b.connected]);
    const bClosed = closeReasons(b);
    const aReasons: string[] = [];
    a.onClose((why) => aReasons.push(why));
    a.destroy();
    a.destroy(); // idempotent
    expect(aReasons, 'onClose ran inside destroy()').toEqual([]);
    expect(await bClosed).toEqual(['the remote peer closed the connection']);
    expect(aReasons).toEqual(['destroyed locally']);
    expect(() => a.send(new Uint8Array(1))).toThrow(/closed WebRTC connection \(destroyed locally\)/);
    expect(() => b.send(new Uint8Array(1))).toThrow(/closed WebRTC connection \(the remote peer closed/);
  });

  it('tells a handler installed after the close, and rejects `connected` when closed before opening', async () => {
    const [a] = pair();
    a.destroy();
    await expect(a.connected).rejects.toThrow(/closed before its data channel opened: destroyed locally/);
    expect(await closeReasons(a)).toEqual(['destroyed locally']);
  });
});
