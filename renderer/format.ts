// Numbers as people read them.
import { formatUnits } from 'viem';

export const short = (address: string): string => `${address.slice(0, 6)}…${address.slice(-4)}`;

export const percent = (x: number, digits = 1): string => `${(x * 100).toFixed(digits)} %`;

// One formatter of each kind, made once: making one per call (as toLocaleString does) cost the page
// tens of milliseconds per table it drew.
const COUNT = new Intl.NumberFormat('en-US');
const TIME = new Intl.DateTimeFormat(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
const CLOCK = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });

/** A whole number with thousands separators ("12,345"). */
export const count = (n: number | bigint): string => COUNT.format(n);

export const units = (u: bigint): string => count(u);

export const time = (ms: number): string => TIME.format(ms);

/** A time of day to the second, 24-hour ("14:02:31"): when a value that stopped updating was last read. */
export const clock = (ms: number): string => CLOCK.format(ms);

/** An error message as a sentence: capital first letter, one full stop at the end. */
export const sentence = (s: string): string => `${s.charAt(0).toUpperCase()}${s.slice(1).replace(/\.?$/, '.')}`;

/**
 * An 18-decimal amount (credentials, ETH) to at most `digits` decimals, rounded down, so what can be
 * claimed is never overstated; a dust amount reads "< 0.0001" rather than a bare 0.
 */
export function tokenAmount(x: bigint, digits = 4): string {
  const [whole, fraction = ''] = formatUnits(x, 18).split('.');
  const shown = fraction.slice(0, digits).replace(/0+$/, '');
  if (x > 0n && whole === '0' && !shown) return `< ${(10 ** -digits).toFixed(digits)}`;
  return shown ? `${whole}.${shown}` : whole;
}

/** A span as people say it: "40 s", "12 min", "3 h 20 min", "2 days 4 h". */
export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return min % 60 ? `${h} h ${min % 60} min` : `${h} h`;
  const days = Math.floor(h / 24);
  return h % 24 ? `${days} days ${h % 24} h` : `${days} days`;
}

/** How old a stale value is: "as of 2 min ago". */
export const ago = (ms: number): string => `as of ${duration(ms)} ago`;
