// What the user may set, checked before it is used: settings come from a file on disk and from the
// dashboard over IPC, and a bad value there must be refused with a message the dashboard can show
// (which field, what is wrong) instead of silently turning a policy off.
import { z } from 'zod';
import type { PolicySettings } from './types.js';

function between(lo: number, hi: number, unit: string) {
  const message = `must be between ${lo} and ${hi}${unit}`;
  return z.number().min(lo, message).max(hi, message);
}

const HHMM = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be a time "HH:MM" from 00:00 to 23:59');

export const ScheduleWindowSchema = z.object({
  days: z
    .array(z.int('must be a whole day number').min(0, 'must be a day 0 (Sunday) … 6 (Saturday)').max(6, 'must be a day 0 (Sunday) … 6 (Saturday)'))
    .min(1, 'needs at least one day')
    .max(7, 'has more than 7 days'),
  from: HHMM,
  to: HHMM,
});

// A resume threshold at or above the pause threshold would flap every reading (or never resume).
const TemperatureSchema = z
  .object({ pauseAtC: between(0, 120, ' °C'), resumeBelowC: between(0, 120, ' °C') })
  .refine((t) => t.pauseAtC === 0 || (t.resumeBelowC > 0 && t.resumeBelowC < t.pauseAtC), {
    message: 'must be above 0 and below pauseAtC (or set pauseAtC to 0 to turn the limit off)',
    path: ['resumeBelowC'],
  });

const PowerSchema = z
  .object({ throttleAtW: between(0, 2000, ' W'), resumeBelowW: between(0, 2000, ' W') })
  .refine((p) => p.throttleAtW === 0 || (p.resumeBelowW > 0 && p.resumeBelowW < p.throttleAtW), {
    message: 'must be above 0 and below throttleAtW (or set throttleAtW to 0 to turn the limit off)',
    path: ['resumeBelowW'],
  });

export const PolicySettingsSchema = z.object({
  idleMinutes: between(0, 1440, ' minutes'),
  games: z.array(z.string().trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters')).max(200, 'may list at most 200 games'),
  pauseOnFullscreen: z.boolean(),
  battery: z.object({ pauseOnBattery: z.boolean(), minPercent: between(0, 100, ' %') }),
  schedule: z.array(ScheduleWindowSchema).max(28, 'may have at most 28 windows'),
  temperature: TemperatureSchema,
  power: PowerSchema,
  gpuUsage: between(0.1, 1, ' (10 % to 100 %)'),
  startAtLogin: z.boolean(),
  gpuIndex: z.int('must be a whole GPU index').min(0, 'must be a GPU index 0 … 63').max(63, 'must be a GPU index 0 … 63').optional(),
});

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Popular PC games' executables (Windows names; under Proton/Wine on Linux the process has the same name). */
export const DEFAULT_GAMES: readonly string[] = deepFreeze([
  'eldenring.exe',
  'cs2.exe',
  'dota2.exe',
  'VALORANT-Win64-Shipping.exe',
  'FortniteClient-Win64-Shipping.exe',
  'r5apex.exe',
  'GTA5.exe',
  'Cyberpunk2077.exe',
  'RDR2.exe',
  'bg3.exe',
  'Overwatch.exe',
  'League of Legends.exe',
]);

// Frozen so that no caller can change the defaults everyone else starts from.
export const DEFAULT_SETTINGS: PolicySettings = deepFreeze({
  idleMinutes: 5,
  games: [...DEFAULT_GAMES],
  pauseOnFullscreen: true,
  battery: { pauseOnBattery: true, minPercent: 30 },
  schedule: [],
  temperature: { pauseAtC: 83, resumeBelowC: 75 },
  power: { throttleAtW: 0, resumeBelowW: 0 },
  gpuUsage: 1,
  startAtLogin: false,
});

const MAX_LISTED = 10;

/** One clause per problem: `temperature.resumeBelowC: must be above 0 and below pauseAtC …`. */
export function formatSettingsIssues(error: z.ZodError): string {
  const lines = error.issues.slice(0, MAX_LISTED).map((i) => `${i.path.length ? i.path.map(String).join('.') : 'settings'}: ${i.message}`);
  if (error.issues.length > MAX_LISTED) lines.push(`(${error.issues.length - MAX_LISTED} more)`);
  return lines.join('; ');
}

/** Checked settings (a fresh copy; the input is not modified), or an Error naming every bad field. */
export function parseSettings(json: unknown): PolicySettings {
  const r = PolicySettingsSchema.safeParse(json);
  if (!r.success) throw new Error(`invalid settings: ${formatSettingsIssues(r.error)}`);
  return r.data;
}

/**
 * Settings a host saved earlier (a file, localStorage), checked. One saved by an older version lacks
 * newer fields: those take their defaults, the user's choices stay. Invalid: an Error as parseSettings.
 */
export function parseSavedSettings(saved: unknown): PolicySettings {
  return parseSettings(typeof saved === 'object' && saved !== null && !Array.isArray(saved) ? { ...DEFAULT_SETTINGS, ...saved } : saved);
}
