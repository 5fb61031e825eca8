// How much of a stage's time serving buyers may take while the stage trains: a token bucket of
// GPU milliseconds. While a training round runs, serving earns `share` ms of decode steps per ms of
// wall time (up to `burstMs` saved), and a step that would overdraw waits; so serving slows training
// by at most about `share` of its time (the training slowdown bound), and a buyer's token waits at
// most the time to earn one step back (the serving latency bound). A stage that is not training
// serves at full speed. A step is timed from when the GPU has finished the work queued ahead of it
// (the batcher waits for that first): while training, that work is training's, not serving's.

export interface ServeShareOptions {
  /** Fraction of wall time decode steps may take while training runs. */
  share: number;
  /** Most step time saved up (a burst of steps served at once after a quiet spell). */
  burstMs: number;
  now(): number;
}

/** Serving's share while training: training keeps at least 75 % of its time. */
export const SERVE_SHARE = { share: 0.25, burstMs: 200 } as const;

export class ServeShare {
  private credit: number;
  private at: number;

  constructor(private readonly o: ServeShareOptions) {
    if (!(o.share > 0 && o.share <= 1)) throw new Error(`a serving share must be in (0, 1], got ${o.share}`);
    if (!(o.burstMs >= 0)) throw new Error(`a burst must be ≥ 0 ms, got ${o.burstMs}`);
    this.credit = o.burstMs;
    this.at = o.now();
  }

  /** Milliseconds to wait before the next step may start (0: now). */
  delay(training: boolean): number {
    this.refill(training);
    return this.credit >= 0 ? 0 : Math.ceil(-this.credit / this.o.share);
  }

  /** A step took `ms`: charged while training (it may overdraw; the next step waits it back). */
  spent(ms: number, training: boolean): void {
    this.refill(training);
    if (training) this.credit -= ms;
  }

  /** Resolves once the next step is earned (at once when not training). */
  async earned(training: () => boolean): Promise<void> {
    for (let wait = this.delay(training()); wait > 0; wait = this.delay(training())) await new Promise((r) => setTimeout(r, wait));
  }

  /** Run a step, charging what it took. */
  async charged<T>(training: () => boolean, step: () => Promise<T>): Promise<T> {
    const t0 = this.o.now();
    try {
      return await step();
    } finally {
      this.spent(this.o.now() - t0, training());
    }
  }

  private refill(training: boolean): void {
    const now = this.o.now();
    this.credit = training ? Math.min(this.o.burstMs, this.credit + (now - this.at) * this.o.share) : this.o.burstMs;
    this.at = now;
  }
}
