// Byte sizes as a terminal report writes them (GiB, MiB, KiB: powers of two, three significant digits).

export const GiB = 2 ** 30;
export const MiB = 2 ** 20;

export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '?';
  if (n >= GiB) return `${num(n / GiB)} GiB`;
  if (n >= MiB) return `${num(n / MiB)} MiB`;
  if (n >= 1024) return `${num(n / 1024)} KiB`;
  return `${n} B`;
}

export const num = (x: number) => String(Number(x.toPrecision(3)));
