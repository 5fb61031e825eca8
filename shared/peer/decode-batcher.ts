// A stage's requests in flight sharing its KV cache: each request holds one cache entry from its
// prefill to its end, and the positions every request has ready are forwarded together, one step
// of the decoder for all of them: a prefill's whole window and other requests' new tokens alike
// (continuous batching: a request joins the next step and leaves when it ends; nobody waits for a
// batch to fill).
import type { BlockRuntime } from '../engine/block-runtime.js';
import type { DecodeRow, KvDecoder } from '../engine/kv-decoder.js';
import { GEN_OPEN_REQUESTS } from '../trust/mailbox.js';
import { AbortReason, GenerationError } from './generate-frames.js';
import type { ServeShare } from './serve-share.js';

/** One request's rows for a step (a window, or its newest position), and who waits for their outputs. */
interface Waiting {
  rows: DecodeRow[];
  resolve(out: Float32Array): void;
  reject(e: Error): void;
}

/** Whether the stage is training now, and serving's share of it then. */
export interface Pacing {
  share: ServeShare;
  training(): boolean;
}

/** How many requests a batcher's cache holds and the most positions one step forwards. */
export interface BatcherLimits {
  entries: number;
  maxRows: number;
}

export class DecodeBatcher {
  private readonly free: number[];
  private readonly held = new Map<number, number>();
  private waiting: Waiting[] = [];
  private running = false;
  private built?: KvDecoder;
  private destroyed = false;
  /** Steps run and rows forwarded (rows / steps is the batch the load made). */
  readonly stats = { steps: 0, rows: 0 };

  constructor(
    /** Builds the cache on the first step: a peer that is never asked to serve never allocates it. */
    private readonly build: (limits: BatcherLimits) => KvDecoder,
    readonly limits: BatcherLimits,
    /** Floats per output row: the block's boundary width, or the vocabulary for the head. */
    private readonly rowFloats: number,
    /** Serving's share of the stage while it trains (serve-share.ts); unpaced without. */
    private readonly pace?: Pacing,
  ) {
    this.free = Array.from({ length: limits.entries }, (_, i) => limits.entries - 1 - i);
  }

  /**
   * A batcher over a KV cache of `runtime`'s block: room for as many requests as a neighbour may
   * have open at once (the mailbox holds no more), and steps wide enough for a whole window.
   */
  static of(runtime: BlockRuntime, o: { requests?: number; pace?: Pacing } = {}): DecodeBatcher {
    const requests = o.requests ?? GEN_OPEN_REQUESTS;
    const limits = { entries: requests, maxRows: Math.max(requests, runtime.cfg.seq) };
    return new DecodeBatcher((l) => runtime.kvDecoder(l), limits, runtime.cfg.hasHead ? runtime.cfg.vocab : runtime.width, o.pace);
  }

  private get decoder(): KvDecoder {
    if (this.destroyed) throw new GenerationError(AbortReason.Refused, 'this stage left the run');
    this.built ??= this.build(this.limits);
    return this.built;
  }

  /** Frees the cache's GPU memory (the seat is leaving); requests still waiting fail. */
  destroy(): void {
    this.destroyed = true;
    for (const w of this.waiting.splice(0)) w.reject(new GenerationError(AbortReason.Refused, 'this stage left the run'));
    this.built?.destroy();
    this.built = undefined;
  }

  /** The cache entry of request `requestId`, taken now; refused when every entry is held. */
  acquire(requestId: number): number {
    if (this.held.has(requestId)) throw new GenerationError(AbortReason.Refused, `request ${requestId} already holds a cache entry on this stage`);
    const entry = this.free.pop();
    if (entry === undefined) {
      throw new GenerationError(AbortReason.Refused, `busy: this stage is serving ${this.held.size} requests, its most at once; retry when one ends`);
    }
    this.held.set(requestId, entry);
    return entry;
  }

  release(requestId: number): void {
    const entry = this.held.get(requestId);
    if (entry === undefined) return;
    this.held.delete(requestId);
    this.free.push(entry);
  }

  get inFlight(): number {
    return this.held.size;
  }

  /** Forward a request's rows (at most maxRows) with the others waiting now; resolves with their output rows. */
  step(rows: DecodeRow[]): Promise<Float32Array> {
    if (rows.length < 1 || rows.length > this.limits.maxRows)
      return Promise.reject(new Error(`a request forwards 1 to ${this.limits.maxRows} positions a step, not ${rows.length}`));
    return new Promise((resolve, reject) => {
      this.waiting.push({ rows, resolve, reject });
      void this.pump();
    });
  }

  /** The waiting requests, oldest first, whose rows fit in one step together. */
  private take(): Waiting[] {
    let room = this.limits.maxRows;
    const batch: Waiting[] = [];
    while (this.waiting.length && this.waiting[0].rows.length <= room) {
      room -= this.waiting[0].rows.length;
      batch.push(this.waiting.shift()!);
    }
    return batch;
  }

  private async pump(): Promise<void> {
    if (this.running || this.waiting.length === 0) return;
    this.running = true;
    // Let the frames already received be read first (each is its own task): the requests whose
    // previous token arrived with this one's join this step instead of forcing a step each.
    await new Promise((r) => setTimeout(r, 0));
    await this.pace?.share.earned(this.pace.training);
    const batch = this.take();
    if (batch.length === 0) {
      this.running = false; // destroyed while it waited
      return;
    }
    try {
      const out = await this.timed(() => this.decoder.step(batch.flatMap((w) => w.rows)));
      this.stats.steps++;
      let at = 0;
      for (const w of batch) {
        w.resolve(out.slice(at * this.rowFloats, (at + w.rows.length) * this.rowFloats));
        at += w.rows.length;
      }
      this.stats.rows += at;
    } catch (e) {
      // One bad row must not fail the others: each is retried alone, so only its own request fails.
      if (batch.length === 1) batch[0].reject(e as Error);
      else await this.alone(batch);
    } finally {
      this.running = false;
      void this.pump();
    }
  }

  private timed(step: () => Promise<Float32Array>): Promise<Float32Array> {
    return this.pace ? this.pace.share.charged(this.pace.training, step) : step();
  }

  private async alone(batch: Waiting[]): Promise<void> {
    for (const w of batch) {
      try {
        w.resolve(await this.timed(() => this.decoder.step(w.rows)));
        this.stats.steps++;
        this.stats.rows += w.rows.length;
      } catch (e) {
        w.reject(e as Error);
      }
    }
  }
}
