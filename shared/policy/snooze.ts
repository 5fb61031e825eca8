// A snooze: the user pauses training for a few hours from the tray, the dashboard or the tab.

export const SNOOZE_HOURS = [1, 3, 6, 12] as const;
export type SnoozeHours = (typeof SNOOZE_HOURS)[number];

/** When a snooze of `hours` started at `now` (epoch ms) ends. */
export function snoozeUntil(now: number, hours: SnoozeHours): number {
  return now + hours * 3_600_000;
}
