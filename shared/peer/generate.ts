// Text generation through the stages of a pipeline, forward only, so an inference buyer's prompt
// is served without any peer holding the whole model. Environment-agnostic like the rest of the
// pipeline: the runtime, the links (via the stage's inboxes) and the clock are handed in.
//
// Per request (id R, a u32 unique per stage, e.g. assigned by the coordinator):
//   stage 0   → GenerateStart(R, 0) [maxTokens, temperature, seed, context length, cached], relayed
//               on to the last stage (which samples, so it needs the sampling parameters);
//   per generated token i = 0, 1, …:
//   stage 0   forwards either the request's whole window (token 0, every slide of the window, and
//             every token of a request that is not cached) or, cached, only its newest position,
//             and sends GenerateActivation(R, i): the boundary rows it forwarded (the window's, or
//             one), with their token ids when boundaries are subspace coefficients (x = U·c + F[tok]
//             needs them; in training they come from the shared data order);
//   stage s   forwards the rows it received the same way (a window prefills its KV cache entry)
//             and sends its own rows on;
//   last      reads back the logits of the newest position, samples, and sends GenerateToken(R, i)
//             back along the `prev` links, each middle stage relaying it: the coordinator is not in
//             the loop per token.
// Every stage knows from the header and i alone whether frame i is a window or one position
// (generate-frames.ts advanceWindow), and refuses a frame of the wrong shape. The new positions of
// all cached requests on a stage are forwarded in one batched step (decode-batcher.ts).
// Generation frames are tagged (step = R, microbatch = i) and live in their own inboxes, so they
// never mix with training frames; a finished request's late frames are refused. A stage that fails
// sends GenerateToken(R, i) = −reason back instead, so stage 0 fails fast with the reason.
import type { BlockRuntime } from '../engine/block-runtime.js';
import type { Inbox } from '../trust/inbox.js';
import type { Dtype } from '../wire/codec.js';
import { type Frame, FrameKind, encodeFrame } from '../wire/frame.js';
import type { DecodeBatcher } from './decode-batcher.js';
import {
  AbortReason,
  advanceWindow,
  checkMaxTokens,
  checkSampling,
  contextWindow,
  type GenerateOptions,
  GenerationError,
  isU32,
  parseStart,
  parseToken,
  type RequestHeader,
  type Sampling,
  type ServeOptions,
  sampleToken,
  samplerAt,
  startTensor,
  windowAfter,
} from './generate-frames.js';

export interface GenerationPeerOptions {
  runtime: BlockRuntime;
  stage: number;
  stages: number;
  /** Boundary codec (the training one). */
  dtype: Dtype;
  /** Activation slot the window forwards use. */
  slot: number;
  timeoutMs: number;
  now(): number;
  /** The stage's KV cache and its batched steps; without one, every token re-forwards the window. */
  batcher?: DecodeBatcher;
  /** Whether a training round is running: a window re-forwarded on the generation slot would overwrite its activations. */
  training?(): boolean;
}

/** A neighbour on a request's path: how to send to it, and the inbox of its generation frames. */
export interface Hop {
  send(bytes: Uint8Array): void;
  inbox: Inbox;
}

/** What one stage forwards for token i of a request: the window (its first `length` positions), or its newest position. */
interface Forward {
  window: boolean;
  length: number;
}

/** One stage's side of generation: stage 0 generates, the later stages serve; each request names its path's neighbours. */
export class GenerationPeer {
  /** Requests finished or failed, tokens decided, generation bytes sent (headers included), GPU time. */
  readonly stats = { requests: 0, tokens: 0, bytesSent: 0, busyMs: 0 };
  private readonly active = new Set<number>();

  constructor(private readonly o: GenerationPeerOptions) {}

  private get isLast(): boolean {
    return this.o.stage === this.o.stages - 1;
  }

  /** Batched decode steps run and rows they forwarded, when this stage keeps a KV cache. */
  get decodeStats(): { steps: number; rows: number } | undefined {
    return this.o.batcher?.stats;
  }

  /** Whether this stage keeps a KV cache (stage 0 asks for cached requests only if it does). */
  get caches(): boolean {
    return !!this.o.batcher;
  }

