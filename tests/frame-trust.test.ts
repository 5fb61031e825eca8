// A peer's trust gate (shared/trust/gate.ts) and what it reports of its neighbours
// (shared/trust/neighbour-reports.ts), with real keys and seals: what it lets through from its
// neighbours, how it sorts their bytes, and what it reports.
import { describe, expect, it } from 'vitest';
import { FrameLog } from '../shared/trust/frame-log.js';
import { Gate } from '../shared/trust/gate.js';
import { NeighbourReports, type RoutedItem } from '../shared/trust/neighbour-reports.js';
import { Envelope, wrap } from '../shared/wire/envelope.js';
import { PeerKey } from '../shared/swarm/identity.js';
import type { ClientMessage, ClientMessageOf, PeerInfo } from '../shared/swarm/protocol.js';
import { FrameKind, HEADER_BYTES, encodeFrame } from '../shared/wire/frame.js';
import { SEAL_BYTES, seal } from '../shared/trust/seal.js';
import { sha256Hex } from '../shared/base/hex.js';

const frame = (round: number, mb: number) =>
  encodeFrame({ kind: FrameKind.Activation, tag: round, microbatch: mb, rows: 2, cols: 2, dtype: 'fp32', tensor: Float32Array.of(1, 2, 3, mb) });

async function setUp() {
  const [me, good, bad] = await Promise.all([PeerKey.generate(), PeerKey.generate(), PeerKey.generate()]);
  const members: PeerInfo[] = [
    { peerId: 'good', stage: 0, name: 'good', key: good.publicHex },
    { peerId: 'bad', stage: 0, name: 'bad', key: bad.publicHex },
  ];
  const reports: ClientMessage[] = [];
  const sent: Array<{ to: string; bytes: Uint8Array }> = [];
  const handed: Array<{ what: string; from: string; bytes: Uint8Array }> = [];
  const frames = new FrameLog();
  const gate = new Gate({
    self: () => 'me',
    key: () => me,
    keyOf: (id) => members.find((p) => p.peerId === id)?.key,
    send: (to, bytes) => sent.push({ to, bytes }),
    frames,
    log: () => {},
    handlers: {
      frame: (from, bytes) => handed.push({ what: 'frame', from, bytes }),
      state: (from, bytes) => handed.push({ what: 'state', from, bytes }),
      bundle: (from, bytes) => handed.push({ what: 'bundle', from, bytes }),
    },
  });
  const told = new NeighbourReports({ frames, report: (m) => reports.push(m), log: () => {} });
  // The gate and the reports as the session uses them: a sealed frame arrives in its envelope.
  const trust = {
    begin: (w: { round: number; step: number; items: RoutedItem[] }) => frames.begin(w.round),
    receive: (from: string, sealed: Uint8Array) => gate.receive(from, wrap(Envelope.Frame, sealed)),
    inputs: (w: { round: number; items: RoutedItem[] }) => told.inputs(w.round, w.items),
    send: (to: string, frame: Uint8Array) => gate.sendFrame(to, frame),
    refused: told.refused.bind(told),
  };
  return { trust, gate, good, bad, reports, sent, handed };
}

