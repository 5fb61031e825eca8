// The project's seeded generator (shared/base/random.ts) with the draws the fuzzers make: the same
// seed gives the same frames, so a failure replays exactly. Not for anything secret.
import { rng } from '../../shared/base/random.js';

export class Rng {
  /** Uniform in [0, 1). */
  readonly next: () => number;

  constructor(seed: number) {
    this.next = rng(seed);
  }

  /** An integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length)];
  }

  hex(digits: number): string {
    let s = '';
    for (let i = 0; i < digits; i++) s += '0123456789abcdef'[this.int(0, 16)];
    return s;
  }
}
