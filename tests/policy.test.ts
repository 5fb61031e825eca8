// The desktop app's training policies (shared/policy): settings validation, the weekly schedule,
// the decision with every rule, its priority order and hysteresis, and the duty cycle. Times are
// built with local-time constructors in January 2025 (Mon 6 … Sun 12, no DST change near), so the
// tests hold in any time zone.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_GAMES,
  DEFAULT_SETTINGS,
  type Decision,
  INITIAL_MEMORY,
  type MachineSnapshot,
  type PolicyMemory,
  type PolicySettings,
  PolicySettingsSchema,
  SNOOZE_HOURS,
  type ScheduleWindow,
  decide,
  formatClock,
  formatUntil,
  formatWeekTime,
  inSchedule,
  nextScheduleChange,
  parseSettings,
  snoozeUntil,
} from '../shared/policy/index.js';
import { restAfter } from '../shared/peer/duty.js';

/** Local time in January 2025: day 6 is a Monday. */
function jan(day: number, hour: number, minute = 0): number {
  return new Date(2025, 0, day, hour, minute).getTime();
}
const MON_NOON = jan(6, 12);

function settings(over: Partial<PolicySettings> = {}): PolicySettings {
  return { ...structuredClone(DEFAULT_SETTINGS), ...over };
}

function snapshot(over: Partial<MachineSnapshot> = {}): MachineSnapshot {
  return { now: MON_NOON, idleSeconds: 600, processes: ['systemd', 'steam', 'node'], gpus: [{ index: 0, temperatureC: 60, powerW: 120 }], ...over };
}

function run(s: PolicySettings, snap: MachineSnapshot, memory: PolicyMemory = INITIAL_MEMORY): Decision {
  return decide(s, snap, memory).decision;
}

/** Feeds snapshots in order, carrying the memory, and returns every decision. */
function sequence(s: PolicySettings, snaps: MachineSnapshot[]): Decision[] {
  let memory = INITIAL_MEMORY;
  return snaps.map((snap) => {
    const r = decide(s, snap, memory);
    memory = r.memory;
    return r.decision;
  });
}

