// The scenarios of `npm run bench:chaos` in short form, as real processes in a real swarm (Dawn +
// WebRTC over loopback), each against an honest run of the same swarm. One worker among five honest
// ones attacks, placed where its attack is made: plausible tensors ×1.5 or gradients ×100 (only
// recomputation tells), noise of the right scale, all-zero tensors, NaN, old payloads replayed as
// new work, a flood of malformed frames. Each is caught for what it did (spot checks at rate 1 here; plain defects and replays
// shown to the coordinator with the sender's seals) and purged in its first round. Impostors come
// as one more client: another peer's session key or an account whose key it lacks is refused at
// registration; one that takes a place and never computes is dropped once its time to get ready is
// up; so is a key of small order. A free-rider sends its input back as its output; two colluders
// claim a GPU 10^6 GFLOP/s fast to take a lane and compute nothing. A replica adds noise to the
// weights it averages, or sends different weights to different replicas: caught at the first
// averaging. A cheater that withholds its audit bundle is convicted on it by the witness and a panel. A receiver shows the evaluation frames it got as evidence. None earns anything (but
// the honest steps of an attacker on weights before it), nobody honest is blamed, every step is
// committed and the final validation loss is within 2 % of the honest run's. Two colluders of a
// stage of six (false audit failures; a cheater's voucher) get only themselves purged. Lies that
// need no purge (false stalls and suspects, a silent witness, one reported witness link, a 10 %
// cheater, a claimed speed, gradients withheld) cost the run no step and earn no more than an honest
// replica. A flood of squatters from one address is refused past its limits; a joiner refuses a
// poisoned state for the hash its stage's replicas vouched for, and its sender's seal of it gets the
// sender purged.
import { beforeAll, describe, expect, it } from 'vitest';
import { ATTACK_TARGETS, type Attack } from '../bench/adversary.js';
import { CHAOS_DEFAULTS, type ChaosOptions, type RunOutcome, caughtAs, judge, runSwarmWith } from '../bench/chaos.js';

