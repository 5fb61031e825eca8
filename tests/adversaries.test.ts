// The scenarios of `npm run bench:chaos` in short form: adversarial peers as real processes in a
// real swarm (Dawn + WebRTC over loopback). One worker among five honest ones attacks, placed where
// its attack is made: plausible tensors ×1.5 or gradients ×100 (only recomputation tells), noise of
// the right scale, all-zero tensors, NaN. Each is caught for what it did (spot checks at rate 1
// here; plain defects shown to the coordinator with the sender's seal) and purged in its first
// round; it earns nothing, nobody honest is blamed, every step is committed and the final
// validation loss is within 2 % of an honest run of the same swarm.
// Not here: replay-activations. Replays are refused (each one stalls its round and the channel is
// routed around, so the attacker ends up with no work), but nothing proves a replay to the
// coordinator yet, so its sender is not purged and keeps what it earned honestly before.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Attack } from '../bench/adversary.js';
import { CHAOS_DEFAULTS, type ChaosOptions, type RunOutcome, judge, runSwarmWith } from '../bench/chaos.js';

const SHORT: ChaosOptions = { ...CHAOS_DEFAULTS, steps: 12 };
const WITNESSED = (what: string) => new RegExp(`^purged: two witnesses found its microbatch \\d+ of round \\d+ wrong: its ${what} is not what its weights compute`);
const DEFECTIVE = (what: string) => new RegExp(`^purged: sent p\\d+-[0-9a-f]{6} a defective frame \\(round \\d+, microbatch \\d+\\): .*${what}`);

const CAUGHT: Array<[Attack, RegExp]> = [
  ['scale-outputs', WITNESSED('(output|input gradient)')],
  ['zero-outputs', DEFECTIVE('the tensor is all zero')],
  ['nan-outputs', DEFECTIVE('nonfinite')],
  ['scale-activations', WITNESSED('output')],
  ['garbage-activations', WITNESSED('output')],
  ['zero-activations', DEFECTIVE('the tensor is all zero')],
  ['scale-gradients', WITNESSED('input gradient')],
  ['nan-activations', DEFECTIVE('nonfinite')],
];

let honest: RunOutcome;
beforeAll(async () => {
  honest = await runSwarmWith(SHORT);
}, 600_000);

describe.each(CAUGHT)('a peer that attacks with %s (real processes)', (attack, caught) => {
  it('is purged in its first round for what it did; it earns nothing, nobody honest is blamed, and the run trains as well as the honest one', async () => {
    const r = await runSwarmWith(SHORT, attack);
    const s = judge(attack, honest, r, SHORT.steps);
    expect(r.gone.map((g) => g.peerId)).toEqual([r.adversary]);
    expect(r.gone[0].reason).toMatch(caught);
    expect(s.detected_after_steps, s.notes).toBeLessThanOrEqual(1);
    expect(s.credited_to_bad_peer).toBe(0);
    expect(s, s.notes).toMatchObject({ passed: true });
  }, 600_000);
});
