// Equivocation at averaging (issue 19, attack 4): a member sealing different weights for different
// replicas is proven by their reports (coordinator/claims.ts, with real Ed25519 seals); a reporter
// citing a seal never made, or a seal of something else, is the one convicted; a peer keeps the
// seal of the first weights each member sent it per averaging (shared/trust/frame-log.ts).
import { describe, expect, it } from 'vitest';
import { Claims } from '../coordinator/claims.js';
import { PeerKey } from '../shared/swarm/identity.js';
import type { ClientMessageOf, Seal } from '../shared/swarm/protocol.js';
import { FrameLog } from '../shared/trust/frame-log.js';
import { seal } from '../shared/trust/seal.js';
import { FrameKind, encodeFrame } from '../shared/wire/frame.js';
import { testRun } from './test-run.js';

const weights = (step: number, value: number) =>
  encodeFrame({ kind: FrameKind.ReplicaWeights, tag: step, microbatch: 0, rows: 1, cols: 4, dtype: 'fp32', tensor: Float32Array.of(value, value, value, value) });

describe('weights seals', () => {
  it('convict a member that sealed different weights for two replicas at one averaging, and only it', async () => {
    const keys = { m: await PeerKey.generate(), a: await PeerKey.generate(), b: await PeerKey.generate(), c: await PeerKey.generate() };
    const claims = new Claims({ run: testRun(), keyOf: (id) => keys[id as keyof typeof keys]?.publicHex, stepOfRound: () => undefined, stateLie: () => undefined, log: () => {} });
    const report = (step: number, seals: Seal[]): ClientMessageOf<'checkpoint'> => ({ type: 'checkpoint', step, hash: 'a'.repeat(64), weights: seals });
    const sealed = async (from: 'm' | 'a', to: string, step: number, value: number) => (await seal(weights(step, value), keys[from], from, to)).seal;

    // Honest: the same weights to everyone.
    expect(await claims.weights('a', report(4, [await sealed('m', 'a', 4, 1)]))).toEqual({ kind: 'clean' });
    expect(await claims.weights('b', report(4, [await sealed('m', 'b', 4, 1)]))).toEqual({ kind: 'clean' });
    // Equivocation: other weights to c.
    expect(await claims.weights('c', report(4, [await sealed('m', 'c', 4, 2)]))).toEqual({
      kind: 'guilty',
      verdict: { guilty: 'm', reason: 'sealed different weights for the averaging after step 4 to a and to c' },
    });

    // A reporter forging a seal of m's (signed by another key) is the one convicted, first or later.
    const forged = { ...(await sealed('a', 'b', 8, 3)), from: 'm' };
    expect(await claims.weights('b', report(8, [forged]))).toEqual({ kind: 'clean' }); // nothing to compare yet
    expect(await claims.weights('a', report(8, [await sealed('m', 'a', 8, 1)]))).toEqual({
      kind: 'guilty',
      verdict: { guilty: 'b', reason: `its report cites a seal m never made (kind ${FrameKind.ReplicaWeights}, round 8, microbatch 0)` },
    });
    // …and the honest report then stands: m's honest weights to c agree with it.
    expect(await claims.weights('c', report(8, [await sealed('m', 'c', 8, 1)]))).toEqual({ kind: 'clean' });

    // A seal of another averaging, or addressed to another replica, is no report of this one.
    expect(await claims.weights('c', report(12, [await sealed('m', 'c', 10, 1)]))).toMatchObject({ kind: 'guilty', verdict: { guilty: 'c' } });
    expect(await claims.weights('c', report(12, [await sealed('m', 'a', 12, 1)]))).toMatchObject({ kind: 'guilty', verdict: { guilty: 'c' } });
  });

  it('a peer keeps the first weights seal of each member per averaging, and reports only members asked for', async () => {
    const m = await PeerKey.generate();
    const log = new FrameLog();
    const first = await seal(weights(4, 1), m, 'm', 'me');
    const second = await seal(weights(4, 2), m, 'm', 'me');
    expect(log.record('in', first.seal, first.bytes)).toBe(true);
    expect(log.record('in', second.seal, second.bytes)).toBe(false);
    expect(log.weightSeals(4, ['m', 'x'])).toEqual([first.seal]);
    expect(log.weightSeals(6, ['m'])).toEqual([]);
  });
});
