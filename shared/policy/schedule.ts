// The weekly schedule, in the machine's local time (what the user set it in). A window's `days` are
// the days it starts on: one from 22:00 to 06:00 on Friday runs Friday night into Saturday morning.
import type { ScheduleWindow } from './types.js';

const DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

/** "HH:MM" → minutes after midnight. */
export function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h * 60 + m;
}

function windowCovers(w: ScheduleWindow, day: number, minute: number): boolean {
  const from = minutesOf(w.from);
  const to = minutesOf(w.to);
  if (to > from) return w.days.includes(day) && minute >= from && minute < to;
  // Wraps past midnight: the evening part on its own days, the morning part on the day after.
  const dayBefore = (day + 6) % 7;
  return (w.days.includes(day) && minute >= from) || (w.days.includes(dayBefore) && minute < to);
}

/** Whether training is allowed at `date` (local time). No windows: any time. Windows are [from, to). */
export function inSchedule(windows: readonly ScheduleWindow[], date: Date): boolean {
  if (windows.length === 0) return true;
  const minute = date.getHours() * 60 + date.getMinutes();
  return windows.some((w) => windowCovers(w, date.getDay(), minute));
}

// Every window edge from `date`'s day to a week and a day after: the schedule repeats weekly and a
// window reaches at most into the next day, so the next change is among these.
function edgesAround(windows: readonly ScheduleWindow[], date: Date): number[] {
  const edges: number[] = [];
  for (let offset = 0; offset <= 8; offset++) {
    for (const w of windows) {
      for (const hhmm of [w.from, w.to]) {
        const minute = minutesOf(hhmm);
        edges.push(new Date(date.getFullYear(), date.getMonth(), date.getDate() + offset, Math.floor(minute / 60), minute % 60).getTime());
      }
    }
  }
  return edges;
}

/** The next time `inSchedule` flips (entering or leaving the schedule), or undefined if it never does. */
export function nextScheduleChange(windows: readonly ScheduleWindow[], date: Date): Date | undefined {
  if (windows.length === 0) return undefined;
  const now = inSchedule(windows, date);
  const later = edgesAround(windows, date)
    .filter((t) => t > date.getTime())
    .sort((a, b) => a - b);
  const change = later.find((t) => inSchedule(windows, new Date(t)) !== now);
  return change === undefined ? undefined : new Date(change);
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** "18:40" (local time). */
export function formatClock(date: Date): string {
  return `${pad2(date.getHours())}:${pad2(date.getMinutes())}`;
}

/** "Mon 18:00" (local time). */
export function formatWeekTime(date: Date): string {
  return `${DAY_NAMES[date.getDay()]} ${formatClock(date)}`;
}

/** "18:40" when `until` is later the same day as `now`, else "Tue 02:40". */
export function formatUntil(now: Date, until: Date): string {
  return now.toDateString() === until.toDateString() ? formatClock(until) : formatWeekTime(until);
}
