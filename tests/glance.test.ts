// The glance bar's words (renderer/glance.ts) from the events a session sends, at times the test
// picks: what the machine does and why, whether each value is live or stale and how old, what the
// account earned and at what rate, and the run's time left. Also the numbers it writes
// (renderer/format.ts). Without a DOM.
import { describe, expect, it } from 'vitest';
import type { TrainerEvent } from '../shared/app/bridge.js';
import type { PolicyView } from '../shared/policy/types.js';
import { DEFAULT_SETTINGS } from '../shared/policy/index.js';
import { duration, tokenAmount } from '../renderer/format.js';
import { type Payee, STALE_MS, glance } from '../renderer/glance.js';
import { INITIAL_TRAINING, type TrainingState, reduceTraining } from '../renderer/training-state.js';

const T0 = 1_800_000_000_000;
const ME = '0xAbC0000000000000000000000000000000000001';
const PAID: Payee = { paid: true, account: ME };

/** Events, each heard at its own time (ms after T0). */
const fold = (events: [number, TrainerEvent][], s: TrainingState = INITIAL_TRAINING) => events.reduce((a, [at, e]) => reduceTraining(a, e, T0 + at), s);
const policy = (action: 'run' | 'pause', reason: string): PolicyView => ({ decision: { action, reason, duty: action === 'run' ? 1 : 0 }, settings: DEFAULT_SETTINGS });
const TRAIN = policy('run', 'training: the machine is idle');

const swarm = (phase: 'waiting' | 'training' | 'serving', step: number, steps = 20): TrainerEvent => ({ type: 'swarm', data: { phase, reason: `${phase} now`, step, steps } });
const committed = (step: number): TrainerEvent => ({ type: 'committed', data: { step, loss: 3 } });
const stepReport = (tokensPerSec: number): TrainerEvent => ({
  type: 'step',
  data: { step: 1, microbatches: 1, tokensPerSec, busyFraction: 0.8, bytesSent: 0, bytesReceived: 0, bytesSaved: 0 },
});
const settled = (epoch: number, cumulative: bigint, account = ME): TrainerEvent => ({ type: 'settled', data: { epoch, account, cumulative: cumulative.toString(), key: 'k' } });

/** A peer training stage 1 of 2: the swarm at step 10 of 20, one step a second from step 1. */
const training = fold([
  [0, { type: 'phase', data: { phase: 'training', why: 'computing the microbatches the coordinator routes through this peer' } }],
  [0, { type: 'assigned', data: { stage: 1, run: { stages: 2, runId: 'r1' } as never, state: undefined as never } }],
  [0, swarm('training', 0)],
  ...Array.from({ length: 10 }, (_, i): [number, TrainerEvent] => [(i + 1) * 1000, committed(i + 1)]),
  [10_000, stepReport(1234.4)],
]);

describe('what the machine does', () => {
  it('training: a word, a sentence, its speed live and the time the run has left at its pace', () => {
    const g = glance({ training, policy: TRAIN, payee: PAID }, T0 + 10_500);
    expect(g.word).toBe('training');
    expect(g.doing).toBe('Training stage 2 of 2 of the model.');
    expect(g.speed).toEqual({ text: '1,234 tokens/s · GPU 80 % busy' });
    // 10 steps left at 1 s a step, 0.5 s of which have passed since the last commit.
    expect(g.run).toEqual({ text: 'about 10 s left · step 10 of 20' });
  });

  it('a pause says why as a sentence, in the policies’ words; the speed is then as of its reading', () => {
    const g = glance({ training, policy: policy('pause', 'paused: game running (eldenring.exe)'), payee: PAID }, T0 + 12_000);
    expect(g.word).toBe('paused');
    expect(g.doing).toBe('Paused: game running (eldenring.exe).');
    expect(g.speed).toEqual({ text: '1,234 tokens/s · GPU 80 % busy', staleFor: 2000 });
  });

  it('values that stopped coming are kept with their age, never shown as live', () => {
    const later = T0 + 10_000 + STALE_MS + 5000;
    const g = glance({ training, policy: TRAIN, payee: PAID }, later);
    expect(g.speed?.staleFor).toBe(STALE_MS + 5000);
    // No commit for 35 s at a 1 s pace: no time left is guessed, the progress is as of the last step.
    expect(g.run).toEqual({ text: 'step 10 of 20', staleFor: STALE_MS + 5000 });
  });

  it('after the run there is no stale "training": the peer serves, its last speed is old, the run is trained', () => {
    const after = fold([[21_000, swarm('serving', 20)]], training);
    const g = glance({ training: after, policy: TRAIN, payee: PAID }, T0 + 22_000);
    expect(g.word).toBe('serving');
    expect(g.doing).toBe('The run is trained: this GPU answers buyers’ prompts with its stage.');
    expect(g.speed?.staleFor).toBe(12_000);
    expect(g.run).toEqual({ text: 'trained: 20 steps' });
  });

  it('joining, waiting, left and failed each say so, with the peer’s own reason', () => {
    const at = (phase: TrainerEvent & { type: 'phase' }, s = INITIAL_TRAINING) => glance({ training: fold([[0, phase]], s), policy: TRAIN, payee: PAID }, T0);
    const phase = (p: 'registering' | 'ready' | 'left' | 'failed', why: string): TrainerEvent & { type: 'phase' } => ({ type: 'phase', data: { phase: p, why } });
    expect(at(phase('registering', 'registering with the coordinator'))).toMatchObject({ word: 'joining', doing: 'Registering with the coordinator.' });
    expect(at(phase('ready', 'stage loaded, waiting to be routed work'))).toMatchObject({ word: 'waiting', doing: 'Stage loaded, waiting to be routed work.' });
    expect(at(phase('left', 'rejoining to be paid at 0xabc'), training)).toMatchObject({ word: 'left', doing: 'Rejoining to be paid at 0xabc.' });
    expect(at(phase('failed', 'the coordinator at wss://x:9 could not be reached'))).toMatchObject({ word: 'failed', doing: 'The coordinator at wss://x:9 could not be reached.' });
    expect(glance({ training: fold([[0, swarm('waiting', 0)]], training), policy: TRAIN, payee: PAID }, T0)).toMatchObject({ word: 'waiting', doing: 'Waiting now.' });
  });
});

