// Peer sessions in this process (the Node host: Dawn, wrtc, files) with a real coordinator.
// - The coordinator's messages reach a peer in bursts: a busy peer's event loop (a game, a chain
//   call, a shader compile) lets several frames pile up, and the socket then delivers them in one
//   task. The session must act on the newest membership even when a `peers` update is dispatched
//   before the `assign` it follows has been handled (a run once hung on exactly that: the
//   initiating peer never opened its channel).
// - Joining the run on chain fails at first (a busy RPC): the peer trains anyway and keeps trying
//   until it has joined, since only a joined account can claim what it earned.
// - The last peer of a stage pauses (a graceful leave) while a newcomer is setting up for that
//   stage: it hands its state over, and the run goes on from the step it left at.
// - Before a stage's first averaging its replicas give joiners the seeded init: a joiner refuses
//   one that is not the init it builds itself, however plausible (issue 19 #7).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import WebSocket from 'ws';
import { SWARM_DEFAULTS, runConfig } from '../cli/swarm.js';
import { Coordinator } from '../coordinator/server.js';
import type { PeerWallet } from '../shared/peer/host.js';
import { PeerSession, type SessionOptions } from '../shared/peer/session.js';
import type { SessionEvents } from '../shared/peer/session-events.js';
import { poisonedState } from '../bench/adversary.js';
import type { WebSocketConstructor, WebSocketLike } from '../shared/swarm/coordinator-client.js';
import { nodeHost } from '../worker/node-host.js';
import { TINY_MODEL } from './tiny-swarm.js';

const BURST_MS = 300;

/** A `ws` socket whose incoming messages are held and handed on all at once every BURST_MS. */
class BurstySocket implements WebSocketLike {
  onopen: ((ev: never) => void) | null = null;
  onmessage: ((ev: never) => void) | null = null;
  onclose: ((ev: never) => void) | null = null;
  onerror: ((ev: never) => void) | null = null;
  private readonly ws: WebSocket;
  private readonly held: unknown[] = [];
  private readonly timer = setInterval(() => this.flush(), BURST_MS);

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.onopen = (ev) => this.onopen?.(ev as never);
    this.ws.onmessage = (ev) => this.held.push(ev);
    this.ws.onerror = (ev) => this.onerror?.(ev as never);
    this.ws.onclose = (ev) => {
      clearInterval(this.timer);
      this.onclose?.(ev as never);
    };
  }

  get readyState(): number {
    return this.ws.readyState;
  }

  send(data: string): void {
    this.ws.send(data);
  }

  close(code?: number, reason?: string): void {
    this.ws.close(code, reason);
  }

  private flush(): void {
    for (const ev of this.held.splice(0)) this.onmessage?.(ev as never);
  }
}

const ended: Promise<string>[] = [];
let coord: Coordinator | undefined;
afterEach(async () => {
  coord?.stopRun('test over');
  await Promise.all(ended.splice(0));
  await coord?.close();
});

const lines: string[] = [];
const said = () => `the coordinator and the peers said:\n${lines.join('\n')}`;

const CHAIN = { chainId: 31337, registry: `0x${'1'.repeat(40)}`, tokens: `0x${'2'.repeat(40)}`, runId: '1' };

async function startCoordinator(steps: number, chain?: typeof CHAIN, averageEvery = SWARM_DEFAULTS.averageEvery, evalEvery = 0): Promise<Coordinator> {
  lines.length = 0;
  const run = await runConfig({ ...SWARM_DEFAULTS, ...TINY_MODEL, workers: 2, stages: 2, layers: 2, microbatches: 2, steps, evalEvery, evalBatches: 1, averageEvery });
  coord = new Coordinator({ run, chain, log: (l) => lines.push(`coordinator: ${l}`) });
  await coord.listen(0);
  return coord;
}

function startPeer(c: Coordinator, name: string, socket: WebSocketConstructor = WebSocket, wallet?: PeerWallet, hostile: Partial<SessionOptions> = {}): PeerSession {
  const host = nodeHost({ data: SWARM_DEFAULTS.data, stateDir: mkdtempSync(join(tmpdir(), 'session-test-')), benchmark: false, env: {}, log: (l) => lines.push(`${name}: ${l}`) });
  const s = new PeerSession({ ...host, WebSocket: socket, wallet }, { coordinator: c.url!, name, ...hostile });
  s.on('phase', (p) => lines.push(`${name}: [${p.phase}] ${p.why}`));
  ended.push(s.run());
  return s;
}

