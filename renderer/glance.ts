// The header's answer to "what is my machine doing, and what am I earning?": one word and a
// sentence for what it does and why, its speed, what it earned and at what rate, and the run's time
// left. A value that stopped updating is kept, with its age, never shown as if it were live. Pure:
// the header renders it every second, tests check it without a DOM.
import type { PolicyView } from '../shared/policy/types.js';
import { count, duration, sentence, units } from './format.js';
import type { TrainingState } from './training-state.js';

/** A reading older than this no longer stands for now (a step takes seconds; a busy GPU's round, tens). */
export const STALE_MS = 30_000;
const HOUR_MS = 3_600_000;

export type Word = 'starting' | 'joining' | 'waiting' | 'training' | 'paused' | 'serving' | 'done' | 'left' | 'failed' | 'off';

export interface Reading {
  text: string;
  /** How old the value is, once it is too old to stand for now. */
  staleFor?: number;
  /** Something the user should act on (no wallet: the work is not paid). */
  warn?: boolean;
}

export interface Glance {
  word: Word;
  doing: string;
  speed?: Reading;
  earned: Reading;
  run?: Reading;
}

export interface Payee {
  /** Whether the swarm settles on a chain at all. */
  paid: boolean;
  account?: string;
}

export interface GlanceInput {
  training: TrainingState;
  policy?: PolicyView;
  payee: Payee;
  /** A tab's choice to train (absent in the desktop app); `yes` undefined: not asked yet. */
  choice?: { yes: boolean | undefined };
}

export function glance({ training: t, policy, payee, choice }: GlanceInput, now: number): Glance {
  const w = choice && !choice.yes ? 'off' : word(t, policy);
  const off = choice?.yes === false ? 'You chose not to train in this tab.' : 'This tab does not train until you ask it to.';
  return { word: w, doing: w === 'off' ? off : doing(t, policy, w), speed: speed(t, w, now), earned: earned(t, payee, w, now), run: runLeft(t, now) };
}

function word(t: TrainingState, policy: PolicyView | undefined): Word {
  if (policy?.decision.action === 'pause') return 'paused';
  if (t.phase === 'failed') return 'failed';
  if (t.phase === 'stopped' || t.swarm?.phase === 'finished' || t.swarm?.phase === 'stopped') return 'done';
  if (t.phase === 'left' || t.phase === 'leaving') return 'left';
  if (t.swarm?.phase === 'serving') return 'serving';
  if (t.phase === 'starting') return 'starting';
  if (t.phase === 'registering' || t.phase === 'setting-up') return 'joining';
  if (t.phase === 'training' && t.swarm?.phase !== 'waiting' && t.swarm?.phase !== 'paused') return 'training';
  return 'waiting';
}

function doing(t: TrainingState, policy: PolicyView | undefined, w: Word): string {
  switch (w) {
    case 'paused':
      return sentence(policy!.decision.reason);
    case 'done':
      return sentence(t.swarm ? `the run is ${t.swarm.phase === 'stopped' ? 'stopped' : 'over'}: ${t.swarm.reason}` : t.why);
    case 'serving':
      return 'The run is trained: this GPU answers buyers’ prompts with its stage.';
    case 'training':
      // Counted from 1, as the topology is: a player reads "stage 1 of 2", not "stage 0".
      return `Training stage ${(t.stage ?? 0) + 1} of ${t.stages} of the model.`;
    case 'waiting':
      return sentence(t.swarm?.phase === 'waiting' || t.swarm?.phase === 'paused' ? t.swarm.reason : t.why);
    default:
      return sentence(t.why);
  }
}

/** This peer's own speed, from its last report of its work. */
function speed(t: TrainingState, w: Word, now: number): Reading | undefined {
  if (t.stepAt === undefined) return undefined;
  const age = now - t.stepAt;
  const text = `${count(Math.round(t.tokensPerSec))} tokens/s · GPU ${Math.round(t.busyFraction * 100)} % busy`;
  return w === 'training' && age <= STALE_MS ? { text } : { text, staleFor: age };
}

function earned(t: TrainingState, payee: Payee, w: Word, now: number): Reading {
  if (!payee.paid) return { text: 'Unpaid: this swarm settles on no chain.' };
  const mine = t.settlements.filter((s) => s.account === payee.account?.toLowerCase());
  const last = mine.at(-1);
  if (!last && w === 'off') return { text: 'Nothing: this tab does not train.' };
  if (!payee.account) return { text: 'Not paid: connect a wallet to be paid for this GPU’s work.', warn: true };
  if (!last) return { text: t.creditedMicrobatches > 0 ? `${t.creditedMicrobatches} microbatches credited: units once their epoch settles` : 'Nothing earned yet in this run.' };
  const total = `${units(BigInt(last.cumulative))} units this run`;
  if (w === 'paused') return { text: `${total} · not earning while paused` };
  if (w !== 'training' && w !== 'waiting') return { text: total };
  const rate = unitsPerHour(mine, now);
  return { text: rate === undefined ? total : `${total} · about ${units(rate)} units/h` };
}

/** Units over the settlements of the last hour, per hour; unknown before two of them. */
function unitsPerHour(mine: TrainingState['settlements'], now: number): bigint | undefined {
  const recent = mine.filter((s) => s.at >= now - HOUR_MS);
  const first = recent[0];
  const last = recent.at(-1);
  if (!first || !last || last.at <= first.at) return undefined;
  return ((BigInt(last.cumulative) - BigInt(first.cumulative)) * BigInt(HOUR_MS)) / BigInt(last.at - first.at);
}

/** The run's progress, and its time left at the pace of the last steps. */
function runLeft(t: TrainingState, now: number): Reading | undefined {
  const s = t.swarm;
  if (!s) return undefined;
  const progress = `step ${s.step} of ${s.steps}`;
  if (s.phase === 'serving' || s.phase === 'finished') return { text: `trained: ${s.steps} steps` };
  const first = t.commits[0];
  const last = t.commits.at(-1);
  if (!first || !last || last.step <= first.step) return { text: progress };
  const msPerStep = (last.at - first.at) / (last.step - first.step);
  const age = now - last.at;
  const text = `about ${duration(Math.max(0, (s.steps - s.step) * msPerStep - age))} left · ${progress}`;
  return age > Math.max(STALE_MS, 3 * msPerStep) ? { text: progress, staleFor: age } : { text };
}
