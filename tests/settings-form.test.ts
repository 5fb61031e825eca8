// The Settings page's checks (renderer/settings-form.ts): every problem the policies' schema finds is
// told against the field the page shows, in the page's words, never as an internal field path.
import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../shared/policy/index.js';
import type { PolicySettings } from '../shared/policy/types.js';
import { problemSentence, settingsProblems } from '../renderer/settings-form.js';

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