async function until(what: string, done: () => boolean, ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!done()) {
    if (Date.now() - t0 > ms) throw new Error(`gave up after ${ms / 1000} s waiting for ${what}; ${said()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('peer session', () => {
  it('connects and trains when coordinator messages arrive in bursts (membership newer than the assign); both stages hear the validation loss', async () => {
    const c = await startCoordinator(4, undefined, SWARM_DEFAULTS.averageEvery, 2);
    let trained = false;
    c.trained.then(() => (trained = true));
    const sessions: PeerSession[] = [];
    const lastReading = new Map<PeerSession, SessionEvents['links']>();
    const validation = new Map<PeerSession, SessionEvents['evaluated'][]>();
    for (const name of ['a', 'b']) {
      const s = startPeer(c, name, BurstySocket);
      s.on('links', (r) => lastReading.set(s, r));
      validation.set(s, []);
      s.on('evaluated', (v) => validation.get(s)!.push(v));
      sessions.push(s);
      // The second peer registers while the first one's assign is still held: both reach it in one burst.
      await new Promise((r) => setTimeout(r, 20));
    }
    await until('the run to train', () => trained);
    expect(c.stats.binaryBytesReceived).toBe(0);
    // Only the last stage computes it; the coordinator tells every peer, so every dashboard draws it.
    await until('the final validation loss to reach both peers', () => sessions.every((s) => validation.get(s)!.some((v) => v.step === 4)));
    const [first, second] = sessions.map((s) => validation.get(s)!);
    expect(first.map((v) => v.step)).toEqual([2, 4]);
    expect(second).toEqual(first);
    expect(first.every((v) => v.valLoss > 0 && Number.isFinite(v.valLoss))).toBe(true);
    // Each peer read its channel to the other as it opened (and every 5 s): on loopback it is direct, and it carried bytes.
    for (const [s, other] of [sessions, [...sessions].reverse()]) {
      const r = lastReading.get(s);
      expect(r, `${s.peerId}'s link readings`).toBeDefined();
      expect(Object.keys(r!.links)).toEqual([other.peerId]);
      expect(r!.links[other.peerId!]).toMatchObject({ path: 'direct', relayedBytes: 0 });
      expect(r!.links[other.peerId!].bytes).toBeGreaterThan(0);
      expect(Math.abs(Date.now() - r!.at), 'a wall-clock time').toBeLessThan(120_000);
      expect(JSON.parse(JSON.stringify(r)), 'plain JSON').toEqual(r);
    }
  }, 180_000);

  it('a peer whose first joins on chain fail trains anyway and keeps trying until it has joined', async () => {
    const c = await startCoordinator(150, CHAIN);
    let trained = false;
    c.trained.then(() => (trained = true));
    const signer = privateKeyToAccount(generatePrivateKey());
    const joins: string[] = [];
    const flaky: PeerWallet = {
      account: signer.address,
      signMessage: (message) => signer.signMessage({ message }),
      async joinRun(chain) {
        joins.push(chain.runId);
        if (joins.length < 3) throw new Error('HTTP request failed: the RPC timed out');
      },
    };
    startPeer(c, 'a', WebSocket, flaky);
    startPeer(c, 'b');
    await until('the third join attempt', () => lines.includes(`a: joined run 1 on chain 31337 as ${signer.address}`));
    expect(trained, 'the run waited for the join').toBe(false);
    await until('the run to train', () => trained);
    expect(joins).toEqual(['1', '1', '1']);
    expect(lines.filter((l) => l.startsWith('a: could not join run 1 on chain'))).toHaveLength(2);
    expect(lines.some((l) => l.includes('b: ') && l.includes('has no wallet'))).toBe(true);
  }, 180_000);

  it('the last peer of a stage that pauses hands its state to a newcomer setting up for it; the run goes on from there', async () => {
    const c = await startCoordinator(30);
    const commits: number[] = [];
    c.on('commit', (e) => commits.push(e.step));
    let trained = false;
    c.trained.then(() => (trained = true));
    const first = [startPeer(c, 'a'), startPeer(c, 'b')];
    await until('step 8', () => commits.length >= 8);
    const heir = startPeer(c, 'c');
    let stage: number | undefined;
    heir.on('assigned', (a) => (stage ??= a.stage));
    await until('the newcomer placed', () => stage !== undefined);
    const leaver = first.find((s) => s.stage === stage)!;
    const left = await leaver.leave('a game started');
    expect(left.releasedMs).toBeLessThan(2000);
    await until('the run to train', () => trained);
    const handed = lines.find((l) => l.startsWith('coordinator:') && l.includes(`hands stage ${stage}'s state to ${heir.peerId}`));
    expect(handed, said()).toBeDefined();
    const loaded = lines.find((l) => l.startsWith('c: loaded stage') && l.includes(`from ${leaver.peerId}`));
    expect(loaded, said()).toMatch(new RegExp(`^c: loaded stage ${stage}'s state at step (8|9|1\\d) from`));
    expect(commits).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(heir.phase, said()).not.toBe('failed');
    expect(heir.stats()?.microbatches, said()).toBeGreaterThan(0);
  }, 240_000);

  it('a peer told to leave while it still detects its GPU stays gone: it never registers once detection ends', async () => {
    // The tab's wallet connecting mid-detection leaves the session to rejoin under it: a session that
    // registered after its leave was a second peer of the same tab, unseen by its dashboard.
    const c = await startCoordinator(4);
    const host = nodeHost({ data: SWARM_DEFAULTS.data, stateDir: mkdtempSync(join(tmpdir(), 'session-test-')), benchmark: false, env: {}, log: (l) => lines.push(`a: ${l}`) });
    let detected: () => void = () => undefined;
    const detecting = new Promise<void>((r) => (detected = r));
    const s = new PeerSession({ ...host, gpu: () => detecting.then(() => host.gpu()) }, { coordinator: c.url!, name: 'a' });
    const registered: string[] = [];
    s.on('registered', (r) => registered.push(r.peerId));
    const run = s.run();
    ended.push(run);
    await s.leave('rejoining to be paid at a wallet');
    detected();
    expect(await run).toBe('rejoining to be paid at a wallet');
    await new Promise((r) => setTimeout(r, 1500));
    expect(registered, said()).toEqual([]);
    expect(s.phase).toBe('left');
  }, 60_000);

  it('a joiner refuses a replica’s step-0 state that is not the seeded init it builds itself, however plausible, and its seal gets the replica purged', async () => {
    // No averaging in this run: the replicas' state to give stays the init, at step 0.
    const c = await startCoordinator(400, undefined, 400);
    const commits: number[] = [];
    c.on('commit', (e) => commits.push(e.step));
    // Both replicas poison what they give (the joiner may be placed on either stage).
    for (const name of ['a', 'b']) startPeer(c, name, WebSocket, undefined, { tamperState: poisonedState });
    await until('step 2', () => commits.length >= 2);
    startPeer(c, 'c');
    await until('the joiner to refuse', () => lines.some((l) => l.startsWith('c: ') && l.includes("'s state is refused")));
    const refusal = lines.find((l) => l.startsWith('c: ') && l.includes("'s state is refused"))!;
    expect(refusal, said()).toMatch(/state is refused: at step 0 it hashes to [0-9a-f]{12}…, not the [0-9a-f]{12}… the stage's replicas agreed on/);
    expect(
      lines.some((l) => /^c: loaded stage \d's state/.test(l)),
      said(),
    ).toBe(false);
    // The replica reported the seeded init's hash when it got ready at step 0: its seal contradicts it.
    const poisoner = /^c: could not load stage \d's state from (p\d+-[0-9a-f]{6})|^c: .*?(p\d+-[0-9a-f]{6})'s state is refused/.exec(refusal)!;
    const sender = poisoner[1] ?? poisoner[2];
    await until('the poisoner purged', () => lines.some((l) => l.startsWith(`coordinator: purging ${sender} `)));
    expect(lines.find((l) => l.startsWith(`coordinator: purging ${sender} `))).toMatch(
      /: it gave a state of stage \d at step 0 hashing to [0-9a-f]{12}…, having reported [0-9a-f]{12}… for that step$/,
    );
    c.stopRun('test over');
  }, 240_000);
});