describe('settings', () => {
  it('defaults are valid, sensible and frozen', () => {
    expect(parseSettings(DEFAULT_SETTINGS)).toEqual(DEFAULT_SETTINGS);
    expect(DEFAULT_SETTINGS).toMatchObject({ idleMinutes: 5, pauseOnFullscreen: true, schedule: [], gpuUsage: 1, startAtLogin: false });
    expect(DEFAULT_SETTINGS.battery).toEqual({ pauseOnBattery: true, minPercent: 30 });
    expect(DEFAULT_SETTINGS.temperature).toEqual({ pauseAtC: 83, resumeBelowC: 75 });
    expect(DEFAULT_SETTINGS.power).toEqual({ throttleAtW: 0, resumeBelowW: 0 });
    expect(DEFAULT_SETTINGS.games.length).toBeGreaterThanOrEqual(10);
    expect(DEFAULT_SETTINGS.games).toContain('eldenring.exe');
    expect(Object.isFrozen(DEFAULT_SETTINGS) && Object.isFrozen(DEFAULT_SETTINGS.games) && Object.isFrozen(DEFAULT_SETTINGS.battery)).toBe(true);
  });

  it('returns a fresh copy with game names trimmed, unknown keys dropped and gpuIndex kept', () => {
    const input = { ...structuredClone(DEFAULT_SETTINGS), games: ['  eldenring.exe '], extra: 1, gpuIndex: 1 };
    const before = structuredClone(input);
    const parsed = parseSettings(input);
    expect(parsed.games).toEqual(['eldenring.exe']);
    expect(parsed.gpuIndex).toBe(1);
    expect('extra' in parsed).toBe(false);
    expect(parsed).not.toBe(input);
    expect(input).toEqual(before);
  });

  it('accepts the limits turned off and the edges of every range', () => {
    const edges = settings({ idleMinutes: 1440, gpuUsage: 0.1, battery: { pauseOnBattery: false, minPercent: 100 }, temperature: { pauseAtC: 0, resumeBelowC: 0 } });
    expect(() => parseSettings(edges)).not.toThrow();
    expect(() => parseSettings(settings({ idleMinutes: 0, power: { throttleAtW: 220, resumeBelowW: 200 } }))).not.toThrow();
    const windows = Array.from({ length: 28 }, () => ({ days: [0, 1, 2, 3, 4, 5, 6], from: '00:00', to: '23:59' }));
    expect(() => parseSettings(settings({ schedule: windows, games: Array.from({ length: 200 }, (_, i) => `g${i}.exe`) }))).not.toThrow();
  });

  const bad: [string, unknown, string][] = [
    ['idle below 0', { idleMinutes: -1 }, 'idleMinutes: must be between 0 and 1440 minutes'],
    ['idle above a day', { idleMinutes: 1441 }, 'idleMinutes: must be between 0 and 1440 minutes'],
    ['idle not a number', { idleMinutes: '5' }, 'idleMinutes: Invalid input: expected number, received string'],
    ['gpuUsage too low', { gpuUsage: 0.05 }, 'gpuUsage: must be between 0.1 and 1'],
    ['gpuUsage above 1', { gpuUsage: 1.5 }, 'gpuUsage: must be between 0.1 and 1'],
    ['battery percent', { battery: { pauseOnBattery: false, minPercent: 101 } }, 'battery.minPercent: must be between 0 and 100 %'],
    ['a bad time', { schedule: [{ days: [1], from: '25:00', to: '06:00' }] }, 'schedule.0.from: must be a time "HH:MM"'],
    ['a time without padding', { schedule: [{ days: [1], from: '18:00', to: '6:00' }] }, 'schedule.0.to: must be a time "HH:MM"'],
    ['a bad day', { schedule: [{ days: [1, 7], from: '18:00', to: '23:00' }] }, 'schedule.0.days.1: must be a day 0 (Sunday)'],
    ['no days', { schedule: [{ days: [], from: '18:00', to: '23:00' }] }, 'schedule.0.days: needs at least one day'],
    ['too many windows', { schedule: Array.from({ length: 29 }, () => ({ days: [1], from: '18:00', to: '23:00' })) }, 'schedule: may have at most 28 windows'],
    ['resume at pause', { temperature: { pauseAtC: 80, resumeBelowC: 80 } }, 'temperature.resumeBelowC: must be above 0 and below pauseAtC'],
    ['resume at 0', { temperature: { pauseAtC: 80, resumeBelowC: 0 } }, 'temperature.resumeBelowC: must be above 0 and below pauseAtC'],
    ['power resume above', { power: { throttleAtW: 200, resumeBelowW: 250 } }, 'power.resumeBelowW: must be above 0 and below throttleAtW'],
    ['temperature too high', { temperature: { pauseAtC: 200, resumeBelowC: 75 } }, 'temperature.pauseAtC: must be between 0 and 120 °C'],
    ['empty game', { games: ['eldenring.exe', '   '] }, 'games.1: must not be empty'],
    ['long game', { games: ['x'.repeat(101)] }, 'games.0: must be at most 100 characters'],
    ['too many games', { games: Array.from({ length: 201 }, (_, i) => `g${i}`) }, 'games: may list at most 200 games'],
    ['gpuIndex fractional', { gpuIndex: 0.5 }, 'gpuIndex: must be a whole GPU index'],
    ['fullscreen missing', { pauseOnFullscreen: undefined }, 'pauseOnFullscreen: Invalid input: expected boolean'],
  ];
  for (const [name, over, message] of bad) {
    it(`refuses ${name} with a message naming the field, and changes nothing`, () => {
      const input = { ...structuredClone(DEFAULT_SETTINGS), ...(over as object) };
      const before = structuredClone(input);
      let current: PolicySettings = DEFAULT_SETTINGS;
      expect(() => {
        current = parseSettings(input);
      }).toThrow(message);
      expect(current).toBe(DEFAULT_SETTINGS);
      expect(input).toEqual(before);
    });
  }

  it('lists every problem in one message', () => {
    const input = { ...structuredClone(DEFAULT_SETTINGS), idleMinutes: -5, gpuUsage: 0, games: [''] };
    expect(() => parseSettings(input)).toThrow(/^invalid settings: idleMinutes: .+; games\.0: .+; gpuUsage: .+$/);
  });

  it('refuses what is not an object', () => {
    expect(() => parseSettings('idle 5')).toThrow('invalid settings: settings: Invalid input: expected object, received string');
    expect(() => parseSettings(null)).toThrow('invalid settings: settings:');
  });
});

