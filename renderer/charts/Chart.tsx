// The dashboard's two charts, drawn as plain SVG: a line chart (the loss by step) and a bar chart
// (units per epoch). A chart library measured its text in the page at every update and held the
// page's thread for hundreds of milliseconds; these draw in a few, from scale.ts's arithmetic.
import { type ReactNode, useEffect, useRef, useState } from 'react';
import { count } from '../format.js';
import { extent, linear, nearest, niceTicks } from './scale.js';

export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number }[];
  /** A dot at each point (a sparse series, such as validation every N steps). */
  dots?: boolean;
}

interface Axes {
  xLabel: string;
  yLabel: string;
  height: number;
  /** How a y tick reads (default: as the number prints). */
  yFormat?: (v: number) => string;
}

const PAD = { top: 10, right: 16, bottom: 42, left: 64 };
const GRID = '#2a3040';
const INK = '#9aa4b8';

/** The width the chart's box is given by the page, followed as the window resizes. */
function useWidth(): [React.RefObject<HTMLDivElement | null>, number] {
  const ref = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(0);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const observer = new ResizeObserver(([entry]) => setWidth(Math.floor(entry.contentRect.width)));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

/** Grid, ticks and axis titles around `children`, which draw with the scales they are handed. */
function Frame({
  axes,
  width,
  x,
  y,
  xTicks,
  yTicks,
  children,
}: {
  axes: Axes;
  width: number;
  x: (v: number) => number;
  y: (v: number) => number;
  xTicks: number[];
  yTicks: number[];
  children: ReactNode;
}) {
  const bottom = axes.height - PAD.bottom;
  const format = axes.yFormat ?? String;
  return (
    <g fontSize={12} fill={INK}>
      {yTicks.map((t) => (
        <g key={`y${t}`}>
          <line x1={PAD.left} x2={width - PAD.right} y1={y(t)} y2={y(t)} stroke={GRID} />
          <text x={PAD.left - 6} y={y(t)} textAnchor="end" dominantBaseline="middle">
            {format(t)}
          </text>
        </g>
      ))}
      {xTicks.map((t) => (
        <g key={`x${t}`}>
          <line x1={x(t)} x2={x(t)} y1={PAD.top} y2={bottom} stroke={GRID} />
          <text x={x(t)} y={bottom + 16} textAnchor="middle">
            {t}
          </text>
        </g>
      ))}
      <text x={(PAD.left + width - PAD.right) / 2} y={axes.height - 6} textAnchor="middle">
        {axes.xLabel}
      </text>
      <text transform={`translate(14 ${(PAD.top + bottom) / 2}) rotate(-90)`} textAnchor="middle">
        {axes.yLabel}
      </text>
      {children}
    </g>
  );
}

function Legend({ series }: { series: Series[] }) {
  return (
    <div className="chart-legend">
      {series.map((s) => (
        <span key={s.name}>
          <span className="swatch" style={{ background: s.color }} /> {s.name}
        </span>
      ))}
    </div>
  );
}

/** Lines through each series' points, x ascending; pointing at the chart reads every series at that x. */
export function LineChart({ series, ...axes }: Axes & { series: Series[] }) {
  const [ref, width] = useWidth();
  const [hover, setHover] = useState<number>();
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const xExtent = extent(xs) ?? [0, 1];
  const yTicks = niceTicks(...(extent(series.flatMap((s) => s.points.map((p) => p.y))) ?? [0, 1]), 5);
  const x = linear(xExtent, [PAD.left, width - PAD.right]);
  const y = linear([yTicks[0], yTicks.at(-1)!], [axes.height - PAD.bottom, PAD.top]);
  const xTicks = niceTicks(...xExtent, Math.max(2, Math.floor(width / 80)), true).filter((t) => t >= xExtent[0] && t <= xExtent[1]);
  const at = hover === undefined ? undefined : xs[hover];
  const pointAt = (e: React.PointerEvent<SVGSVGElement>) => {
    const px = e.clientX - e.currentTarget.getBoundingClientRect().left;
    setHover(nearest(xs.map(x), px));
  };
  return (
    <div ref={ref}>
      <Legend series={series} />
      {width > 0 && (
        <svg width={width} height={axes.height} role="img" aria-hidden onPointerMove={pointAt} onPointerLeave={() => setHover(undefined)}>
          <Frame axes={axes} width={width} x={x} y={y} xTicks={xTicks} yTicks={yTicks}>
            {series.map((s) => (
              <g key={s.name} data-series={s.name}>
                <polyline fill="none" stroke={s.color} strokeWidth={2} points={s.points.map((p) => `${x(p.x).toFixed(1)},${y(p.y).toFixed(1)}`).join(' ')} />
                {s.dots && s.points.map((p) => <circle key={p.x} className="dot" cx={x(p.x)} cy={y(p.y)} r={3} fill={s.color} />)}
              </g>
            ))}
            {at !== undefined && <Reading x={x(at)} at={at} series={series} axes={axes} width={width} />}
          </Frame>
        </svg>
      )}
    </div>
  );
}

/** A vertical rule at x = `at` and the value of each series there. */
function Reading({ x, at, series, axes, width }: { x: number; at: number; series: Series[]; axes: Axes; width: number }) {
  const format = axes.yFormat ?? String;
  const lines = [`${axes.xLabel} ${at}`, ...series.flatMap((s) => s.points.filter((p) => p.x === at).map((p) => `${s.name}: ${format(p.y)}`))];
  const boxWidth = 190;
  const left = x + boxWidth + 12 > width ? x - boxWidth - 8 : x + 8;
  return (
    <g pointerEvents="none">
      <line x1={x} x2={x} y1={PAD.top} y2={axes.height - PAD.bottom} stroke={INK} strokeDasharray="3 3" />
      <rect x={left} y={PAD.top} width={boxWidth} height={lines.length * 16 + 8} rx={4} fill="#161a24" stroke={GRID} />
      {lines.map((l, i) => (
        <text key={l} x={left + 8} y={PAD.top + 18 + i * 16} fill={i ? '#e6e9ef' : INK}>
          {l}
        </text>
      ))}
    </g>
  );
}

/** One bar per x, from zero up to its value. */
export function BarChart({ bars, name, color, yFormat = count, ...axes }: Axes & { bars: { x: number; y: number }[]; name: string; color: string }) {
  const [ref, width] = useWidth();
  const yTicks = niceTicks(0, Math.max(0, ...bars.map((b) => b.y)), 4);
  const y = linear([yTicks[0], yTicks.at(-1)!], [axes.height - PAD.bottom, PAD.top]);
  const slot = (width - PAD.left - PAD.right) / Math.max(1, bars.length);
  const x = (i: number) => PAD.left + slot * (i + 0.5);
  return (
    <div ref={ref}>
      <Legend series={[{ name, color, points: [] }]} />
      {width > 0 && (
        <svg width={width} height={axes.height} role="img" aria-hidden>
          <Frame axes={{ ...axes, yFormat }} width={width} x={x} y={y} xTicks={[]} yTicks={yTicks}>
            {bars.map((b, i) => (
              <g key={b.x}>
                <rect x={x(i) - slot * 0.35} width={slot * 0.7} y={y(b.y)} height={y(0) - y(b.y)} fill={color}>
                  <title>{`${axes.xLabel} ${b.x}: ${yFormat(b.y)} ${name}`}</title>
                </rect>
                <text x={x(i)} y={axes.height - PAD.bottom + 16} textAnchor="middle">
                  {b.x}
                </text>
              </g>
            ))}
          </Frame>
        </svg>
      )}
    </div>
  );
}