describe('frame trust', () => {
  it('sorts what a neighbour sends by its envelope: frames opened and handed on, state and bundles handed on as they are, anything else dropped', async () => {
    const { gate, good, handed } = await setUp();
    const f = frame(3, 0);
    await gate.receive('good', wrap(Envelope.Frame, (await seal(f, good, 'good', 'me')).bytes));
    await gate.receive('good', wrap(Envelope.State, Uint8Array.of(1, 2)));
    await gate.receive('good', wrap(Envelope.AuditBundle, Uint8Array.of(3)));
    await gate.receive('good', Uint8Array.of(9, 1, 2, 3));
    await gate.receive('good', new Uint8Array(0));
    await gate.receive('nobody', wrap(Envelope.Frame, (await seal(f, good, 'nobody', 'me')).bytes));
    expect(handed.map((h) => [h.what, h.from, [...h.bytes]])).toEqual([
      ['frame', 'good', [...f]],
      ['state', 'good', [1, 2]],
      ['bundle', 'good', [3]],
    ]);
  });

  it('takes a neighbour’s frame only when it sealed it for us, and reports exactly the routed inputs’ seals', async () => {
    const { trust, good, bad } = await setUp();
    const work = { round: 5, step: 3, items: [{ mb: 0, prev: 'good' }] };
    trust.begin(work);
    // Sealed by someone else, or for someone else: not taken.
    await trust.receive('good', (await seal(frame(5, 0), bad, 'good', 'me')).bytes);
    await trust.receive('good', (await seal(frame(5, 0), good, 'good', 'other')).bytes);
    expect(trust.inputs(work)).toEqual([]);
    const honest = await seal(frame(5, 0), good, 'good', 'me');
    await trust.receive('good', honest.bytes);
    await trust.receive('good', (await seal(frame(5, 1), good, 'good', 'me')).bytes); // not routed to us
    expect(trust.inputs(work)).toEqual([honest.seal]);
  });

  it('sends every frame sealed, and reports a neighbour that sealed two frames for one slot', async () => {
    const { trust, good, sent, reports } = await setUp();
    await trust.send('good', frame(2, 0));
    expect(sent[0].to).toBe('good');
    expect(sent[0].bytes.length).toBe(1 + frame(2, 0).length + SEAL_BYTES);
    expect(sent[0].bytes[0]).toBe(Envelope.Frame);
    const work = { round: 2, step: 1, items: [{ mb: 0, prev: 'good' }] };
    trust.begin(work);
    await trust.receive('good', (await seal(frame(2, 0), good, 'good', 'me')).bytes);
    const other = frame(2, 0);
    other[other.length - 1] ^= 1;
    await trust.receive('good', (await seal(other, good, 'good', 'me')).bytes);
    expect(trust.inputs(work)).toHaveLength(1);
    expect(reports).toEqual([{ type: 'equivocation', seals: [expect.objectContaining({ from: 'good' }), expect.objectContaining({ from: 'good' })] }]);
  });

  it('shows a replay to the coordinator: the later seal, the earlier frame (the one it repeats, of several sealed for that slot) with its seal, and the later header', async () => {
    const { trust, good, reports } = await setUp();
    trust.begin({
      round: 5,
      step: 3,
      items: [
        { mb: 0, prev: 'good' },
        { mb: 1, prev: 'good' },
      ],
    });
    const earlier = await seal(frame(5, 0), good, 'good', 'me');
    const replay = frame(5, 0);
    replay.set(frame(5, 1).subarray(0, HEADER_BYTES)); // microbatch 0's payload under microbatch 1's header
    const later = await seal(replay, good, 'good', 'me');
    // A frame of another payload sealed for microbatch 0 first (a flood of mutants does this): not the one to show.
    const decoy = frame(5, 0);
    decoy[decoy.length - 1] ^= 1;
    await trust.receive('good', (await seal(decoy, good, 'good', 'me')).bytes);
    await trust.receive('good', earlier.bytes);
    await trust.receive('good', later.bytes);
    trust.refused('good', { kind: FrameKind.Activation, round: 5, mb: 1, why: 'replay', reason: 'repeats', earlier: { kind: FrameKind.Activation, mb: 0, step: 3, round: 5 } });
    expect(reports).toHaveLength(1);
    const r = reports[0] as ClientMessageOf<'evidence'>;
    expect(r).toMatchObject({ type: 'evidence', seal: later.seal, replay: { of: earlier.seal } });
    const shown = Buffer.from(r.frame, 'base64');
    const rebuilt = Buffer.concat([Buffer.from(r.replay!.header, 'base64'), shown.subarray(HEADER_BYTES)]);
    expect(await sha256Hex(shown)).toBe(earlier.seal.hash);
    expect(await sha256Hex(rebuilt)).toBe(later.seal.hash);
    // A replay whose earlier frame is no longer kept is not shown.
    trust.refused('good', { kind: FrameKind.Activation, round: 5, mb: 1, why: 'replay', reason: 'repeats', earlier: { kind: FrameKind.Activation, mb: 0, step: 1, round: 2 } });
    expect(reports).toHaveLength(1);
  });

  it('shows the refused frame itself, not another its sender sealed for the same slot, and nothing when it is not logged', async () => {
    const { trust, good, reports } = await setUp();
    const honest = frame(7, 0);
    const broken = honest.slice(0, honest.length - 3); // the same header, cut short
    await trust.receive('good', (await seal(honest, good, 'good', 'me')).bytes);
    const sealed = await seal(broken, good, 'good', 'me');
    await trust.receive('good', sealed.bytes);
    trust.refused('good', { kind: FrameKind.Activation, round: 7, mb: 0, why: 'truncated', reason: 'cut short', bytes: broken });
    expect(reports).toEqual([expect.objectContaining({ type: 'evidence', seal: sealed.seal, frame: Buffer.from(broken).toString('base64') })]);
    trust.refused('good', { kind: FrameKind.Activation, round: 7, mb: 0, why: 'truncated', reason: 'cut short', bytes: broken.slice(1) });
    expect(reports).toHaveLength(1);
  });

  it('shows at most four pieces of evidence against one neighbour, however many bad frames it floods', async () => {
    const { trust, good, bad, reports } = await setUp();
    for (let mb = 0; mb < 10; mb++) {
      await trust.receive('good', (await seal(frame(7, mb), good, 'good', 'me')).bytes);
      trust.refused('good', { kind: FrameKind.Activation, round: 7, mb, why: 'nonfinite', reason: 'NaN' });
    }
    await trust.receive('bad', (await seal(frame(7, 0), bad, 'bad', 'me')).bytes);
    trust.refused('bad', { kind: FrameKind.Activation, round: 7, mb: 0, why: 'nonfinite', reason: 'NaN' });
    expect(reports.map((r) => (r as ClientMessageOf<'evidence'>).seal.from)).toEqual(['good', 'good', 'good', 'good', 'bad']);
  });
});
