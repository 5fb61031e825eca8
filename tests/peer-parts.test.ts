// Parts of the peer session that need no GPU, each on its own: whom a peer opens channels to
// (shared/peer/neighbours.ts) and the proofs file it keeps (shared/peer/proofs.ts,
// shared/ledger/proof-file.ts). tests/session.test.ts checks the session they compose.
import { describe, expect, it } from 'vitest';
import { memoryStorage } from '../browser/storage.js';
import { type SavedEpoch, proofsKey, readProofFile } from '../shared/ledger/proof-file.js';
import type { PeerContext } from '../shared/peer/context.js';
import type { PeerHost } from '../shared/peer/host.js';
import { LinkLedger } from '../shared/peer/link-ledger.js';
import { Neighbours } from '../shared/peer/neighbours.js';
import { keepProof } from '../shared/peer/proofs.js';
import type { RtcFactory } from '../shared/peer/rtc.js';
import type { StageSeat } from '../shared/peer/seat.js';
import { Training, type TrainingOptions } from '../shared/peer/training.js';
import type { PeerInfo } from '../shared/swarm/protocol.js';

const info = (peerId: string, stage: number): PeerInfo => ({ peerId, stage, name: peerId, key: peerId.padEnd(64, '0') });

/** A context whose channels never open; every channel attempt signals once, so the test sees whom it is to. */
function setUp() {
  let leaving = false;
  const attempts: string[] = [];
  const rtc: RtcFactory = ({ sendSignal }) => {
    queueMicrotask(() => sendSignal('offer'));
    return { signal: () => {}, send: () => {}, onData: () => {}, connected: new Promise(() => {}), onClose: () => {}, path: async () => undefined, destroy: () => {} };
  };
  const host = { rtc, now: () => Date.now() } as unknown as PeerHost;
  const ctx: PeerContext = {
    host,
    timeoutMs: 200,
    peerId: () => 'p1',
    send: () => {},
    say: () => {},
    phase: () => 'ready',
    setPhase: () => {},
    emit: () => {},
    leaving: () => leaving,
  };
  const n = new Neighbours(
    ctx,
    () => ({ peerId: 'p1', name: 'me', key: 'k'.repeat(64) }),
    () => {},
  );
  n.open('p1', (to) => attempts.push(to));
  return { n, attempts, leave: () => (leaving = true) };
}

const settled = (epoch: number, cumulative: string): SavedEpoch => ({
  epoch,
  root: `0x${'ab'.repeat(32)}`,
  total: '100',
  account: `0x${'11'.repeat(20)}`,
  cumulative,
  proof: [`0x${'cd'.repeat(32)}`],
});
const chain = { chainId: 31337, registry: `0x${'22'.repeat(20)}`, tokens: `0x${'33'.repeat(20)}`, runId: '7' };