const SHORT: ChaosOptions = { ...CHAOS_DEFAULTS, steps: 12 };
const WITNESSED = (what: string) =>
  new RegExp(`^purged: its accuser and \\d+ of \\d+ independent replicas found its microbatch \\d+ of round \\d+ wrong: its ${what} is not what its weights compute`);
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
  // Shown as a replay by the neighbour that got the original, or found by the witness of the one that did not.
  [
    'replay-activations',
    /^purged: (sent p\d+-[0-9a-f]{6} the payload of its round \d+ microbatch \d+ again as round \d+ microbatch \d+ \(a replay\)$|its accuser and \d+ of \d+ independent replicas found .* its output is not what its weights compute)/,
  ],
  // Its first activation frame, then 10,000 mutants of it, sealed: purged on the first proof (a defect or a second frame for one slot).
  ['fuzz-frames', /^purged: (sent p\d+-[0-9a-f]{6} a defective frame|sealed two different frames for round \d+ microbatch \d+)/],
  ['stolen-key', /^the key proof is not this connection's nonce signed by the key$/],
  ['foreign-account', /^the account proof is not 0x[0-9a-f]{40}'s signature of this key and session$/],
  ['never-computes', /^not ready \d+ ms after it was placed \(limit 30000 ms\)$/],
  // Sends its input back as the gradient: no norm check tells, the witness's recomputation does.
  ['free-rider', WITNESSED('input gradient')],
  // Two colluders claiming 10^6 GFLOP/s and 1 ms a microbatch, computing nothing: both purged, or
  // (when a colluder's channels to its assigned witnesses never opened) never routed at all.
  ['overstated-gpu', WITNESSED('(output|input gradient)')],
  // Attacks of issue 19's own: a key of small order; noise in the weights it averages; different weights to different replicas.
  ['weak-key', /^the key proves nothing: it is a point of small order, under which trivial signatures verify$/],
  ['poison-average', /^purged: its weights at the averaging after step 4 moved beyond any replica's training, as 2 of 2 of its stage's replicas found$/],
  // Caught at an averaging (the first, step 4, in most runs; a later one in some: issue 19 tracks why).
  ['equivocate-weights', /^purged: sealed different weights for the averaging after step (4|8|12) to p\d+-[0-9a-f]{6} and to p\d+-[0-9a-f]{6}$/],
  // Issue 19 #1: the evaluation frames it received, shown as evidence: that convicts the one showing them (at the first evaluation it is on the path of).
  ['eval-evidence', /^purged: it showed a frame of kind 3 as evidence: only training frames are ever shown$/],
  // Cheats on every output and shows its audit bundle to no witness: the witness's "no bundle came" and its panel's convict it.
  ['withhold-bundle', /^purged: it showed its microbatch \d+ of round \d+ neither to its accuser nor to \d+ of \d+ independent replicas that asked: no bundle from/],
  // Issue 19 #8: 100 squatters from one address (127.0.0.2), replaced as they are refused or dropped.
  ['registration-flood', /^127\.0\.0\.2 (registered more than 12 times in the last minute|already takes part with 4 peers; at most 4 per address)$/],
];

/** Two colluders on a stage of six (a swarm of 12): false audit failures; a cheater and its voucher. */
const COLLUDING: Array<[Attack, RegExp]> = [
  ['false-verdicts', /^purged: it found p\d+-[0-9a-f]{6}'s microbatch \d+ of round \d+ wrong, and \d+ of \d+ independent replicas recomputing it found it right$/],
  ['vouch-for-cheat', WITNESSED('(output|input gradient)')],
];

/** Attacks that need not be caught: the run loses no step, nobody honest is blamed, and the attacker out-earns no honest replica. */
const CONTAINED_ATTACKS: Attack[] = ['false-stalls', 'false-suspects', 'silent-witness', 'one-witness-link', 'cheat-10pct', 'claim-speed', 'withhold-gradients'];

/**
 * On a loaded machine a WebRTC channel sometimes never opens: an attacker that never linked to its
 * assigned witnesses is routed nothing all run, which does no harm and earns nothing.
 */
const orNeverRouted = (caught: RegExp) => new RegExp(`${caught.source}|^never routed: no round through it committed$`);
/**
 * An attacker on weights whose channels to all replicas but one never opened: one replica's finding
 * proves nothing, but it left the weights out; different weights need two replicas to go to.
 */
const orLeftOut = (caught: RegExp) =>
  new RegExp(
    `${orNeverRouted(caught).source}|^left out: its weights reached one replica, which left them out of the average$|^never made: it never had two replicas to send different weights to$`,
  );

let honest: RunOutcome;
let honestOfTwelve: RunOutcome;
beforeAll(async () => {
  honest = await runSwarmWith(SHORT);
  honestOfTwelve = await runSwarmWith({ ...SHORT, honest: 11 });
}, 900_000);

describe.each(CAUGHT)('a peer that attacks with %s (real processes)', (attack, caught) => {
  it('is caught for what it did; it out-earns no honest replica, nobody honest is blamed, and the run trains as well as the honest one', async () => {
    const r = await runSwarmWith(SHORT, attack);
    const s = judge(attack, honest, r, SHORT.steps);
    expect(caughtAs(attack, r)?.reason, s.notes).toMatch(ATTACK_TARGETS[attack] === 'weights' ? orLeftOut(caught) : orNeverRouted(caught));
    // Caught at the first round it cheats in; an attack on weights at an averaging (every 4 steps).
    const late = ATTACK_TARGETS[attack] === 'weights' || attack === 'eval-evidence';
    if (!['place', 'flood'].includes(ATTACK_TARGETS[attack])) expect(s.detected_after_steps, s.notes).toBeLessThanOrEqual(late ? SHORT.steps : 1);
    if (ATTACK_TARGETS[attack] !== 'weights') expect(s.credited_to_bad_peer).toBe(0);
    expect(s, s.notes).toMatchObject({ passed: true });
  }, 600_000);
});

describe.each(COLLUDING)('two colluders of a stage of six that attack with %s (real processes)', (attack, caught) => {
  it('the liar is purged; no colluder out-earns an honest replica, nobody honest is blamed, and the run trains as well as an honest one of 12', async () => {
    const r = await runSwarmWith(SHORT, attack);
    const s = judge(attack, honestOfTwelve, r, SHORT.steps);
    expect(caughtAs(attack, r)?.reason, s.notes).toMatch(orNeverRouted(caught));
    expect(s, s.notes).toMatchObject({ passed: true });
  }, 600_000);
});

describe('a peer on each stage that gives a joiner a poisoned state (real processes)', () => {
  it('the joiner refuses it and shows the coordinator its sender’s seal, which gets the poisoner purged; the joiner gets ready with an honest replica’s; nobody honest is blamed', async () => {
    // A joiner needs the run to go on while it sets up: 24 steps, against an honest run of 24.
    const long = { ...SHORT, steps: 24 };
    const honestLong = await runSwarmWith(long);
    const r = await runSwarmWith(long, 'poison-state');
    const s = judge('poison-state', honestLong, r, long.steps);
    expect(caughtAs('poison-state', r)?.reason, s.notes).toMatch(
      /^purged: it gave a state of stage \d at step \d+ hashing to [0-9a-f]{12}…, having reported [0-9a-f]{12}… for that step$|^never made: the joiner loaded its state from an honest replica first$/,
    );
    expect(s, s.notes).toMatchObject({ passed: true });
  }, 900_000);
});

describe.each(CONTAINED_ATTACKS)('a peer that attacks with %s (real processes)', (attack) => {
  it('costs the run no step, gets nobody honest blamed, and out-earns no honest replica', async () => {
    const r = await runSwarmWith(SHORT, attack);
    const s = judge(attack, honest, r, SHORT.steps);
    expect(s, s.notes).toMatchObject({ passed: true });
  }, 600_000);
});
