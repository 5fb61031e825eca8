// A peer's frame trust (shared/peer/frame-trust.ts) with real keys and seals: what it lets through
// from its neighbours, and what it reports.
import { describe, expect, it } from 'vitest';
import { FrameTrust } from '../shared/trust/frame-trust.js';
import { PeerKey } from '../shared/swarm/identity.js';
import type { ClientMessage, ClientMessageOf, PeerInfo } from '../shared/swarm/protocol.js';
import { FrameKind, HEADER_BYTES, encodeFrame } from '../shared/wire/frame.js';
import { seal } from '../shared/trust/seal.js';
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
  const trust = new FrameTrust({
    self: () => 'me',
    key: () => me,
    members: () => members,
    seat: () => undefined,
    send: (to, bytes) => sent.push({ to, bytes }),
    report: (m) => reports.push(m),
    timeoutMs: 1000,
    log: () => {},
  });
  return { trust, good, bad, reports, sent };
}

describe('frame trust', () => {
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
    expect(sent[0].bytes.length).toBe(frame(2, 0).length + 64);
    const work = { round: 2, step: 1, items: [{ mb: 0, prev: 'good' }] };
    trust.begin(work);
    await trust.receive('good', (await seal(frame(2, 0), good, 'good', 'me')).bytes);
    const other = frame(2, 0);
    other[other.length - 1] ^= 1;
    await trust.receive('good', (await seal(other, good, 'good', 'me')).bytes);
    expect(trust.inputs(work)).toHaveLength(1);
    expect(reports).toEqual([{ type: 'equivocation', seals: [expect.objectContaining({ from: 'good' }), expect.objectContaining({ from: 'good' })] }]);
  });

  it('shows a replay to the coordinator: the later seal, the earlier frame with its seal, and the later header that makes the replayed frame', async () => {
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
