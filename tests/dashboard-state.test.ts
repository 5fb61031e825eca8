// What the dashboard folds from a peer session's events (renderer/training-state.ts), without a DOM.
import { describe, expect, it } from 'vitest';
import type { TrainerEvent } from '../shared/app/bridge.js';
import { INITIAL_TRAINING, MAX_LOG, MAX_POINTS, type TrainingState, reduceTraining, topology } from '../renderer/training-state.js';

const fold = (events: TrainerEvent[], s: TrainingState = INITIAL_TRAINING) => events.reduce(reduceTraining, s);
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

  it('draws the topology: who holds each stage, this peer and its links marked (direct or relayed, once known), empty stages kept', () => {
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
            { peerId: 'd', stage: 1, name: 'w-d', key: '5'.repeat(64) },
          ],
        },
      },
    ]);
    const t = topology({ ...s, stages: 4 });
    const drawn = t.map((x) => x.peers.map((p) => `${p.name}${p.self ? '*' : ''}${p.linked ? '~' : ''}${p.path ? ` ${p.path}` : ''}`));
    expect(drawn).toEqual([['tab*', 'w-a'], ['w-c~ direct', 'w-d~'], ['w-b~ relayed'], []]);
  });
});