  private send(hop: Hop, kind: FrameKind, requestId: number, index: number, rows: number, dtype: Dtype, tensor: Float32Array, tokens?: Uint16Array): void {
    const bytes = encodeFrame({ kind, tag: requestId, microbatch: index, rows, cols: tensor.length / rows, dtype, tensor, tokens }, undefined, { entropy: true });
    hop.send(bytes);
    this.stats.bytesSent += bytes.length;
  }

  private sendToken(prev: Hop, requestId: number, index: number, value: number): void {
    this.send(prev, FrameKind.GenerateToken, requestId, index, 1, 'fp32', Float32Array.of(value));
  }

  private async gpu<T>(f: () => Promise<T>): Promise<T> {
    const t0 = this.o.now();
    try {
      return await f();
    } finally {
      this.stats.busyMs += this.o.now() - t0;
    }
  }

  /** Checks shared by both sides; then the request is active (holding a cache entry if cached) until `end`. */
  private begin(requestId: number, hops: (Hop | undefined)[]): void {
    if (!isU32(requestId)) throw new GenerationError(AbortReason.Refused, `request id must be a u32 integer, got ${requestId}`);
    const cfg = this.o.runtime.cfg;
    if (cfg.subspace && cfg.vocab > 65536) {
      throw new GenerationError(AbortReason.Refused, `subspace boundaries carry token ids as u16 on the wire: vocab ${cfg.vocab} > 65536 cannot generate`);
    }
    if (this.active.has(requestId)) throw new GenerationError(AbortReason.Refused, `request ${requestId} is already running on this stage`);
    if (hops.some((h) => h?.inbox.isClosed(requestId))) {
      throw new GenerationError(AbortReason.Refused, `request id ${requestId} was already used on this stage: request ids must be unique`);
    }
    this.active.add(requestId);
  }

  private end(requestId: number, hops: (Hop | undefined)[]): void {
    this.active.delete(requestId);
    this.o.batcher?.release(requestId);
    for (const h of hops) h?.inbox.close(requestId);
    this.stats.requests++;
  }

  /** The cache entry of a cached request (NoCache when the stage keeps none; refused when none is free). */
  private entry(requestId: number, cached: boolean): number | undefined {
    if (!cached) return undefined;
    if (!this.o.batcher) throw new GenerationError(AbortReason.NoCache, `request ${requestId} asks for a KV cache and this stage keeps none`);
    return this.o.batcher.acquire(requestId);
  }

  /**
   * This stage's forward for token i: the window (token 0, a slide, or every token of a request not
   * cached) or the newest position, `src` holding their rows (token ids, boundary rows). Cached, the
   * rows go through the stage's batched cache step (a window is the request's prefill); otherwise
   * the window is re-forwarded whole on the generation slot. Returns the boundary rows forwarded or,
   * on the last stage, the newest position's logits.
   */
  private async forward(requestId: number, f: Forward, entry: number | undefined, src: { tokens?: ArrayLike<number>; x?: Float32Array }): Promise<Float32Array> {
    const { runtime: rt, slot } = this.o;
    if (entry === undefined) {
      // Checked in the task that queues the forward and its read-back (nothing awaits before they
      // are submitted): a round cannot start in between, and one starting later queues behind it.
      if (this.o.training?.())
        throw new GenerationError(
          AbortReason.Refused,
          'this stage is training: it serves only requests using its KV cache (a re-forwarded window would overwrite training activations)',
        );
      const input = this.padded(f.length, src);
      return this.gpu(() => (this.isLast ? rt.forwardLogits(input, slot, 0, f.length - 1) : rt.forwardBoundary(input, slot, f.length)));
    }
    const n = f.window ? f.length : 1;
    const w = rt.width;
    const rows = Array.from({ length: n }, (_, i) => ({
      entry,
      pos: f.length - n + i,
      ...(src.tokens && { token: src.tokens[i] }),
      ...(src.x && { x: src.x.subarray(i * w, (i + 1) * w) }),
    }));
    const out = await this.gpu(() => this.o.batcher!.step(requestId, rows));
    return this.isLast ? out.slice((n - 1) * rt.cfg.vocab) : out;
  }