describe('peer parts', () => {
  it('neighbours: channels to its own and the adjacent stages and to its state sources; once leaving, only to its heir', async () => {
    const { n, attempts, leave } = setUp();
    n.members = [info('a', 0), info('b', 1), info('c', 2), info('d', 3)];
    n.place(1, ['z'], 1 << 20);
    await new Promise((r) => setTimeout(r, 0));
    expect(attempts.sort()).toEqual(['a', 'b', 'c', 'z']);
    expect(n.keyOf('c')).toBe(info('c', 2).key);
    expect(n.known().map((p) => [p.peerId, p.stage])).toEqual([
      ['p1', 1],
      ['a', 0],
      ['b', 1],
      ['c', 2],
      ['d', 3],
    ]);
    attempts.length = 0;
    leave();
    n.handOffTo('b');
    n.setView([...n.members, info('e', 1)]);
    await new Promise((r) => setTimeout(r, 0));
    expect(attempts).toEqual([]); // the heir's channel was already open: nothing new starts
    n.close();
  });

  it('neighbours: waiting for a channel ends at once when every candidate is gone, else at the timeout', async () => {
    const { n } = setUp();
    n.gone.add('a');
    expect(await n.firstChannel(new Set(['a']))).toBeUndefined();
    const t0 = Date.now();
    expect(await n.firstChannel(new Set(['b']), 150)).toBeUndefined();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    n.close();
  });

  it('training: an evaluation whose path runs through a peer already lost is skipped, not waited for', async () => {
    const said: string[] = [];
    const evaluated: string[][] = [];
    const ctx = {
      host: { now: () => Date.now() },
      timeoutMs: 60_000,
      peerId: () => 'p6',
      send: () => {},
      say: (l: string) => said.push(l),
      emit: () => {},
    } as unknown as PeerContext;
    // The runner's evaluation waits, as a real one does for frames that never come.
    const runner = {
      evaluate: (_r: number, _b: number, hops: { prev?: string }) => {
        evaluated.push([hops.prev ?? '']);
        return new Promise(() => {});
      },
    };
    const seat = { stage: 1, runner, mailbox: { forgetRoundsBefore: () => {} } } as unknown as StageSeat;
    const gone = new Set(['p1']);
    const training = new Training(ctx, { seat: () => seat, gone: (id: string) => gone.has(id) } as unknown as TrainingOptions);
    await training.onCommit({ type: 'commit', round: 5, step: 4, apply: true, eval: { path: ['p1', 'p6'], batches: 2 } });
    expect(evaluated).toEqual([]);
    expect(said).toEqual(['evaluation after step 4 skipped: p1 on its path is gone']);
    // Through live peers it is run.
    void training.onCommit({ type: 'commit', round: 9, step: 8, apply: true, eval: { path: ['p3', 'p6'], batches: 2 } });
    await new Promise((r) => setTimeout(r, 0));
    expect(evaluated).toEqual([['p3']]);
  });

  it('proofs: each settled epoch is appended to the account’s file, which carries the chain’s coordinates', async () => {
    const storage = memoryStorage();
    const log: string[] = [];
    const key = await keepProof(storage, chain, settled(0, '40'), (l) => log.push(l));
    await keepProof(storage, chain, settled(1, '90'), (l) => log.push(l));
    expect(key).toBe(proofsKey(`0x${'11'.repeat(20)}`, '7'));
    const file = readProofFile((await storage.get(key))!, key);
    expect(file).toEqual({ ...chain, epochs: [settled(0, '40'), settled(1, '90')] });
    expect(log).toEqual([]);
  });

  it('proofs: an unreadable file is set aside, never overwritten, and the new epoch starts the file anew', async () => {
    const storage = memoryStorage();
    const key = proofsKey(`0x${'11'.repeat(20)}`, '7');
    const garbage = new TextEncoder().encode('{"epochs": [oops');
    await storage.put(key, garbage);
    const log: string[] = [];
    await keepProof(storage, chain, settled(2, '120'), (l) => log.push(l));
    const aside = (await storage.list(`${key}.unreadable-`))[0];
    expect(await storage.get(aside)).toEqual(garbage);
    expect(readProofFile((await storage.get(key))!, key).epochs).toEqual([settled(2, '120')]);
    expect(log).toEqual([expect.stringMatching(/is not JSON: .*kept it as .*unreadable-\d+ and started the file anew/)]);
  });
});

describe('link ledger', () => {
  const direct = (bytes: number) => ({ local: 'srflx', remote: 'host', bytes }) as const;
  const relayed = (bytes: number) => ({ local: 'relay', remote: 'srflx', bytes }) as const;

  it('counts every connection to a neighbour, the relayed bytes apart, and keeps a closed link’s last reading', () => {
    const l = new LinkLedger();
    l.read('a', 1, direct(100), 40.4);
    l.read('a', 1, direct(250), 40.4); // the same connection, read again: its count grew
    l.read('b', 2, relayed(70), 2100);
    expect(l.paths()).toEqual({ a: direct(250), b: relayed(70) });
    l.openNow(['b']);
    expect(l.paths()).toEqual({ b: relayed(70) });
    l.read('a', 1, direct(260)); // a last reading asked before it closed: still closed, not counted twice
    expect(l.paths()).toEqual({ b: relayed(70) });
    // a's channel reopened through the relay: its new connection counts from 0
    l.read('a', 3, relayed(30), 900);
    expect(l.paths()).toEqual({ a: relayed(30), b: relayed(70) });
    expect(l.records()).toEqual([
      { peerId: 'b', local: 'relay', remote: 'srflx', connectMs: 2100, bytes: 70, relayedBytes: 70 },
      { peerId: 'a', local: 'relay', remote: 'srflx', connectMs: 900, bytes: 290, relayedBytes: 30 },
    ]);
    // As the session's `links` event carries them to a dashboard: by peer, the path in one word.
    expect(l.byPeer()).toEqual({ b: { path: 'relayed', bytes: 70, relayedBytes: 70 }, a: { path: 'relayed', bytes: 290, relayedBytes: 30 } });
    l.read('c', 4, direct(5));
    expect(l.byPeer().c).toEqual({ path: 'direct', bytes: 5, relayedBytes: 0 });
  });

  it('forgets the oldest neighbours beyond its bound', () => {
    const l = new LinkLedger();
    for (let i = 0; i < 300; i++) l.read(`p${i}`, i, direct(i));
    const ids = l.records().map((r) => r.peerId);
    expect(ids).toHaveLength(256);
    expect(ids[0]).toBe('p44');
    expect(ids.at(-1)).toBe('p299');
  });
});
