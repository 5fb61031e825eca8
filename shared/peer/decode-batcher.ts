// A stage's requests in flight sharing its KV cache: each request holds one cache entry from its
// prefill to its end, and the positions the requests have ready are forwarded together, one step
// of the decoder for all of them: a prefill's whole window and other requests' new tokens alike
// (continuous batching: a request joins the next step and leaves when it ends; nobody waits for a
// batch to fill). While the stage trains, steps are paced to serving's share (serve-share.ts).
import type { BlockRuntime } from '../engine/block-runtime.js';
import { checkDecodeRows, type DecodeRow, type KvDecoder } from '../engine/kv-decoder.js';
import { type BlockConfig, boundaryWidth } from '../engine/model.js';
import { GEN_OPEN_REQUESTS } from '../trust/mailbox.js';
import { CacheEntries } from './cache-entries.js';
import { AbortReason, GenerationError } from './generate-frames.js';
import type { ServeShare } from './serve-share.js';

/** One request's rows for a step (a window, or its newest position), and who waits for their outputs. */
interface Waiting {
  requestId: number;
  rows: DecodeRow[];
  resolve(out: Float32Array): void;
  reject(e: Error): void;
}

/** Whether the stage is training now, and serving's share of it then. */
export interface Pacing {
  share: ServeShare;
  training(): boolean;
  /** Resolves when the GPU has done the work submitted so far (a step is timed from then). */
  drained(): Promise<void>;
}

/** How many requests a batcher's cache holds and the most positions one step forwards. */
export interface BatcherLimits {
  entries: number;
  maxRows: number;
}

export interface BatcherOptions {
  /** Builds the cache on the first step: a peer that is never asked to serve never allocates it. */
  build(limits: BatcherLimits): KvDecoder;
  /** The block the cache is of (a request's rows are checked against it before joining a step). */
  cfg: BlockConfig;
  limits: BatcherLimits;
  /** Serving's share of the stage while it trains (serve-share.ts); unpaced without. */
  pace?: Pacing;
  now(): number;
}

/** A request that has sent nothing for this long may lose its cache entry to a new one (cache-entries.ts). */
export const IDLE_EVICT_MS = 10_000;

export class DecodeBatcher {
  private readonly entries: CacheEntries;
  private waiting: Waiting[] = [];
  private running = false;
  private built?: KvDecoder;
  private destroyed = false;
  /** Steps run and rows forwarded (rows / steps is the batch the load made). */
  readonly stats = { steps: 0, rows: 0 };

  constructor(private readonly o: BatcherOptions) {
    this.entries = new CacheEntries(o.limits.entries, IDLE_EVICT_MS);
  }

  /**
   * A batcher over a KV cache of `runtime`'s block holding `requests` of them (as many as a
   * neighbour may have open at once unless the memory budget says fewer: the mailbox holds no
   * more), with steps wide enough for a whole window.
   */
  static of(runtime: BlockRuntime, o: { requests?: number; pace?: Pacing; now(): number }): DecodeBatcher {
    const requests = o.requests ?? GEN_OPEN_REQUESTS;
    return new DecodeBatcher({
      build: (l) => runtime.kvDecoder(l),
      cfg: runtime.cfg,
      limits: { entries: requests, maxRows: decodeRows(runtime.cfg, requests) },
      pace: o.pace,
      now: o.now,
    });
  }

  get limits(): BatcherLimits {
    return this.o.limits;
  }

  private get decoder(): KvDecoder {
    if (this.destroyed) throw new GenerationError(AbortReason.Refused, 'this stage left the run');
    this.built ??= this.o.build(this.o.limits);
    return this.built;
  }

  /** Frees the cache's GPU memory (the seat is leaving); requests still waiting fail. */
  destroy(): void {
    this.destroyed = true;
    for (const w of this.waiting.splice(0)) w.reject(new GenerationError(AbortReason.Refused, 'this stage left the run'));
    this.built?.destroy();
    this.built = undefined;
  }

  /** The cache entry of request `requestId`, taken now (from a request long idle if none is free); refused when every entry is busy. */
  acquire(requestId: number): number {
    const { entry, evicted } = this.entries.acquire(requestId, this.o.now());
    if (evicted !== undefined) this.fail(evicted);
    return entry;
  }

  release(requestId: number): void {
    this.entries.release(requestId);
  }

  get inFlight(): number {
    return this.entries.size;
  }

  /** Forward request `requestId`'s rows (at most maxRows, in the entry it holds) with the others waiting now; resolves with their output rows. */
  step(requestId: number, rows: DecodeRow[]): Promise<Float32Array> {
    const { maxRows } = this.o.limits;
    if (rows.length < 1 || rows.length > maxRows) return Promise.reject(new Error(`a request forwards 1 to ${maxRows} positions a step, not ${rows.length}`));
    try {
      checkDecodeRows(this.o.cfg, this.o.limits.entries, rows);
      for (const r of rows) this.entries.use(requestId, r.entry, this.o.now());
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ requestId, rows, resolve, reject });
      void this.pump();
    });
  }

  /** An evicted request's rows still waiting fail (its entry now holds another's keys). */
  private fail(requestId: number): void {
    const [gone, kept] = [this.waiting.filter((w) => w.requestId === requestId), this.waiting.filter((w) => w.requestId !== requestId)];
    this.waiting = kept;
    for (const w of gone) w.reject(new GenerationError(AbortReason.Refused, `request ${requestId} lost its KV cache entry to a newer request`));
  }

  /** The waiting requests, oldest first, whose rows fit in one step together. */
  private take(): Waiting[] {
    let room = this.o.limits.maxRows;
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
    await this.o.pace?.share.earned(this.o.pace.training);
    const batch = this.take();
    if (batch.length === 0) {
      this.running = false; // destroyed while it waited
      return;
    }
    try {
      const out = await this.timed(() => this.decoder.step(batch.flatMap((w) => w.rows)));
      this.stats.steps++;
      const { cfg } = this.o;
      const floats = cfg.hasHead ? cfg.vocab : boundaryWidth(cfg);
      let at = 0;
      for (const w of batch) {
        w.resolve(out.slice(at * floats, (at + w.rows.length) * floats));
        at += w.rows.length;
      }
      this.stats.rows += at;
    } catch (e) {
      // Every row was checked when its request sent it: what fails now (the device) fails them all.
      for (const w of batch) w.reject(e as Error);
    } finally {
      this.running = false;
      void this.pump();
    }
  }

  /** A step, charged to serving's share when paced: from when the work queued ahead of it (training's) is done. */
  private async timed(step: () => Promise<Float32Array>): Promise<Float32Array> {
    const { pace } = this.o;
    if (!pace) return step();
    await pace.drained();
    return pace.share.charged(pace.training, step);
  }
}

/** Rows a step of a block's decoder forwards at most: a whole window (a prefill), or a token of every request. */
export const decodeRows = (cfg: BlockConfig, requests = GEN_OPEN_REQUESTS): number => Math.max(requests, cfg.seq);
