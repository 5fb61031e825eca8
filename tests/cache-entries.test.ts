// A stage's KV cache entries: each request holds one; when all are held, a new request takes the
// entry of the one idle longest if it has been idle long enough (its path is stuck), else it is told
// the stage is busy; the evicted request learns why at its next step, and nobody else's entry moves.
import { describe, expect, it } from 'vitest';
import { CacheEntries } from '../shared/peer/cache-entries.js';
import { GenerationError } from '../shared/peer/generate-frames.js';

describe('KV cache entries', () => {
  it('gives each request its own entry and takes it back when the request ends', () => {
    const c = new CacheEntries(3, 1000);
    const got = [1, 2, 3].map((id) => c.acquire(id, 0).entry);
    expect(new Set(got).size).toBe(3);
    expect(got.every((e) => e >= 0 && e < 3)).toBe(true);
    c.release(2);
    expect(c.acquire(4, 10)).toEqual({ entry: got[1] });
    expect(() => c.acquire(4, 10)).toThrow('request 4 already holds a cache entry on this stage');
    expect(c.size).toBe(3);
  });

  it('refuses a new request as busy while every holder is recent, and evicts the longest idle after idleMs', () => {
    const c = new CacheEntries(2, 1000);
    const a = c.acquire(1, 0).entry;
    const b = c.acquire(2, 0).entry;
    c.use(1, a, 600); // request 1 stepped; request 2 has been idle since 0
    const busy = (() => {
      try {
        c.acquire(3, 900);
      } catch (e) {
        return e as GenerationError;
      }
    })();
    expect(busy).toBeInstanceOf(GenerationError);
    expect(busy!.message).toBe('busy: this stage is serving 2 requests, its most at once; retry when one ends');
    expect(c.acquire(3, 1500)).toEqual({ entry: b, evicted: 2 });
    // The evicted request hears why at its next step; the one that kept its entry steps on.
    expect(() => c.use(2, b, 1600)).toThrow('request 2 lost its KV cache entry to a newer request after 1.5 s idle');
    expect(() => c.use(1, a, 1600)).not.toThrow();
    // A request cannot step in an entry it does not hold.
    expect(() => c.use(1, b, 1600)).toThrow('request 1 does not hold cache entry 1 on this stage');
    // Releasing an evicted request frees nothing (its entry is another's now).
    c.release(2);
    expect(c.size).toBe(2);
    expect(() => c.acquire(4, 1700)).toThrow(/^busy/);
  });
});
