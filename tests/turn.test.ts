// The TURN relay as it runs for real peers (issue 20): coturn started by scripts/turn.sh with a
// shared secret, credentials made by the coordinator's TURN REST scheme, and two WebRTC peers
// (simple-peer over wrtc, the Node host's stack) that may offer relay candidates only, so their
// channel opens through coturn or not at all. A credential made with another secret, or expired, is
// refused by the relay. Each link says how its bytes travel: through the relay, or direct.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import wrtc from '@roamhq/wrtc';
import Peer from 'simple-peer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { iceServersFor, turnCredential } from '../coordinator/turn-credentials.js';
import { isRelayed, selectedPath } from '../shared/peer/link-path.js';
import type { RtcFactory, RtcPeer } from '../shared/peer/rtc.js';
import { simplePeerRtc } from '../shared/peer/simple-peer-rtc.js';
import type { IceServer } from '../shared/swarm/protocol.js';
import { nodeRtc } from '../worker/node-rtc.js';

const hasCoturn = (() => {
  try {
    execFileSync('turnserver', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!hasCoturn) console.log('turn: skipped: coturn is not installed (bash scripts/setup.sh installs it)');

const SECRET = randomBytes(16).toString('hex');
const PORT = 20000 + Math.floor(Math.random() * 10000);
const URLS = [`turn:127.0.0.1:${PORT}?transport=udp`];
let relay: ChildProcess | undefined;
let relayLog = '';

beforeAll(async () => {
  if (!hasCoturn) return;
  relay = spawn('bash', ['scripts/turn.sh', '--port', String(PORT), '--listen', '127.0.0.1', '--loopback-peers'], { env: { ...process.env, TURN_SECRET: SECRET } });
  const take = (b: Buffer) => (relayLog += b.toString());
  relay.stdout!.on('data', take);
  relay.stderr!.on('data', take);
  const t0 = Date.now();
  while (!relayLog.includes('Relay ports initialization done')) {
    if (Date.now() - t0 > 15_000 || relay.exitCode !== null) throw new Error(`coturn did not start:\n${relayLog}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}, 20_000);

afterAll(() => {
  relay?.kill('SIGTERM');
});

const relayOnly = simplePeerRtc(Peer, { wrtc, relayOnly: true });

/** Two peers signalling each other directly (the coordinator relays these in a swarm). */
function pair(rtc: RtcFactory, servers: IceServer[][]): [RtcPeer, RtcPeer] {
  const peers: RtcPeer[] = [];
  peers.push(rtc({ initiator: true, sendSignal: (s) => peers[1].signal(s), iceServers: servers[0] }));
  peers.push(rtc({ initiator: false, sendSignal: (s) => peers[0].signal(s), iceServers: servers[1] }));
  return [peers[0], peers[1]];
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timed out'> => Promise.race([p, new Promise<'timed out'>((r) => setTimeout(() => r('timed out'), ms))]);

describe.runIf(hasCoturn)('TURN relay (coturn, shared-secret credentials)', () => {
  it('two relay-only peers with the coordinator’s credentials open a channel through coturn and exchange bytes; each link says it is relayed', async () => {
    const now = Date.now() / 1000;
    const [a, b] = pair(relayOnly, [iceServersFor({ turn: { urls: URLS, secret: SECRET } }, 'pa', now), iceServersFor({ turn: { urls: URLS, secret: SECRET } }, 'pb', now)]);
    try {
      const t0 = Date.now();
      expect(await within(Promise.all([a.connected, b.connected]), 10_000), relayLog.slice(-3000)).not.toBe('timed out');
      const connectMs = Date.now() - t0;
      const message = randomBytes(60_000);
      const got = new Promise<Uint8Array>((r) => b.onData(r));
      a.send(message);
      expect(Buffer.from(await got).equals(message)).toBe(true);
      // The stack refreshes its byte counts now and then: read them once they include the message.
      let path = await a.path();
      for (const t = Date.now(); (path?.bytes ?? 0) < 60_000 && Date.now() - t < 5000; path = await a.path()) await new Promise((r) => setTimeout(r, 200));
      expect(path, 'the chosen pair').toBeDefined();
      expect(path!.local).toBe('relay');
      expect(isRelayed(path!)).toBe(true);
      expect(path!.bytes).toBeGreaterThan(60_000);
      console.log(`turn: relay-only channel open in ${connectMs} ms; ${path!.bytes} bytes through the relay`);
    } finally {
      a.destroy();
      b.destroy();
    }
  }, 30_000);

  it('refuses a credential made with another secret, or expired: no relay candidate, so no channel', async () => {
    const now = Date.now() / 1000;
    const forged: IceServer = { urls: URLS, ...turnCredential('not-the-secret', 'pa', now + 3600) };
    const expired: IceServer = { urls: URLS, ...turnCredential(SECRET, 'pb', now - 60) };
    for (const bad of [forged, expired]) {
      const [a, b] = pair(relayOnly, [[bad], [bad]]);
      try {
        expect(await within(Promise.all([a.connected, b.connected]), 6000)).toBe('timed out');
      } finally {
        a.destroy();
        b.destroy();
      }
    }
    for (const user of [forged.username, expired.username]) expect(relayLog).toContain(`check_stun_auth: Cannot find credentials of user <${user}>`);
  }, 30_000);
});

describe('link paths', () => {
  it('a channel on one machine with no ICE servers is direct: host candidates on both sides', async () => {
    const [a, b] = pair(nodeRtc, [[], []]);
    try {
      await Promise.all([a.connected, b.connected]);
      const path = await a.path();
      expect(path).toMatchObject({ local: 'host', remote: 'host' });
      expect(isRelayed(path!)).toBe(false);
    } finally {
      a.destroy();
      b.destroy();
    }
  });

  it('reads the chosen pair from the stats, by the transport’s pointer or the selected flag; nothing from junk', () => {
    const candidates = [
      { id: 'L1', type: 'local-candidate', candidateType: 'host' },
      { id: 'L2', type: 'local-candidate', candidateType: 'relay' },
      { id: 'R1', type: 'remote-candidate', candidateType: 'srflx' },
    ];
    const pairs = [
      { id: 'P1', type: 'candidate-pair', localCandidateId: 'L1', remoteCandidateId: 'R1', state: 'succeeded', bytesSent: 5, bytesReceived: 7 },
      { id: 'P2', type: 'candidate-pair', localCandidateId: 'L2', remoteCandidateId: 'R1', state: 'succeeded', bytesSent: 100, bytesReceived: 1 },
    ];
    expect(selectedPath([...candidates, ...pairs, { id: 'T', type: 'transport', selectedCandidatePairId: 'P2' }])).toEqual({ local: 'relay', remote: 'srflx', bytes: 101 });
    // The transport's count, when it has one, covers every pair ICE used.
    expect(selectedPath([...candidates, ...pairs, { id: 'T', type: 'transport', selectedCandidatePairId: 'P2', bytesSent: 900, bytesReceived: 99 }])).toMatchObject({ bytes: 999 });
    expect(selectedPath([...candidates, { ...pairs[0], selected: true }, pairs[1]])).toEqual({ local: 'host', remote: 'srflx', bytes: 12 });
    expect(selectedPath([...candidates, ...pairs])).toBeUndefined();
    expect(selectedPath([{ id: 'T', type: 'transport', selectedCandidatePairId: 'P9' }])).toBeUndefined();
    expect(selectedPath([{ id: 'L1', candidateType: 'bogus' }, { ...pairs[0], selected: true }, candidates[2]])).toBeUndefined();
    expect(selectedPath([...candidates, { ...pairs[0], selected: true, bytesSent: -1, bytesReceived: Number.NaN }])).toEqual({ local: 'host', remote: 'srflx', bytes: 0 });
  });
});