describe('schedule', () => {
  const evenings: ScheduleWindow[] = [{ days: [1, 2, 3, 4, 5], from: '18:00', to: '23:00' }];
  const fridayNight: ScheduleWindow[] = [{ days: [5], from: '22:00', to: '06:00' }];

  it('no windows: any time, never a change', () => {
    expect(inSchedule([], new Date(MON_NOON))).toBe(true);
    expect(nextScheduleChange([], new Date(MON_NOON))).toBeUndefined();
  });

  it('a window is [from, to) on its days', () => {
    expect(inSchedule(evenings, new Date(jan(6, 17, 59)))).toBe(false);
    expect(inSchedule(evenings, new Date(jan(6, 18)))).toBe(true);
    expect(inSchedule(evenings, new Date(jan(6, 22, 59)))).toBe(true);
    expect(inSchedule(evenings, new Date(jan(6, 23)))).toBe(false);
    expect(inSchedule(evenings, new Date(jan(11, 19)))).toBe(false); // Saturday
  });

  it('a window whose end is not after its start wraps past midnight into the next day', () => {
    expect(inSchedule(fridayNight, new Date(jan(10, 21, 59)))).toBe(false);
    expect(inSchedule(fridayNight, new Date(jan(10, 23)))).toBe(true);
    expect(inSchedule(fridayNight, new Date(jan(11, 5, 59)))).toBe(true); // Saturday morning
    expect(inSchedule(fridayNight, new Date(jan(11, 6)))).toBe(false);
    expect(inSchedule(fridayNight, new Date(jan(10, 3)))).toBe(false); // Friday morning: Thursday has no window
    expect(inSchedule(fridayNight, new Date(jan(11, 23)))).toBe(false); // Saturday night
  });

  it('from = to is a whole day from that time', () => {
    const monday: ScheduleWindow[] = [{ days: [1], from: '00:00', to: '00:00' }];
    expect(inSchedule(monday, new Date(jan(6, 0)))).toBe(true);
    expect(inSchedule(monday, new Date(jan(6, 23, 59)))).toBe(true);
    expect(inSchedule(monday, new Date(jan(7, 0)))).toBe(false);
    expect(nextScheduleChange(monday, new Date(jan(6, 12)))?.getTime()).toBe(jan(7, 0));
  });

  it('finds the next change: entering, leaving, across the weekend and past midnight', () => {
    expect(nextScheduleChange(evenings, new Date(MON_NOON))?.getTime()).toBe(jan(6, 18));
    expect(nextScheduleChange(evenings, new Date(jan(6, 18)))?.getTime()).toBe(jan(6, 23));
    expect(nextScheduleChange(evenings, new Date(jan(10, 23, 30)))?.getTime()).toBe(jan(13, 18)); // Fri night → Mon
    expect(nextScheduleChange(fridayNight, new Date(jan(10, 23)))?.getTime()).toBe(jan(11, 6));
    expect(nextScheduleChange(fridayNight, new Date(jan(11, 6)))?.getTime()).toBe(jan(17, 22));
  });

  it('back-to-back windows are one stretch; a schedule covering the whole week never changes', () => {
    const split: ScheduleWindow[] = [
      { days: [1], from: '18:00', to: '20:00' },
      { days: [1], from: '20:00', to: '22:00' },
    ];
    expect(nextScheduleChange(split, new Date(jan(6, 19)))?.getTime()).toBe(jan(6, 22));
    const always: ScheduleWindow[] = [{ days: [0, 1, 2, 3, 4, 5, 6], from: '07:00', to: '07:00' }];
    expect(inSchedule(always, new Date(MON_NOON))).toBe(true);
    expect(nextScheduleChange(always, new Date(MON_NOON))).toBeUndefined();
  });

  it('formats times as users read them', () => {
    expect(formatWeekTime(new Date(jan(6, 18)))).toBe('Mon 18:00');
    expect(formatWeekTime(new Date(jan(12, 7, 5)))).toBe('Sun 07:05');
    expect(formatClock(new Date(jan(6, 9, 3)))).toBe('09:03');
    expect(formatUntil(new Date(MON_NOON), new Date(jan(6, 18, 40)))).toBe('18:40');
    expect(formatUntil(new Date(jan(6, 22)), new Date(jan(7, 4)))).toBe('Tue 04:00');
  });

  const hhmm = fc.tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 })).map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
  const windowArb = fc.record({ days: fc.uniqueArray(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 7 }), from: hhmm, to: hhmm });

  it('property: the schedule holds still until the next change, then flips', () => {
    const dateArb = fc.integer({ min: jan(6, 0), max: jan(20, 0) });
    fc.assert(
      fc.property(fc.array(windowArb, { minLength: 1, maxLength: 3 }), dateArb, (windows, t0) => {
        const now = inSchedule(windows, new Date(t0));
        const change = nextScheduleChange(windows, new Date(t0))?.getTime();
        const horizon = change ?? t0 + 8 * 86_400_000;
        for (let t = t0 + 60_000; t < horizon; t += 60_000) {
          if (inSchedule(windows, new Date(t)) !== now) return false;
        }
        return change === undefined || (change > t0 && inSchedule(windows, new Date(change)) !== now);
      }),
      { numRuns: 40 },
    );
  });
});