  /** A window's rows as the runtime's [batch, seq] input: sequence 0, padded. */
  private padded(length: number, src: { tokens?: ArrayLike<number>; x?: Float32Array }): { tokens?: Uint32Array; x?: Float32Array } {
    const { batch, seq } = this.o.runtime.cfg;
    const tokens = src.tokens && contextWindow(Array.from(src.tokens).slice(0, length), batch, seq).tokens;
    if (!src.x) return { tokens };
    const x = new Float32Array(batch * seq * this.o.runtime.width);
    x.set(src.x);
    return { tokens, x };
  }

  /**
   * Stage 0: generate up to `maxTokens` tokens after `prompt` (its last `seq` tokens are the first
   * window) and return them (the prompt not included). Cached when this stage keeps a KV cache
   * (every stage of the path must then keep one), unless `opts.recompute`. Inputs are validated
   * before anything is sent; the later stages must be serving the same request id. `next` is the
   * path's stage 1 (none when this one stage holds the whole model).
   */
  async generate(requestId: number, prompt: ArrayLike<number>, maxTokens: number, sampling: Sampling, next: Hop | undefined, opts: GenerateOptions = {}): Promise<Uint32Array> {
    const { runtime: rt, stage } = this.o;
    const { vocab, seq } = rt.cfg;
    if (stage !== 0) throw new Error(`generate runs on stage 0, this is stage ${stage}: later stages call serve`);
    if (!this.isLast && !next) throw new Error('generate needs the next stage of the path');
    if (!prompt || prompt.length === 0) throw new GenerationError(AbortReason.Refused, 'the prompt is empty: generation needs at least one token');
    for (let i = 0; i < prompt.length; i++) {
      const t = prompt[i];
      if (!(Number.isInteger(t) && t >= 0 && t < vocab)) throw new GenerationError(AbortReason.Refused, `prompt[${i}] = ${t} is not a token id in [0, ${vocab})`);
    }
    checkMaxTokens(maxTokens);
    checkSampling(sampling);
    this.begin(requestId, [next]);
    const timeout = opts.timeoutMs ?? this.o.timeoutMs;
    let index = 0;
    try {
      let window = Array.from(prompt).slice(-seq);
      const header: RequestHeader = {
        maxTokens,
        temperature: Math.fround(sampling.temperature),
        seed: sampling.seed,
        contextLength: window.length,
        cached: this.caches && !opts.recompute,
        decided: sampling.decided ?? 0,
      };
      const entry = this.entry(requestId, header.cached);
      const rand = this.isLast ? samplerAt(sampling) : undefined;
      if (!this.isLast) this.send(next!, FrameKind.GenerateStart, requestId, 0, 1, 'fp32', startTensor(header));
      const out = new Uint32Array(maxTokens);
      let f: Forward = { window: true, length: window.length };
      for (; index < maxTokens; index++) {
        const i = index;
        const y = await this.forward(requestId, f, entry, { tokens: f.window ? window : [window.at(-1)!] });
        let token: number;
        let logits: Float32Array | undefined;
        if (this.isLast) {
          logits = y;
          token = sampleToken(logits, header.temperature, rand!);
        } else {
          const ids = rt.cfg.subspace ? Uint16Array.from(f.window ? window : [window.at(-1)!]) : undefined;
          this.send(next!, FrameKind.GenerateActivation, requestId, i, f.window ? f.length : 1, this.o.dtype, y, ids);
          token = parseToken(await next!.inbox.take(FrameKind.GenerateToken, requestId, i, timeout, opts.signal), vocab, requestId, i);
        }
        out[i] = token;
        this.stats.tokens++;
        opts.onToken?.(i, token, logits);
        f = this.nextForward(f, header.cached);
        window = windowAfter(window, token, seq);
      }
      return out;
    } catch (e) {
      throw this.contextual(e, requestId, index);
    } finally {
      this.end(requestId, [next]);
    }
  }

  /** What comes after a forward: the window grown by one token (or slid), forwarded whole unless cached. */
  private nextForward(f: Forward, cached: boolean): Forward {
    const next = advanceWindow(f.length, this.o.runtime.cfg.seq);
    return { window: !cached || next.slid, length: next.length };
  }

