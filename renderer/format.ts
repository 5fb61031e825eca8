// Numbers as people read them.
export const bytes = (n: number): string => {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
};

export const short = (address: string): string => `${address.slice(0, 6)}…${address.slice(-4)}`;

export const percent = (x: number, digits = 1): string => `${(x * 100).toFixed(digits)} %`;

export const units = (u: bigint): string => u.toLocaleString('en-US');

export const time = (ms: number): string => new Date(ms).toLocaleString(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
