// The dashboard's form checks (renderer/form-checks.ts): every problem the policies' schema finds is
// told against the field the Settings page shows, in the page's words, never as an internal field
// path; a credential listing's amount and price likewise.
import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../shared/policy/index.js';
import type { PolicySettings } from '../shared/policy/types.js';
import { listingProblems, problemSentence, settingsProblems } from '../renderer/form-checks.js';

const sentences = (s: Partial<PolicySettings>) => Object.entries(settingsProblems({ ...DEFAULT_SETTINGS, ...s })).map(([k, m]) => problemSentence(k, m));

describe('settings checked in the page', () => {
  it('the defaults may be saved', () => {
    expect(settingsProblems(DEFAULT_SETTINGS)).toEqual({});
  });

  it('out of range, each named by its label with its range', () => {
    expect(sentences({ idleMinutes: -5, temperature: { pauseAtC: 5000, resumeBelowC: 75 }, gpuUsage: 0.05 })).toEqual([
      'Start after this many idle minutes must be between 0 and 1440 minutes.',
      'Pause at GPU temperature (°C, 0: off) must be between 0 and 120 °C.',
      'GPU usage limit (%) must be between 10 and 100 %.',
    ]);
  });

  it('an emptied number field is asked for a number', () => {
    expect(sentences({ battery: { pauseOnBattery: true, minPercent: Number.NaN } })).toEqual(['Pause below this charge (%) must be a number.']);
  });

  it('a resume level at or above its limit says so in words, with no internal field name', () => {
    const told = sentences({ temperature: { pauseAtC: 80, resumeBelowC: 90 }, power: { throttleAtW: 200, resumeBelowW: 250 } });
    expect(told).toEqual([
      'Resume below (°C) must be above 0 and below the temperature that pauses training (or set that one to 0 to turn the limit off).',
      'Full speed again below (W) must be above 0 and below the power that throttles training (or set that one to 0 to turn the limit off).',
    ]);
    expect(told.join(' ')).not.toMatch(/pauseAtC|resumeBelowC|throttleAtW|resumeBelowW|\w+\.\w+C/);
  });

  it('schedule windows and games by their place', () => {
    expect(
      sentences({
        schedule: [
          { days: [1], from: '09:00', to: '17:00' },
          { days: [], from: '25:00', to: '17:00' },
        ],
        games: ['ok.exe', ' '],
      }),
    ).toEqual(['Game 2 must not be empty.', 'Schedule window 2 (days) needs at least one day.', 'Schedule window 2 (from) must be a time "HH:MM" from 00:00 to 23:59.']);
  });
});

describe('a credential listing checked in the page', () => {
  it('takes a whole amount and a price above 0 in ETH', () => {
    expect(listingProblems('10', '0.001')).toEqual({});
    expect(listingProblems('1', '2')).toEqual({});
  });

  it('refuses each bad value in its field’s words', () => {
    const amount = 'Amount must be a whole number of credentials, from 1 to 9,999,999.';
    const price = 'Price per credential (ETH) must be an amount of ETH above 0, like 0.001.';
    for (const bad of ['0', '-5', '1.5', 'ten', '', '10000000']) expect(listingProblems(bad, '0.001'), bad).toEqual({ amount });
    for (const bad of ['0', '0.0', '-1', 'abc', '', '1e3', '0.0000000000000000001']) expect(listingProblems('10', bad), bad).toEqual({ price });
  });
});