describe('decide', () => {
  it('trains once idle long enough, and says how long', () => {
    const d = run(DEFAULT_SETTINGS, snapshot({ idleSeconds: 7 * 60 + 30 }));
    expect(d).toEqual({ action: 'run', reason: 'training: idle for 7 min', duty: 1 });
    expect(run(DEFAULT_SETTINGS, snapshot({ idleSeconds: 2 * 3600 + 5 * 60 })).reason).toBe('training: idle for 2 h 5 min');
  });

  it('waits for N idle minutes, says how long until it starts, and when', () => {
    const d = run(DEFAULT_SETTINGS, snapshot({ idleSeconds: 125 }));
    expect(d).toEqual({
      action: 'pause',
      reason: 'waiting: you were active 2 min ago; training starts after 5 idle minutes (in 3 min)',
      duty: 0,
      until: MON_NOON + 175_000,
    });
    const justNow = run(settings({ idleMinutes: 1 }), snapshot({ idleSeconds: 10 }));
    expect(justNow.reason).toBe('waiting: you were active just now; training starts after 1 idle minute (in 50 s)');
    expect(run(DEFAULT_SETTINGS, snapshot({ idleSeconds: 300 })).action).toBe('run');
  });

  it('idle 0 minutes trains while the user is active', () => {
    expect(run(settings({ idleMinutes: 0 }), snapshot({ idleSeconds: 0 }))).toEqual({ action: 'run', reason: 'training', duty: 1 });
  });

  it('the user pause holds until resumed; a snooze until its end', () => {
    expect(run(DEFAULT_SETTINGS, snapshot({ pausedUntil: Number.POSITIVE_INFINITY }))).toEqual({ action: 'pause', reason: 'paused by you', duty: 0 });
    const now = jan(6, 12, 40);
    const until = snoozeUntil(now, 6);
    expect(run(DEFAULT_SETTINGS, snapshot({ now, pausedUntil: until }))).toEqual({ action: 'pause', reason: 'snoozed until 18:40', duty: 0, until });
    const overnight = snoozeUntil(jan(6, 20), 12);
    expect(run(DEFAULT_SETTINGS, snapshot({ now: jan(6, 20), pausedUntil: overnight })).reason).toBe('snoozed until Tue 08:00');
    expect(run(DEFAULT_SETTINGS, snapshot({ now: until, pausedUntil: until })).action).toBe('run');
  });

  it('pauses for a listed game: any case, with or without ".exe", with a path, cut to 15 characters by Linux', () => {
    const paused = (processes: string[], games = DEFAULT_SETTINGS.games) => run(settings({ games }), snapshot({ processes: ['steam', ...processes] })).reason;
    expect(paused(['eldenring.exe'])).toBe('paused: game running (eldenring.exe)');
    expect(paused(['EldenRing.EXE'])).toBe('paused: game running (eldenring.exe)');
    expect(paused(['eldenring.exe'], ['eldenring'])).toBe('paused: game running (eldenring)');
    expect(paused(['hl2_linux'], ['hl2_linux.exe'])).toBe('paused: game running (hl2_linux.exe)');
    expect(paused(['C:\\Games\\ELDEN RING\\Game\\eldenring.exe'])).toBe('paused: game running (eldenring.exe)');
    expect(paused(['Cyberpunk2077.e'])).toBe('paused: game running (Cyberpunk2077.exe)');
    expect(paused(['cs2.exe', 'dota2.exe', 'GTA5.exe', 'RDR2.exe'])).toBe('paused: game running (cs2.exe, dota2.exe, GTA5.exe and 1 more)');
    expect(paused(['eldenring.exe'], ['eldenring', 'ELDENRING.EXE'])).toBe('paused: game running (eldenring)');
  });

  it('does not pause for names that only look like a game', () => {
    for (const p of ['eldenring-launcher.exe', 'eldenring.exe.bak', 'cs2d', 'Cyberpunk2077.x', 'xcs2.exe']) {
      expect(run(DEFAULT_SETTINGS, snapshot({ processes: [p] })).action).toBe('run');
    }
  });

  it('per GPU: a game seen on another GPU than the training one does not pause, and the reason says so', () => {
    const gpus = [
      { index: 0, temperatureC: 60, processes: ['python3'] },
      { index: 1, temperatureC: 70, processes: ['eldenring.exe'] },
    ];
    const snap = snapshot({ processes: ['eldenring.exe'], gpus });
    const d = run(settings({ gpuIndex: 0 }), snap);
    expect(d).toEqual({ action: 'run', reason: 'training: idle for 10 min; eldenring.exe runs on GPU 1, not on training GPU 0', duty: 1 });
    expect(run(settings({ gpuIndex: 0, gpuUsage: 0.6 }), snap).reason).toBe('throttled: GPU-usage limit 60 %; eldenring.exe runs on GPU 1, not on training GPU 0');
    expect(run(settings({ gpuIndex: 1 }), snap).reason).toBe('paused: game running (eldenring.exe)');
    expect(run(DEFAULT_SETTINGS, snap).reason).toBe('paused: game running (eldenring.exe)');
    // The sensors do not say which GPU runs it: pause, whatever GPU trains.
    expect(run(settings({ gpuIndex: 0 }), snapshot({ processes: ['eldenring.exe'] })).action).toBe('pause');
  });

  it('a game listed only by the GPU sensor still counts', () => {
    const snap = snapshot({ processes: [], gpus: [{ index: 0, processes: ['/opt/games/eldenring.exe'] }] });
    expect(run(DEFAULT_SETTINGS, snap).reason).toBe('paused: game running (eldenring.exe)');
  });

  it('pauses for a fullscreen app only when asked to and when the OS tells', () => {
    expect(run(DEFAULT_SETTINGS, snapshot({ fullscreen: true })).reason).toBe('paused: a fullscreen app is in front');
    expect(run(DEFAULT_SETTINGS, snapshot({ fullscreen: false })).action).toBe('run');
    expect(run(DEFAULT_SETTINGS, snapshot({ fullscreen: undefined })).action).toBe('run');
    expect(run(settings({ pauseOnFullscreen: false }), snapshot({ fullscreen: true })).action).toBe('run');
  });

  it('battery: pauses on battery, or below the minimum charge when allowed on battery', () => {
    const onBattery = (percent: number) => snapshot({ battery: { onBattery: true, percent } });
    const allowed = settings({ battery: { pauseOnBattery: false, minPercent: 30 } });
    expect(run(DEFAULT_SETTINGS, onBattery(90)).reason).toBe('paused: on battery power');
    expect(run(allowed, onBattery(25)).reason).toBe('paused: battery at 25 %, below your 30 %');
    expect(run(allowed, onBattery(30)).action).toBe('run');
    expect(run(DEFAULT_SETTINGS, snapshot({ battery: { onBattery: false, percent: 5 } })).action).toBe('run');
    expect(run(DEFAULT_SETTINGS, snapshot({ battery: undefined })).action).toBe('run');
  });

  it('schedule: pauses outside it and says when it resumes; inside, `until` is its end', () => {
    const s = settings({ schedule: [{ days: [1, 2, 3, 4, 5], from: '18:00', to: '23:00' }] });
    expect(run(s, snapshot())).toEqual({ action: 'pause', reason: 'paused: outside your schedule (resumes Mon 18:00)', duty: 0, until: jan(6, 18) });
    expect(run(s, snapshot({ now: jan(6, 19) }))).toEqual({ action: 'run', reason: 'training: idle for 10 min', duty: 1, until: jan(6, 23) });
    expect(run(s, snapshot({ now: jan(10, 23, 30) })).reason).toBe('paused: outside your schedule (resumes Mon 18:00)');
    const night = settings({ schedule: [{ days: [5], from: '22:00', to: '06:00' }] });
    expect(run(night, snapshot({ now: jan(11, 3) }))).toMatchObject({ action: 'run', until: jan(11, 6) });
  });

  it('`until` is the earliest of the idle start and the schedule end', () => {
    const s = settings({ schedule: [{ days: [1], from: '11:00', to: '12:02' }] });
    expect(run(s, snapshot({ idleSeconds: 0 })).until).toBe(jan(6, 12, 2));
    expect(run(s, snapshot({ idleSeconds: 240 })).until).toBe(MON_NOON + 60_000);
  });

  it('temperature: pauses at the limit and resumes only below the lower threshold (hysteresis both ways)', () => {
    const temps = [80, 83, 78, 75, 74.9, 80, 82, 90, 76, 60];
    const ds = sequence(
      DEFAULT_SETTINGS,
      temps.map((t) => snapshot({ gpus: [{ index: 0, temperatureC: t }] })),
    );
    expect(ds.map((d) => d.action)).toEqual(['run', 'pause', 'pause', 'pause', 'run', 'run', 'run', 'pause', 'pause', 'run']);
    expect(ds[1].reason).toBe('paused: GPU at 83 °C, limit 83 °C; resumes below 75 °C');
    expect(ds[2].reason).toBe('paused: GPU cooling down (78 °C, resumes below 75 °C)');
  });

  it('temperature: 0 turns the limit off', () => {
    const s = settings({ temperature: { pauseAtC: 0, resumeBelowC: 0 } });
    expect(run(s, snapshot({ gpus: [{ index: 0, temperatureC: 105 }] })).action).toBe('run');
  });

  it('a game heats the GPU: after it quits, training waits for the GPU to cool', () => {
    const hotGame = snapshot({ processes: ['eldenring.exe'], gpus: [{ index: 0, temperatureC: 86 }] });
    const warm = snapshot({ gpus: [{ index: 0, temperatureC: 79 }] });
    expect(sequence(DEFAULT_SETTINGS, [hotGame, warm]).map((d) => d.reason)).toEqual([
      'paused: game running (eldenring.exe)',
      'paused: GPU cooling down (79 °C, resumes below 75 °C)',
    ]);
  });

  it('power: throttles over the limit to half duty, back to full speed only below the resume level', () => {
    const s = settings({ power: { throttleAtW: 220, resumeBelowW: 200 } });
    const watts = [210, 220, 240, 210, 200, 199.5, 215];
    const ds = sequence(
      s,
      watts.map((w) => snapshot({ gpus: [{ index: 0, powerW: w }] })),
    );
    expect(ds.map((d) => d.action)).toEqual(['run', 'run', 'throttle', 'throttle', 'throttle', 'run', 'run']);
    expect(ds[2]).toEqual({ action: 'throttle', reason: 'throttled: GPU at 240 W, limit 220 W', duty: 0.5 });
    expect(ds[3].reason).toBe('throttled: GPU at 210 W, full speed again below 200 W');
  });

  it('power: a lower GPU-usage limit wins the duty', () => {
    const s = settings({ power: { throttleAtW: 220, resumeBelowW: 200 }, gpuUsage: 0.3 });
    expect(run(s, snapshot({ gpus: [{ index: 0, powerW: 240 }] }))).toMatchObject({ action: 'throttle', duty: 0.3 });
  });

  it('a GPU-usage limit below 1 is a duty cycle', () => {
    expect(run(settings({ gpuUsage: 0.6 }), snapshot())).toEqual({ action: 'throttle', reason: 'throttled: GPU-usage limit 60 %', duty: 0.6 });
  });

  it('reads the chosen GPU when set; otherwise the hottest', () => {
    const gpus = [
      { index: 0, temperatureC: 60, powerW: 100 },
      { index: 1, temperatureC: 90, powerW: 300 },
    ];
    expect(run(settings({ gpuIndex: 0 }), snapshot({ gpus })).action).toBe('run');
    expect(run(DEFAULT_SETTINGS, snapshot({ gpus })).reason).toBe('paused: GPU at 90 °C, limit 83 °C; resumes below 75 °C');
    // A chosen GPU that does not report: every GPU counts.
    expect(run(settings({ gpuIndex: 3 }), snapshot({ gpus })).action).toBe('pause');
  });

  it('missing sensors never pause, and clear what they held', () => {
    const s = settings({ power: { throttleAtW: 220, resumeBelowW: 200 } });
    const blind = snapshot({ fullscreen: undefined, battery: undefined, gpus: [{ index: 0 }] });
    expect(decide(s, blind, INITIAL_MEMORY)).toEqual({ decision: { action: 'run', reason: 'training: idle for 10 min', duty: 1 }, memory: INITIAL_MEMORY });
    expect(decide(s, snapshot({ gpus: [] }), { hot: true, powerCapped: true })).toEqual({
      decision: { action: 'run', reason: 'training: idle for 10 min', duty: 1 },
      memory: { hot: false, powerCapped: false },
    });
    const nan = snapshot({ gpus: [{ index: 0, temperatureC: Number.NaN, powerW: Number.NaN }], idleSeconds: Number.NaN });
    expect(run(s, nan)).toEqual({ action: 'run', reason: 'training', duty: 1 });
  });

  it('priority: user pause, game, fullscreen, battery, schedule, temperature, idle, power, GPU usage, run', () => {
    const s = settings({ schedule: [{ days: [1], from: '18:00', to: '23:00' }], power: { throttleAtW: 220, resumeBelowW: 200 }, gpuUsage: 0.6 });
    let snap = snapshot({
      pausedUntil: Number.POSITIVE_INFINITY,
      processes: ['eldenring.exe'],
      fullscreen: true,
      battery: { onBattery: true, percent: 50 },
      gpus: [{ index: 0, temperatureC: 90, powerW: 250 }],
      idleSeconds: 10,
    });
    const fixes: [RegExp, Partial<MachineSnapshot>][] = [
      [/^paused by you$/, { pausedUntil: undefined }],
      [/^paused: game running/, { processes: [] }],
      [/^paused: a fullscreen app/, { fullscreen: false }],
      [/^paused: on battery/, { battery: undefined }],
      [/^paused: outside your schedule/, { now: jan(6, 19) }],
      [/^paused: GPU at 90 °C/, { gpus: [{ index: 0, temperatureC: 60, powerW: 250 }] }],
      [/^waiting: /, { idleSeconds: 600 }],
      [/^throttled: GPU at 250 W/, { gpus: [{ index: 0, temperatureC: 60, powerW: 100 }] }],
      [/^throttled: GPU-usage limit 60 %$/, {}],
    ];
    for (const [reason, fix] of fixes) {
      expect(run(s, snap).reason).toMatch(reason);
      snap = { ...snap, ...fix };
    }
    expect(run({ ...s, gpuUsage: 1 }, snap)).toMatchObject({ action: 'run', reason: 'training: idle for 10 min' });
  });

  it('is a pure function of its inputs', () => {
    const s = settings({ schedule: [{ days: [1], from: '18:00', to: '23:00' }] });
    const snap = snapshot({ processes: ['eldenring.exe'], gpus: [{ index: 0, temperatureC: 90 }] });
    const before = structuredClone({ s, snap });
    const memory = { hot: false, powerCapped: false };
    expect(decide(s, snap, memory)).toEqual(decide(s, snap, memory));
    expect({ s, snap }).toEqual(before);
    expect(memory).toEqual({ hot: false, powerCapped: false });
  });

  // Any settings the schema accepts, and any snapshot the sensors could produce (or garble).
  const hysteresis = (max: number) =>
    fc.oneof(
      fc.constant([0, 0]),
      fc.integer({ min: 2, max }).chain((hi) => fc.integer({ min: 1, max: hi - 1 }).map((lo) => [hi, lo])),
    );
  const hhmm = fc.tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 })).map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
  const settingsArb: fc.Arbitrary<PolicySettings> = fc.record({
    idleMinutes: fc.integer({ min: 0, max: 1440 }),
    games: fc.subarray([...DEFAULT_GAMES, 'eldenring', 'hl2_linux']),
    pauseOnFullscreen: fc.boolean(),
    battery: fc.record({ pauseOnBattery: fc.boolean(), minPercent: fc.integer({ min: 0, max: 100 }) }),
    schedule: fc.array(fc.record({ days: fc.uniqueArray(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 7 }), from: hhmm, to: hhmm }), { maxLength: 3 }),
    temperature: hysteresis(120).map(([pauseAtC, resumeBelowC]) => ({ pauseAtC, resumeBelowC })),
    power: hysteresis(2000).map(([throttleAtW, resumeBelowW]) => ({ throttleAtW, resumeBelowW })),
    gpuUsage: fc.double({ min: 0.1, max: 1, noNaN: true }),
    startAtLogin: fc.boolean(),
    gpuIndex: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
  });
  const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
  const gpuArb = fc.record({
    index: fc.integer({ min: 0, max: 3 }),
    temperatureC: maybe(fc.oneof(fc.integer({ min: 20, max: 110 }), fc.constant(Number.NaN))),
    powerW: maybe(fc.double({ min: 0, max: 600, noNaN: true })),
    processes: maybe(fc.subarray(['eldenring.exe', 'python3', 'cs2.exe'])),
  });
  const snapArb: fc.Arbitrary<MachineSnapshot> = fc
    .record({
      now: fc.integer({ min: Date.UTC(2020, 0, 1), max: Date.UTC(2030, 0, 1) }),
      idleSeconds: fc.oneof(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.constant(Number.NaN)),
      fullscreen: maybe(fc.boolean()),
      processes: fc.subarray(['explorer.exe', 'steam', 'eldenring.exe', 'Cyberpunk2077.e', 'node', 'kworker/0:1']),
      battery: maybe(fc.record({ onBattery: fc.boolean(), percent: fc.integer({ min: 0, max: 100 }) })),
      gpus: fc.array(gpuArb, { maxLength: 3 }),
      pause: maybe(fc.oneof(fc.constant(Number.POSITIVE_INFINITY), fc.integer({ min: -1e8, max: 1e8 }))),
    })
    .map(({ pause, ...snap }) => ({ ...snap, pausedUntil: pause === undefined || !Number.isFinite(pause) ? pause : snap.now + pause }));

  it('property: never throws; always a reason, a duty in [0, 1] that matches the action, and a future `until`', () => {
    fc.assert(
      fc.property(settingsArb, fc.array(snapArb, { minLength: 1, maxLength: 6 }), (s, snaps) => {
        expect(() => parseSettings(s)).not.toThrow();
        let memory = INITIAL_MEMORY;
        for (const snap of snaps) {
          const r = decide(s, snap, memory);
          memory = r.memory;
          const { action, reason, duty, until } = r.decision;
          expect(reason.length).toBeGreaterThan(0);
          expect(duty >= 0 && duty <= 1).toBe(true);
          expect(action === 'pause' ? duty === 0 : duty > 0).toBe(true);
          if (action === 'run') expect(duty).toBe(1);
          if (until !== undefined) expect(until).toBeGreaterThan(snap.now);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('property: temperature follows its hysteresis for any run of readings', () => {
    const s = settings({ idleMinutes: 0 });
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 50, max: 100 }), { maxLength: 30 }), (temps) => {
        let hot = false;
        const ds = sequence(
          s,
          temps.map((t) => snapshot({ gpus: [{ index: 0, temperatureC: t }] })),
        );
        temps.forEach((t, i) => {
          hot = hot ? t >= 75 : t >= 83;
          expect(ds[i].action).toBe(hot ? 'pause' : 'run');
        });
      }),
    );
  });

  it('the schema and the type agree', () => {
    const typed: PolicySettings = PolicySettingsSchema.parse(DEFAULT_SETTINGS);
    expect(typed).toEqual(DEFAULT_SETTINGS);
  });
});

