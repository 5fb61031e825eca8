// A stage's requests in flight sharing its KV cache: each request holds one cache entry from its
// prefill to its end, and the new positions of every request are forwarded together, one step of
// the decoder for all of them (continuous batching: a request joins at the next step after its
// prefill and leaves when it ends; nobody waits for a batch to fill).
import type { BlockRuntime } from '../engine/block-runtime.js';
import type { DecodeRow, KvDecoder } from '../engine/kv-decoder.js';
import { GEN_OPEN_REQUESTS } from '../trust/mailbox.js';
import { AbortReason, GenerationError } from './generate-frames.js';

interface Waiting {
  row: DecodeRow;
  resolve(out: Float32Array): void;
  reject(e: Error): void;
}

export class DecodeBatcher {
  private readonly free: number[];
  private readonly held = new Map<number, number>();
  private waiting: Waiting[] = [];
  private running = false;
  /** Steps run and rows forwarded (rows / steps is the batch the load made). */
  readonly stats = { steps: 0, rows: 0 };

  constructor(
    readonly decoder: KvDecoder,
    /** Floats per output row: the block's boundary width, or the vocabulary for the head. */
    private readonly rowFloats: number,
  ) {
    this.free = Array.from({ length: decoder.o.entries }, (_, i) => decoder.o.entries - 1 - i);
  }

  /**
   * A batcher over a new KV cache of `runtime`'s block, its prefills run on `slot`: room for as many
   * requests as a neighbour may have open at once (the mailbox holds no more), all in one step.
   */
  static of(runtime: BlockRuntime, slot: number, requests = GEN_OPEN_REQUESTS): DecodeBatcher {
    const decoder = runtime.kvDecoder({ entries: requests, maxRows: requests }, slot);
    return new DecodeBatcher(decoder, runtime.cfg.hasHead ? runtime.cfg.vocab : runtime.width);
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

  /** Forward one new position of a request with the others waiting now; resolves with its output row. */
  step(row: DecodeRow): Promise<Float32Array> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ row, resolve, reject });
      void this.pump();
    });
  }

  private async pump(): Promise<void> {
    if (this.running || this.waiting.length === 0) return;
    this.running = true;
    // Requests whose previous token arrives in this same turn join this step.
    await Promise.resolve();
    const batch = this.waiting.splice(0, this.decoder.o.maxRows);
    try {
      const out = await this.decoder.step(batch.map((w) => w.row));
      this.stats.steps++;
      this.stats.rows += batch.length;
      batch.forEach((w, i) => w.resolve(out.slice(i * this.rowFloats, (i + 1) * this.rowFloats)));
    } catch (e) {
      // One bad row must not fail the others: each is retried alone, so only its own request fails.
      if (batch.length === 1) batch[0].reject(e as Error);
      else await this.alone(batch);
    } finally {
      this.running = false;
      void this.pump();
    }
  }

  private async alone(batch: Waiting[]): Promise<void> {
    for (const w of batch) {
      try {
        const out = await this.decoder.step([w.row]);
        this.stats.steps++;
        this.stats.rows++;
        w.resolve(out);
      } catch (e) {
        w.reject(e as Error);
      }
    }
  }
}
