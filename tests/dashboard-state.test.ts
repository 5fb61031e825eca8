// What the dashboard folds from a peer session's events (renderer/training-state.ts), and what its
// topology says of each link's bytes (renderer/link-summary.ts), without a DOM.
import { describe, expect, it } from 'vitest';
import type { TrainerEvent } from '../shared/app/bridge.js';
import { type LinkSummary, STALE_LINKS_MS, linkSentence, linkSummary, linksStale, peerNote } from '../renderer/link-summary.js';
import { INITIAL_TRAINING, MAX_LOG, MAX_POINTS, type TrainingState, reduceTraining, topology } from '../renderer/training-state.js';

const T0 = 1_800_000_000_000;
const fold = (events: TrainerEvent[], s: TrainingState = INITIAL_TRAINING, now = T0) => events.reduce((a, e) => reduceTraining(a, e, now), s);
const step = (n: number, sent: number, saved: number): TrainerEvent => ({
  type: 'step',
  data: { step: n, microbatches: 1, tokensPerSec: 100, busyFraction: 0.5, bytesSent: sent, bytesReceived: 0, bytesSaved: saved },
});

describe('training state', () => {
  it('plots the swarm loss by step and puts validation points on their step', () => {
    const s = fold([
      { type: 'committed', data: { step: 1, loss: 4.2 } },
      { type: 'committed', data: { step: 2, loss: 4.0 } },
      { type: 'evaluated', data: { step: 2, valLoss: 4.1 } },
      { type: 'committed', data: { step: 3 } },
    ]);
    expect(s.loss).toEqual([{ step: 1, loss: 4.2 }, { step: 2, loss: 4.0, val: 4.1 }, { step: 3 }]);
  });

  it('keeps the chart monotone when a new session replays an earlier step, and bounded', () => {
    const many = Array.from({ length: MAX_POINTS + 50 }, (_, i): TrainerEvent => ({ type: 'committed', data: { step: i + 1, loss: 1 } }));
    const s = fold([...many, { type: 'committed', data: { step: 3, loss: 9 } }]);
    expect(s.loss).toHaveLength(MAX_POINTS);
    expect(s.loss.at(-1)!.step).toBe(MAX_POINTS + 50);
    expect(s.loss.every((p, i, a) => i === 0 || p.step > a[i - 1].step)).toBe(true);
  });

  it('adds up bytes over sessions (each session counts from zero after a pause)', () => {
    const s = fold([{ type: 'registered', data: { peerId: 'p1' } }, step(1, 100, 900), step(2, 250, 2000), { type: 'registered', data: { peerId: 'p2' } }, step(5, 40, 300)]);
    expect([s.bytesSent, s.bytesSaved, s.peerId]).toEqual([290, 2300, 'p2']);
  });

  it('bounds the log and counts credited microbatches and settled epochs', () => {
    const lines = Array.from({ length: MAX_LOG + 10 }, (_, i): TrainerEvent => ({ type: 'log', data: { line: `line ${i}` } }));
    const s = fold([
      ...lines,
      { type: 'credited', data: { step: 1, microbatches: 2 } },
      { type: 'credited', data: { step: 2, microbatches: 3 } },
      { type: 'settled', data: { epoch: 0, account: '0xa', cumulative: '5', key: 'k' } },
    ]);
    expect(s.log).toHaveLength(MAX_LOG);
    expect(s.log.at(-1)).toBe(`line ${MAX_LOG + 9}`);
    expect([s.creditedMicrobatches, s.settledEpochs]).toEqual([5, 1]);
  });

  it('shows the phase and why, and forgets neighbours once the peer has left', () => {
    const s = fold([
      { type: 'neighbours', data: { connected: ['b'], paths: { b: { local: 'host', remote: 'host', bytes: 1 } }, peers: [] } },
      { type: 'phase', data: { phase: 'left', why: 'paused: game running (eldenring.exe)' } },
    ]);
    expect([s.phase, s.why, s.connected, s.paths]).toEqual(['left', 'paused: game running (eldenring.exe)', [], {}]);
  });

  it('draws the topology: who holds each stage, this peer and its links marked (direct or relayed, once known), empty stages kept, shared names told apart', () => {
    const s = fold([
      { type: 'registered', data: { peerId: 'me' } },
      {
        type: 'neighbours',
        data: {
          connected: ['b', 'c', 'd'],
          // A relay candidate on either side is a relayed link; a path of a peer no longer linked is not shown.
          paths: { b: { local: 'srflx', remote: 'relay', bytes: 10 }, c: { local: 'host', remote: 'srflx', bytes: 5 }, a: { local: 'relay', remote: 'host', bytes: 1 } },
          peers: [
            { peerId: 'me', stage: 0, name: 'tab', key: '1'.repeat(64) },
            { peerId: 'a', stage: 0, name: 'w-a', key: '2'.repeat(64) },
            { peerId: 'b', stage: 2, name: 'w-b', key: '3'.repeat(64) },
            { peerId: 'c', stage: 1, name: 'w-c', key: '4'.repeat(64) },
            { peerId: 'd', stage: 1, name: 'browser tab', key: '5'.repeat(64) },
            { peerId: 'e', stage: 2, name: 'browser tab', key: '6'.repeat(64) },
          ],
        },
      },
    ]);
    const t = topology({ ...s, stages: 4 });
    const drawn = t.map((x) => x.peers.map((p) => `${p.name}${p.self ? '*' : ''}${p.linked ? '~' : ''}${p.path ? ` ${p.path}` : ''}`));
    // Two tabs that both call themselves "browser tab" are told apart by their peer ids.
    expect(drawn).toEqual([['tab*', 'w-a'], ['w-c~ direct', 'browser tab d~'], ['w-b~ relayed', 'browser tab e'], []]);
  });
});

