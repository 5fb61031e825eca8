// Which request holds which entry of a stage's KV cache. A request holds one from its prefill to its
// end. When every entry is held, a new request takes the entry of the request idle longest, if that
// one has sent nothing for `idleMs` (its path is stuck: a neighbour gone without a word, its abort
// lost); otherwise the new request is refused as busy. An evicted request learns why at its next step.
import { AbortReason, GenerationError } from './generate-frames.js';

/** Evicted requests remembered for their sentence (beyond, a late one is just "holds no entry"). */
const EVICTED_KEPT = 64;

export class CacheEntries {
  private readonly free: number[];
  private readonly held = new Map<number, { entry: number; at: number }>();
  /** Request id → how long it had been idle when its entry was taken. */
  private readonly evicted = new Map<number, number>();

  constructor(
    readonly count: number,
    readonly idleMs: number,
  ) {
    this.free = Array.from({ length: count }, (_, i) => count - 1 - i);
  }

  get size(): number {
    return this.held.size;
  }

  /** The entry of request `requestId`, taken at `now`: a free one, or the longest-idle request's; refused when neither. */
  acquire(requestId: number, now: number): { entry: number; evicted?: number } {
    if (this.held.has(requestId)) throw new GenerationError(AbortReason.Refused, `request ${requestId} already holds a cache entry on this stage`);
    let entry = this.free.pop();
    let evicted: number | undefined;
    if (entry === undefined) {
      const [id, oldest] = [...this.held].reduce((a, b) => (b[1].at < a[1].at ? b : a));
      if (now - oldest.at < this.idleMs) {
        throw new GenerationError(AbortReason.Refused, `busy: this stage is serving ${this.held.size} requests, its most at once; retry when one ends`);
      }
      this.held.delete(id);
      this.evicted.set(id, now - oldest.at);
      if (this.evicted.size > EVICTED_KEPT) this.evicted.delete(this.evicted.keys().next().value!);
      [entry, evicted] = [oldest.entry, id];
    }
    this.held.set(requestId, { entry, at: now });
    return { entry, ...(evicted !== undefined && { evicted }) };
  }

  /** Request `requestId` steps at `now` with `entry`: refused unless it holds that entry. */
  use(requestId: number, entry: number, now: number): void {
    const h = this.held.get(requestId);
    if (h?.entry === entry) {
      h.at = now;
      return;
    }
    const idle = this.evicted.get(requestId);
    if (idle !== undefined) {
      throw new GenerationError(AbortReason.Refused, `request ${requestId} lost its KV cache entry to a newer request after ${(idle / 1000).toFixed(1)} s idle`);
    }
    throw new GenerationError(AbortReason.Refused, `request ${requestId} does not hold cache entry ${entry} on this stage`);
  }

  release(requestId: number): void {
    const h = this.held.get(requestId);
    if (!h) return;
    this.held.delete(requestId);
    this.free.push(h.entry);
  }
}
