// Numbers as people read them.
export const short = (address: string): string => `${address.slice(0, 6)}…${address.slice(-4)}`;

export const percent = (x: number, digits = 1): string => `${(x * 100).toFixed(digits)} %`;

export const units = (u: bigint): string => u.toLocaleString('en-US');

export const time = (ms: number): string => new Date(ms).toLocaleString(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });

/** A time of day to the second, 24-hour ("14:02:31"): when a value that stopped updating was last read. */
export const clock = (ms: number): string => new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });

/** An error message as a sentence: capital first letter, one full stop at the end. */
export const sentence = (s: string): string => `${s.charAt(0).toUpperCase()}${s.slice(1).replace(/\.?$/, '.')}`;