describe('link bytes', () => {
  const MiB = 2 ** 20;
  const peers = ['me', 'b', 'c', 'd'].map((peerId, i) => ({ peerId, stage: i % 2, name: `w-${peerId}`, key: String(i + 1).repeat(64) }));
  const linked: TrainerEvent[] = [
    { type: 'registered', data: { peerId: 'me' } },
    {
      type: 'neighbours',
      data: { connected: ['b', 'c', 'd'], paths: { b: { local: 'srflx', remote: 'relay', bytes: 10 }, c: { local: 'host', remote: 'srflx', bytes: 5 } }, peers },
    },
  ];
  // b went direct, then through a relay (1.2 MiB of its 3,000,000 bytes); c direct; x has since
  // closed (its bytes still count); d is linked but not read yet.
  const reading: TrainerEvent = {
    type: 'links',
    data: {
      at: 1_000,
      links: {
        b: { path: 'relayed', bytes: 3_000_000, relayedBytes: 1_258_291 },
        c: { path: 'direct', bytes: 1_000_000, relayedBytes: 0 },
        x: { path: 'direct', bytes: 300_000, relayedBytes: 0 },
      },
    },
  };

  it('gives each linked neighbour its bytes and says how much a relay carried', () => {
    const s = fold([...linked, reading]);
    expect(s.linkReadings).toEqual(reading.data);
    const t = topology(s).flatMap((x) => x.peers);
    expect(t.map((p) => [p.name, p.path, p.bytes, p.relayedBytes])).toEqual([
      ['w-me', undefined, undefined, undefined],
      ['w-c', 'direct', 1_000_000, 0],
      ['w-b', 'relayed', 3_000_000, 1_258_291],
      ['w-d', undefined, undefined, undefined],
    ]);
    expect(t.map(peerNote)).toEqual(['(this machine)', '(linked, direct)', '(linked, relayed · 1.2 MiB)', '(linked)']);
    // 4,300,000 bytes over every link read, 1,258,291 through the relay: 29.26 %.
    const sum = linkSummary(s)!;
    expect(sum).toEqual({ links: 3, direct: 1, relayed: 1, bytes: 4_300_000, relayedBytes: 1_258_291, relayedFraction: 1_258_291 / 4_300_000 });
    expect(linkSentence(sum)).toBe('3 links: 1 direct, 1 relayed, 1 not measured yet — 29 % of 4.1 MiB went through a relay');
  });

  it('takes a link’s path from its latest reading, and keeps the last reading once the peer has left', () => {
    const later: TrainerEvent = { type: 'links', data: { at: 6_000, links: { ...reading.data.links, c: { path: 'relayed', bytes: 1_100_000, relayedBytes: 100_000 } } } };
    const s = fold([...linked, reading, later]);
    const drawn = (x: TrainingState) => topology(x).flatMap((st) => st.peers.map((p) => [p.name, p.path, p.bytes]));
    expect(drawn(s)).toEqual([
      ['w-me', undefined, undefined],
      ['w-c', 'relayed', 1_100_000],
      ['w-b', 'relayed', 3_000_000],
      ['w-d', undefined, undefined],
    ]);
    const left = fold([{ type: 'phase', data: { phase: 'left', why: 'paused: game running' } }], s);
    expect(left.linkReadings).toEqual(later.data);
    expect(drawn(left).map(([, path, bytes]) => [path, bytes])).toEqual(Array(4).fill([undefined, undefined]));
    // 4,400,000 bytes (4.196 MiB), 1,358,291 through a relay: 30.87 %.
    expect(linkSentence(linkSummary(left)!)).toBe('No links open — 31 % of 4.2 MiB went through a relay');
    expect(linkSummary(INITIAL_TRAINING)).toBeUndefined();
  });

  it('says it in words a player reads, whatever the numbers', () => {
    const say = (x: Partial<LinkSummary>) => {
      const y = { links: 1, direct: 1, relayed: 0, bytes: 0, relayedBytes: 0, ...x };
      return linkSentence({ ...y, relayedFraction: y.bytes ? y.relayedBytes / y.bytes : 0 });
    };
    expect(say({})).toBe('1 link: 1 direct — no data exchanged yet');
    expect(say({ links: 2, direct: 2, bytes: 5 * MiB })).toBe('2 links: 2 direct — all 5 MiB went straight to your neighbours, none through a relay');
    expect(say({ direct: 0, relayed: 1, bytes: 2048, relayedBytes: 2048 })).toBe('1 link: 1 relayed — all 2 KiB went through a relay');
    expect(say({ links: 2, relayed: 1, bytes: 10 * MiB, relayedBytes: 1000 })).toBe('2 links: 1 direct, 1 relayed — under 1 % of 10 MiB went through a relay');
    expect(say({ links: 2, relayed: 1, bytes: 10 * MiB, relayedBytes: 10 * MiB - 1000 })).toBe('2 links: 1 direct, 1 relayed — over 99 % of 10 MiB went through a relay');
  });

  it('a reading older than 15 s is stale', () => {
    expect(linksStale(1_000, 1_000 + STALE_LINKS_MS)).toBe(false);
    expect(linksStale(1_000, 1_001 + STALE_LINKS_MS)).toBe(true);
  });
});