  /**
   * Stages after 0: serve request `requestId` — forward its activations, and on the last stage
   * sample each token and send it back; a middle stage relays the tokens. Resolves with the
   * generated tokens (every stage sees them). On failure it sends an abort back towards stage 0
   * (unless the abort came from a later stage, which it relays) and rejects.
   */
  async serve(requestId: number, prev: Hop, next: Hop | undefined, opts: ServeOptions = {}): Promise<Uint32Array> {
    const { runtime: rt, stage } = this.o;
    const { vocab, seq } = rt.cfg;
    if (stage === 0) throw new Error('serve runs on the stages after 0; stage 0 calls generate');
    if (!this.isLast && !next) throw new Error(`stage ${stage} needs the next stage of the path`);
    if (opts.maxTokens !== undefined) checkMaxTokens(opts.maxTokens);
    this.begin(requestId, [prev, next]);
    const timeout = opts.timeoutMs ?? this.o.timeoutMs;
    let index = 0;
    try {
      const h = parseStart(await prev.inbox.take(FrameKind.GenerateStart, requestId, 0, timeout, opts.signal), seq);
      if (opts.maxTokens !== undefined && h.maxTokens > opts.maxTokens) {
        throw new GenerationError(AbortReason.Refused, `request ${requestId} asks for ${h.maxTokens} tokens, this stage serves at most ${opts.maxTokens}`);
      }
      const entry = this.entry(requestId, h.cached);
      if (!this.isLast) this.send(next!, FrameKind.GenerateStart, requestId, 0, 1, 'fp32', startTensor(h));
      const rand = this.isLast ? samplerAt(h) : undefined;
      const out = new Uint32Array(h.maxTokens);
      let f: Forward = { window: true, length: h.contextLength };
      for (; index < h.maxTokens; index++) {
        const i = index;
        const frame = await prev.inbox.take(FrameKind.GenerateActivation, requestId, i, timeout, opts.signal);
        this.checkActivation(frame, f);
        const y = await this.forward(requestId, f, entry, { tokens: frame.tokens, x: frame.tensor });
        let token: number;
        let logits: Float32Array | undefined;
        if (this.isLast) {
          logits = y;
          token = sampleToken(logits, h.temperature, rand!);
        } else {
          this.send(next!, FrameKind.GenerateActivation, requestId, i, f.window ? f.length : 1, this.o.dtype, y, frame.tokens);
          token = parseToken(await next!.inbox.take(FrameKind.GenerateToken, requestId, i, timeout, opts.signal), vocab, requestId, i);
        }
        this.sendToken(prev, requestId, i, token);
        out[i] = token;
        this.stats.tokens++;
        opts.onToken?.(i, token, logits);
        f = this.nextForward(f, h.cached);
      }
      return out;
    } catch (e) {
      const err = this.contextual(e, requestId, index);
      // Tell stage 0 (relaying a later stage's abort as it is). Best effort: the link may be gone.
      try {
        this.sendToken(prev, requestId, index, -err.reason);
      } catch {
        /* nothing more to do */
      }
      throw err;
    } finally {
      this.end(requestId, [prev, next]);
    }
  }

  /** An error with the request, token and stage it happened at (a relayed abort already says). */
  private contextual(e: unknown, requestId: number, index: number): GenerationError {
    if (e instanceof GenerationError && e.remote) return e;
    const reason = e instanceof GenerationError ? e.reason : AbortReason.Failed;
    return new GenerationError(reason, `request ${requestId} failed at token ${index} on stage ${this.o.stage}: ${(e as Error).message}`);
  }

  /** A received GenerateActivation checked against what frame i must be: the window's rows, or one. */
  private checkActivation(f: Frame, fw: Forward): void {
    const { subspace } = this.o.runtime.cfg;
    const rows = fw.window ? fw.length : 1;
    const what = 'GenerateActivation';
    if (f.rows !== rows || f.cols !== this.o.runtime.width)
      throw new GenerationError(AbortReason.Refused, `${what} is ${f.rows}×${f.cols}, expected ${rows}×${this.o.runtime.width}`);
    if (!!f.tokens !== !!subspace)
      throw new GenerationError(AbortReason.Refused, `${what} ${subspace ? 'lacks the token ids subspace boundaries need' : 'carries token ids, dense boundaries take none'}`);
    const vocab = this.o.runtime.cfg.vocab;
    f.tokens?.forEach((id, t) => {
      if (id >= vocab) throw new GenerationError(AbortReason.Refused, `${what} token id ${t} is ${id}, vocab is ${vocab}`);
    });
  }
}