describe('duty cycle and snooze', () => {
  it('restAfter: rest so that busy / (busy + rest) = duty', () => {
    expect(restAfter(100, 1)).toBe(0);
    expect(restAfter(100, 2)).toBe(0);
    expect(restAfter(100, 0.5)).toBe(100);
    expect(restAfter(100, 0.25)).toBe(300);
    expect(restAfter(100, 0.6)).toBeCloseTo(66.667, 3);
    expect(restAfter(0, 0.5)).toBe(0);
    expect(restAfter(-5, 0.5)).toBe(0);
  });

  it('restAfter clamps the duty to at least 5 %, and an unreadable duty rests the most', () => {
    expect(restAfter(100, 0.01)).toBeCloseTo(1900, 6);
    expect(restAfter(100, 0)).toBeCloseTo(1900, 6);
    expect(restAfter(100, Number.NaN)).toBeCloseTo(1900, 6);
  });

  it('property: restAfter achieves the duty', () => {
    fc.assert(
      fc.property(fc.double({ min: 1, max: 1e6, noNaN: true }), fc.double({ min: 0, max: 1.5, noNaN: true }), (busy, duty) => {
        const rest = restAfter(busy, duty);
        const target = Math.min(1, Math.max(0.05, duty));
        expect(rest).toBeGreaterThanOrEqual(0);
        expect(busy / (busy + rest)).toBeCloseTo(target, 9);
      }),
    );
  });

  it('snoozes last 1, 3, 6 or 12 hours', () => {
    expect(SNOOZE_HOURS).toEqual([1, 3, 6, 12]);
    expect(SNOOZE_HOURS.map((h) => snoozeUntil(MON_NOON, h) - MON_NOON)).toEqual([3_600_000, 10_800_000, 21_600_000, 43_200_000]);
  });
});
