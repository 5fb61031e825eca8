// Cheap statistics on every boundary tensor a neighbour sends (ARCHITECTURE: "finite values, norms
// inside the running band of that boundary"). The decoder already refuses non-finite values. Here,
// a tensor no honest stage produces (all zero, or a value far beyond any honest boundary) is
// refused outright, and once a boundary has seen enough accepted frames, a frame whose RMS is more
// than BAND_FACTOR away from the median RMS of the recent ones is refused: a gradient scaled ×100
// or garbage of the wrong scale. The median, not the mean: the few frames let in while the band was
// still filling cannot drag it far.

/**
 * How far a frame's RMS may stray from the running median, either way. Measured on honest training
 * (tests/pipeline.test.ts-style runs, every received frame against the median of the BAND_WINDOW
 * before it): with N = 256 and 1024 tokens a microbatch (4-stage d64 int8 at lr 3e-3, 120 steps;
 * the swarm default d128 subspace:k=16:int8, 100 steps) activations strayed at most ×3.4 (while
 * they grow ×60 early in training) and gradients ×3.1; with the in-memory tests' 16-token
 * microbatches at lr 1e-2 without clipping, single-microbatch loss spikes took a gradient ×24 above
 * the median. Generation rows (1..seq positions of one sequence) sat within ×0.75–2 of the
 * training activations' median. 32 clears all of it and still refuses a gradient scaled ×100.
 */
export const BAND_FACTOR = 32;
/** Accepted frames the median is taken over (a dozen rounds of a few microbatches). */
export const BAND_WINDOW = 48;
/** Accepted frames a band needs before it refuses anything. */
export const BAND_MIN = 8;
/**
 * Largest magnitude any value of a boundary tensor or replica weight may have. Honest boundaries
 * are O(1)–O(100) (activations) or far smaller (gradients); below this, no layer of a healthy stage
 * can overflow fp32, so a neighbour cannot make a stage diverge before its band is armed.
 */
export const MAX_ABS = 1e6;

/** Root mean square of `x`, accumulated in float64. */
export function rms(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s / x.length);
}

/** Why no honest stage could have sent `x` (all zero, or a value beyond ±MAX_ABS), or undefined. */
export function implausible(x: Float32Array): string | undefined {
  let zero = true;
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]);
    if (a > MAX_ABS) return `value ${i} is ${x[i]}, beyond ±${MAX_ABS}`;
    if (a !== 0) zero = false;
  }
  return zero ? 'the tensor is all zero' : undefined;
}

/** The running band of one boundary: the RMS of its last BAND_WINDOW accepted frames. */
export class NormBand {
  private readonly recent: number[] = [];
  private next = 0;

  constructor(
    private readonly factor = BAND_FACTOR,
    private readonly window = BAND_WINDOW,
    private readonly min = BAND_MIN,
  ) {}

  /** Median RMS of the recent frames, once there are enough of them to judge by. */
  get median(): number | undefined {
    if (this.recent.length < this.min) return undefined;
    const s = [...this.recent].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  }

  /** Why a frame of RMS `r` is out of band, or undefined (always, while the band is filling). */
  check(r: number): string | undefined {
    const m = this.median;
    if (m === undefined || (r >= m / this.factor && r <= m * this.factor)) return undefined;
    return `RMS ${r.toPrecision(3)} is outside [${(m / this.factor).toPrecision(3)}, ${(m * this.factor).toPrecision(3)}] (median ${m.toPrecision(3)} of the last ${this.recent.length} frames, ×${this.factor} either way)`;
  }

  /** Count an accepted frame's RMS into the band. */
  add(r: number): void {
    if (this.recent.length < this.window) this.recent.push(r);
    else this.recent[this.next] = r;
    this.next = (this.next + 1) % this.window;
  }
}
