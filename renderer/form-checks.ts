// The dashboard's forms checked in the words of their own fields, each problem told next to the
// field it is about: the Settings form (the policies' schema, shared/policy/settings.ts, decides
// what is valid) and a credential listing. Pure: the pages render it, tests check it.
import { parseEther } from 'viem';
import { PolicySettingsSchema } from '../shared/policy/settings.js';
import type { PolicySettings } from '../shared/policy/types.js';

/** Each number field's label: the page shows these, and its problems are told with them. */
export const LABELS = {
  idleMinutes: 'Start after this many idle minutes',
  'battery.minPercent': 'Pause below this charge (%)',
  'temperature.pauseAtC': 'Pause at GPU temperature (°C, 0: off)',
  'temperature.resumeBelowC': 'Resume below (°C)',
  'power.throttleAtW': 'Throttle above GPU power (W, 0: off)',
  'power.resumeBelowW': 'Full speed again below (W)',
  gpuUsage: 'GPU usage limit (%)',
} as const;

export type Field = keyof typeof LABELS;

/** Where the schema speaks of its own field names or units, what the page says instead. */
const IN_THE_PAGES_WORDS: Partial<Record<Field, string>> = {
  'temperature.resumeBelowC': 'must be above 0 and below the temperature that pauses training (or set that one to 0 to turn the limit off)',
  'power.resumeBelowW': 'must be above 0 and below the power that throttles training (or set that one to 0 to turn the limit off)',
  gpuUsage: 'must be between 10 and 100 %',
};

/** What is wrong with each field of `s`, by field (schedule windows and games by their place); empty when it may be saved. */
export function settingsProblems(s: PolicySettings): Record<string, string> {
  const r = PolicySettingsSchema.safeParse(s);
  if (r.success) return {};
  const problems: Record<string, string> = {};
  for (const issue of r.error.issues) {
    const key = issue.path.map(String).join('.');
    // An emptied number field reads NaN: the schema calls that a wrong type.
    const message = issue.code === 'invalid_type' ? 'must be a number' : (IN_THE_PAGES_WORDS[key as Field] ?? issue.message);
    problems[key] ??= message;
  }
  return problems;
}

/** "Resume below (°C) must be above 0 and …": a problem as a sentence naming its field as the page does. */
export function problemSentence(key: string, message: string): string {
  const schedule = /^schedule\.(\d+)\.(\w+)/.exec(key);
  const game = /^games\.(\d+)/.exec(key);
  const name =
    key in LABELS
      ? LABELS[key as Field]
      : schedule
        ? `Schedule window ${Number(schedule[1]) + 1} (${schedule[2]})`
        : game
          ? `Game ${Number(game[1]) + 1}`
          : key === 'games'
            ? 'Games'
            : 'Settings';
  return `${name} ${message}.`;
}

/** What is wrong with a listing's amount and price, in the fields' words. */
export function listingProblems(amount: string, price: string): { amount?: string; price?: string } {
  const p: { amount?: string; price?: string } = {};
  if (!/^[1-9]\d{0,6}$/.test(amount)) p.amount = 'Amount must be a whole number of credentials, from 1 to 9,999,999.';
  if (!/^\d{1,9}(\.\d{1,18})?$/.test(price) || parseEther(price) === 0n) p.price = 'Price per credential (ETH) must be an amount of ETH above 0, like 0.001.';
  return p;
}