describe('a tab trains only when its user asked it to', () => {
  it('not asked yet, or told no: it says so, and a buyer is not asked for a wallet to be paid', () => {
    const fresh = glance({ training: INITIAL_TRAINING, policy: TRAIN, payee: { paid: true }, choice: { yes: undefined } }, T0);
    expect(fresh).toMatchObject({ word: 'off', doing: 'This tab does not train until you ask it to.', earned: { text: 'Nothing: this tab does not train.' } });
    // A buyer's wallet connected, nothing settled for it: still nothing to earn here.
    expect(glance({ training: INITIAL_TRAINING, policy: TRAIN, payee: PAID, choice: { yes: false } }, T0)).toMatchObject({
      word: 'off',
      doing: 'You chose not to train in this tab.',
      earned: { text: 'Nothing: this tab does not train.' },
    });
    expect(glance({ training, policy: TRAIN, payee: PAID, choice: { yes: true } }, T0 + 10_500).word).toBe('training');
  });
});

describe('what it earns', () => {
  it('says plainly when the work is unpaid, or paid to nobody until a wallet is connected', () => {
    expect(glance({ training, policy: TRAIN, payee: { paid: false } }, T0).earned).toEqual({ text: 'Unpaid: this swarm settles on no chain.' });
    expect(glance({ training, policy: TRAIN, payee: { paid: true } }, T0).earned).toEqual({ text: 'Not paid: connect a wallet to be paid for this GPU’s work.', warn: true });
  });

  it('the verified total of this account, and its rate over the last hour once two epochs settled', () => {
    const credited = fold([[0, { type: 'credited', data: { step: 1, microbatches: 3 } }]], training);
    expect(glance({ training: credited, policy: TRAIN, payee: PAID }, T0).earned.text).toBe('3 microbatches credited: units once their epoch settles');
    const one = fold([[0, settled(1, 1_000n)]], credited);
    expect(glance({ training: one, policy: TRAIN, payee: PAID }, T0).earned.text).toBe('1,000 units this run');
    // Another account's settlement (the wallet before this one) counts for nothing here.
    const two = fold(
      [
        [5000, settled(1, 99_999n, '0x0000000000000000000000000000000000000002')],
        [30 * 60_000, settled(2, 2_500n, ME.toLowerCase())],
      ],
      one,
    );
    expect(glance({ training: two, policy: TRAIN, payee: PAID }, T0 + 30 * 60_000).earned.text).toBe('2,500 units this run · about 3,000 units/h');
    expect(glance({ training: two, policy: policy('pause', 'paused by you'), payee: PAID }, T0 + 30 * 60_000).earned.text).toBe('2,500 units this run · not earning while paused');
    // Settlements older than an hour no longer count toward the rate.
    expect(glance({ training: two, policy: TRAIN, payee: PAID }, T0 + 2 * 3_600_000).earned.text).toBe('2,500 units this run');
  });
});

describe('numbers as people read them', () => {
  it('durations', () => {
    expect([0, 40_400, 59_600, 12 * 60_000, 3 * 3_600_000 + 20 * 60_000, 2 * 3_600_000, 50 * 3_600_000].map(duration)).toEqual([
      '0 s',
      '40 s',
      '1 min',
      '12 min',
      '3 h 20 min',
      '2 h',
      '2 days 2 h',
    ]);
  });

  it('18-decimal amounts to 4 decimals, rounded down, dust said as dust', () => {
    expect(tokenAmount(153_452789402953912863n)).toBe('153.4527');
    expect(tokenAmount(10n ** 16n)).toBe('0.01');
    expect(tokenAmount(2n * 10n ** 18n)).toBe('2');
    expect(tokenAmount(0n)).toBe('0');
    expect(tokenAmount(99_999_999_999_999n)).toBe('< 0.0001');
  });
});
