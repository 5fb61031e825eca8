// The log of sealed frames a peer reports from (shared/trust/frame-log.ts): what a hostile neighbour
// can and cannot make it report, and that it stays bounded.
import { describe, expect, it } from 'vitest';
import { FrameLog } from '../shared/trust/frame-log.js';
import type { Seal } from '../shared/swarm/protocol.js';
import { FrameKind } from '../shared/wire/frame.js';

const A = FrameKind.Activation;
const G = FrameKind.Gradient;
let n = 0;
const sealOf = (from: string, step: number, microbatch: number, kind: number = A, hash = (++n).toString(16).padStart(64, '0')): Seal => ({
  kind,
  tag: step,
  microbatch,
  hash,
  from,
  to: 'me',
  sig: '0'.repeat(128),
});
const bytes = new Uint8Array(8);

describe('the frame log', () => {
  it('reports exactly the routed inputs, even when they came before their round began', () => {
    const log = new FrameLog();
    const x = sealOf('prev', 11, 0);
    const g = sealOf('next', 11, 0, G);
    log.record('in', x, bytes);
    log.record('in', g, bytes);
    log.record('in', sealOf('prev', 11, 3), bytes); // not routed to us: never reported
    log.begin(11);
    expect(
      log.inputs(11, [
        { kind: A, microbatch: 0, from: 'prev' },
        { kind: G, microbatch: 0, from: 'next' },
      ]),
    ).toEqual([x, g]);
    expect(log.inputs(11, [{ kind: A, microbatch: 1, from: 'prev' }])).toEqual([]);
  });

  it('keeps proof of a sender that sealed two frames for one slot, and reports the first', () => {
    const log = new FrameLog();
    const first = sealOf('prev', 4, 1);
    const second = sealOf('prev', 4, 1);
    expect(log.record('in', first, bytes)).toBe(true);
    expect(log.record('in', first, bytes)).toBe(false); // the same frame again is no proof of anything
    expect(log.record('in', second, bytes)).toBe(true);
    expect(log.record('in', sealOf('prev', 4, 1), bytes)).toBe(false); // two are proof enough
    expect(log.equivocations(4)).toEqual([[first, second]]);
    expect(log.inputs(4, [{ kind: A, microbatch: 1, from: 'prev' }])).toEqual([first]);
    expect(log.equivocations(5)).toEqual([]);
  });

  it('a neighbour flooding future rounds evicts only its own frames; old rounds are forgotten', () => {
    const log = new FrameLog();
    const honest = sealOf('honest', 7, 0);
    log.record('in', honest, bytes);
    log.begin(7);
    for (let r = 8; r < 5000; r++) log.record('in', sealOf('flooder', r, 0), bytes);
    expect(log.inputs(7, [{ kind: A, microbatch: 0, from: 'honest' }])).toEqual([honest]);
    // The flooder's oldest went first: what it holds is its newest 1024.
    expect(log.inputs(8, [{ kind: A, microbatch: 0, from: 'flooder' }])).toEqual([]);
    expect(log.inputs(4999, [{ kind: A, microbatch: 0, from: 'flooder' }])).toHaveLength(1);
    log.begin(9);
    expect(log.inputs(7, [{ kind: A, microbatch: 0, from: 'honest' }])).toEqual([]);
    expect(log.record('in', sealOf('honest', 7, 1), bytes)).toBe(false);
    // Only training frames are logged.
    expect(log.record('in', sealOf('honest', 9, 0, FrameKind.GenerateToken), bytes)).toBe(false);
  });
});
