// A dependency-free SVG line plot, for loss curves people would rather look at than read.
export interface Series {
  name: string;
  points: [number, number][];
}

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2'];

export function lossPlotSvg(opts: {
  title: string;
  series: Series[];
  width?: number;
  height?: number;
  xLabel?: string;
  yLabel?: string;
  /** Named ticks on the x axis (e.g. categories) instead of five evenly spaced numbers. */
  xTicks?: Array<[number, string]>;
}): string {
  const W = opts.width ?? 720;
  const H = opts.height ?? 420;
  const m = { l: 60, r: 150, t: 36, b: 44 };
  const pts = opts.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (!pts.length) throw new Error('nothing to plot');
  const [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  const sx = (x: number) => m.l + ((x - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const sy = (y: number) => H - m.b - ((y - y0) / (y1 - y0 || 1)) * (H - m.t - m.b);
  const ticks = (a: number, b: number) => Array.from({ length: 5 }, (_, i) => a + ((b - a) * i) / 4);
  const esc = (s: string) => s.replace(/[<&>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="22" font-size="15">${esc(opts.title)}</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="#333"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="#333"/>`,
    ...(opts.xTicks ?? ticks(x0, x1).map((x): [number, string] => [x, String(+x.toFixed(0))])).map(
      ([x, label]) => `<text x="${sx(x)}" y="${H - m.b + 16}" text-anchor="middle">${esc(label)}</text>`,
    ),
    ...ticks(y0, y1).map(
      (y) => `<text x="${m.l - 6}" y="${sy(y) + 4}" text-anchor="end">${y.toFixed(3)}</text><line x1="${m.l}" y1="${sy(y)}" x2="${W - m.r}" y2="${sy(y)}" stroke="#eee"/>`,
    ),
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 8}" text-anchor="middle">${esc(opts.xLabel ?? 'step')}</text>`,
    `<text x="14" y="${(m.t + H - m.b) / 2}" transform="rotate(-90 14 ${(m.t + H - m.b) / 2})" text-anchor="middle">${esc(opts.yLabel ?? 'loss')}</text>`,
  ];
  opts.series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const d = s.points
      .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
      .map(([x, y], j) => `${j ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`)
      .join('');
    parts.push(`<path d="${d}" fill="none" stroke="${c}" stroke-width="1.6"/>`);
    // Sparse series (evaluations, sweeps) get markers so each measured point is visible.
    if (s.points.length <= 40) {
      for (const [x, y] of s.points) if (Number.isFinite(x) && Number.isFinite(y)) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${c}"/>`);
    }
    parts.push(`<rect x="${W - m.r + 12}" y="${m.t + i * 20}" width="12" height="3" fill="${c}"/><text x="${W - m.r + 30}" y="${m.t + i * 20 + 5}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
