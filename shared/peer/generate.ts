// Text generation through the stages of a pipeline, forward only, so an inference buyer's prompt
// is served without any peer holding the whole model. Environment-agnostic like the rest of the
// pipeline: the runtime, the links (via the stage's inboxes) and the clock are handed in.
//
// Per request (id R, a u32 unique per stage, e.g. assigned by the coordinator):
//   stage 0   → GenerateStart(R, 0) [maxTokens, temperature, seed, context length], relayed on to
//               the last stage (which samples, so it needs the sampling parameters);
//   per generated token i = 0, 1, …:
//   stage 0   builds the context window (the ≤ seq most recent tokens, left-aligned in sequence 0,
//             the rest padding: causal attention keeps padding after the last real position from
//             affecting it), forwards it and sends GenerateActivation(R, i): the boundary rows of
//             the real positions only, with their token ids when boundaries are subspace
//             coefficients (x = U·c + F[tok] needs them; in training they come from the shared data
//             order, here they travel in the frame's u16 id field);
//   stage s   forwards the rows it received (padded back to [batch, seq]) and sends its own rows on;
//   last      forwards, reads back the one row of logits at the last real position, samples, and
//             sends GenerateToken(R, i) back along the `prev` links, each middle stage relaying it:
//             the coordinator is not in the loop per token.
// Generation frames are tagged (step = R, microbatch = i) and live in their own inboxes, so they
// never mix with training frames; a finished request's late frames are refused.
// A stage that fails sends GenerateToken(R, i) = −reason back instead, so stage 0 fails fast with
// the reason rather than timing out.
import type { BlockRuntime } from '../engine/block-runtime.js';
import type { Dtype } from '../wire/codec.js';
import { type Frame, FrameKind, encodeFrame } from '../wire/frame.js';
import type { Inbox } from '../trust/inbox.js';
import { rng } from '../base/random.js';

/** Most tokens one request may generate (each costs a full forward through every stage). */
export const MAX_NEW_TOKENS = 1024;
/** Highest sampling temperature accepted (beyond a few the output is noise anyway). */
export const MAX_TEMPERATURE = 100;

export interface Sampling {
  /** 0: greedy (argmax, ties → lowest id). > 0: sample softmax(logits / temperature). Sent as fp32. */
  temperature: number;
  /** u32 seed of the sampler (shared/base/random.ts `rng`): same model, prompt and seed → same tokens. */
  seed: number;
}

export interface GenerateOptions {
  /** Per frame awaited; defaults to the stage's timeout. */
  timeoutMs?: number;
  /** Aborts the request at the next frame it waits for (e.g. a peer on its path is gone). */
  signal?: AbortSignal;
  /** Sees each token as it is decided (streaming); the last stage also passes the logits it sampled from. */
  onToken?(index: number, token: number, logits?: Float32Array): void;
}

export interface ServeOptions extends GenerateOptions {
  /** Refuse a request for more tokens than this (e.g. what the coordinator authorised). */
  maxTokens?: number;
}

/** Why a stage aborted a request; travels back to stage 0 as the token value −reason. */
export const AbortReason = {
  /** The logits were NaN or infinite (the model has diverged). */
  NonFiniteLogits: 1,
  /** The request or one of its frames was invalid, or over this stage's limit. */
  Refused: 2,
  /** Anything else: a timeout, a GPU error. */
  Failed: 3,
} as const;
export type AbortReason = (typeof AbortReason)[keyof typeof AbortReason];

const REASON_TEXT: Record<AbortReason, string> = {
  1: 'the logits are not finite (the model has diverged)',
  2: 'it refused the request or one of its frames',
  3: 'it failed (timed out or errored)',
};

/** A request ended by an abort; `reason` says why (and is what gets relayed to stage 0). */
export class GenerationError extends Error {
  constructor(
    readonly reason: AbortReason,
    message: string,
    /** The abort came from a later stage (and has been relayed), not from this one. */
    readonly remote = false,
  ) {
    super(message);
    this.name = 'GenerationError';
  }
}

const isU32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** Index of the largest logit, the lowest id among ties. Throws on a non-finite logit. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let v = 0; v < logits.length; v++) {
    const l = logits[v];
    if (!Number.isFinite(l)) throw new GenerationError(AbortReason.NonFiniteLogits, `logits[${v}] is ${l}: logits must be finite (the model has diverged)`);
    if (l > logits[best]) best = v;
  }
  return best;
}

/**
 * The next token from one row of logits: argmax at temperature 0, else a draw from
 * softmax(logits / temperature) in float64 using one value of `rand`. Throws a GenerationError
 * (NonFiniteLogits) on a NaN or infinite logit.
 */
export function sampleToken(logits: ArrayLike<number>, temperature: number, rand: () => number): number {
  const best = argmax(logits);
  if (temperature === 0) return best;
  const max = logits[best];
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let v = 0; v < p.length; v++) sum += p[v] = Math.exp((logits[v] - max) / temperature);
  const u = rand() * sum;
  let acc = 0;
  for (let v = 0; v < p.length; v++) {
    acc += p[v];
    if (u < acc && p[v] > 0) return v;
  }
  return best; // u within rounding of the total
}

/**
 * The runtime's [batch, seq] token input for a context: its ≤ seq most recent tokens left-aligned
 * in sequence 0, every other position padding (id 0). `length` is the number of real positions;
 * the logits at position length − 1 predict the next token.
 */
export function contextWindow(context: ArrayLike<number>, batch: number, seq: number): { tokens: Uint32Array; length: number } {
  const length = Math.min(context.length, seq);
  const tokens = new Uint32Array(batch * seq);
  for (let t = 0; t < length; t++) tokens[t] = context[context.length - length + t];
  return { tokens, length };
}

/** What GenerateStart carries. */
interface RequestHeader {
  maxTokens: number;
  /** As sent: rounded to fp32. */
  temperature: number;
  seed: number;
  /** Real positions of the first context window, min(prompt length, seq). */
  contextLength: number;
}

/** Values a GenerateStart frame carries (fp32, one row). */
export const START_COLS = 5;

function startTensor(h: RequestHeader): Float32Array {
  // fp32 holds integers up to 2^24 exactly: the u32 seed travels as two 16-bit halves.
  return Float32Array.from([h.maxTokens, h.temperature, h.seed & 0xffff, h.seed >>> 16, h.contextLength]);
}

function checkMaxTokens(n: number, cap = MAX_NEW_TOKENS): void {
  if (!(Number.isInteger(n) && n >= 1 && n <= cap)) throw new GenerationError(AbortReason.Refused, `maxTokens must be an integer in [1, ${cap}], got ${n}`);
}

function checkSampling(s: Sampling): void {
  const t = s?.temperature;
  if (!(typeof t === 'number' && t >= 0 && t <= MAX_TEMPERATURE))
    throw new GenerationError(AbortReason.Refused, `temperature must be a number in [0, ${MAX_TEMPERATURE}] (0 = greedy), got ${t}`);
  if (!isU32(s.seed)) throw new GenerationError(AbortReason.Refused, `seed must be a u32 integer, got ${s.seed}`);
}

function parseStart(f: Frame, seq: number): RequestHeader {
  if (f.dtype !== 'fp32' || f.rows !== 1 || f.cols !== START_COLS)
    throw new GenerationError(AbortReason.Refused, `GenerateStart must be 1×${START_COLS} fp32, got ${f.rows}×${f.cols} ${f.dtype}`);
  const [maxTokens, temperature, lo, hi, contextLength] = f.tensor;
  checkMaxTokens(maxTokens);
  const half = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffff;
  if (!half(lo) || !half(hi)) throw new GenerationError(AbortReason.Refused, `GenerateStart seed halves ${lo}, ${hi} are not u16`);
  const seed = (hi * 0x10000 + lo) >>> 0;
  checkSampling({ temperature, seed });
  if (!(Number.isInteger(contextLength) && contextLength >= 1 && contextLength <= seq)) {
    throw new GenerationError(AbortReason.Refused, `GenerateStart context length ${contextLength} is outside [1, seq=${seq}]`);
  }
  return { maxTokens, temperature, seed, contextLength };
}

/** The token a GenerateToken frame carries; throws GenerationError (remote) if it is an abort. */
function parseToken(f: Frame, vocab: number, requestId: number, index: number): number {
  if (f.dtype !== 'fp32' || f.rows !== 1 || f.cols !== 1) throw new GenerationError(AbortReason.Failed, `GenerateToken must be 1×1 fp32, got ${f.rows}×${f.cols} ${f.dtype}`);
  const v = f.tensor[0];
  if (Number.isInteger(v) && v >= 0 && v < vocab) return v;
  const reason = -v as AbortReason;
  if (Object.hasOwn(REASON_TEXT, reason)) {
    throw new GenerationError(reason, `request ${requestId}: a later stage aborted at token ${index}: ${REASON_TEXT[reason]}`, true);
  }
  throw new GenerationError(AbortReason.Failed, `request ${requestId}: token ${index} came back as ${v}, not a token id in [0, ${vocab}) nor an abort`);
}

export interface GenerationPeerOptions {
  runtime: BlockRuntime;
  stage: number;
  stages: number;
  /** Boundary codec (the training one). */
  dtype: Dtype;
  /** Activation slot the forwards use. */
  slot: number;
  timeoutMs: number;
  now(): number;
}

/** A neighbour on a request's path: how to send to it, and the inbox of its generation frames. */
export interface Hop {
  send(bytes: Uint8Array): void;
  inbox: Inbox;
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

  /** Checks shared by both sides; then the request is active until `end`. */
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
    for (const h of hops) h?.inbox.close(requestId);
    this.stats.requests++;
  }

  /**
   * Stage 0: generate up to `maxTokens` tokens after `prompt` (its last `seq` tokens are the first
   * context) and return them (the prompt not included). Inputs are validated before anything is
   * sent; the later stages must be serving the same request id. `next` is the path's stage 1
   * (none when this one stage holds the whole model).
   */
  async generate(requestId: number, prompt: ArrayLike<number>, maxTokens: number, sampling: Sampling, next: Hop | undefined, opts: GenerateOptions = {}): Promise<Uint32Array> {
    const { runtime: rt, stage, slot } = this.o;
    const { vocab, seq, batch } = rt.cfg;
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
      const out = new Uint32Array(maxTokens);
      const context = Array.from(prompt).slice(-seq);
      const header = { maxTokens, temperature: Math.fround(sampling.temperature), seed: sampling.seed, contextLength: context.length };
      const rand = this.isLast ? rng(sampling.seed) : undefined;
      if (!this.isLast) this.send(next!, FrameKind.GenerateStart, requestId, 0, 1, 'fp32', startTensor(header));
      for (; index < maxTokens; index++) {
        const i = index;
        const { tokens, length } = contextWindow(context, batch, seq);
        let token: number;
        let logits: Float32Array | undefined;
        if (this.isLast) {
          // A one-stage pipeline: the whole model is here.
          logits = await this.gpu(() => rt.forwardLogits({ tokens }, slot, 0, length - 1));
          token = sampleToken(logits, header.temperature, rand!);
        } else {
          const x = await this.gpu(() => rt.forwardBoundary({ tokens }, slot, length));
          const ids = rt.cfg.subspace ? Uint16Array.from(tokens.subarray(0, length)) : undefined;
          this.send(next!, FrameKind.GenerateActivation, requestId, i, length, this.o.dtype, x, ids);
          token = parseToken(await next!.inbox.take(FrameKind.GenerateToken, requestId, i, timeout, opts.signal), vocab, requestId, i);
        }
        out[i] = token;
        this.stats.tokens++;
        opts.onToken?.(i, token, logits);
        context.push(token);
        if (context.length > seq) context.shift();
      }
      return out;
    } catch (e) {
      throw this.contextual(e, requestId, index);
    } finally {
      this.end(requestId, [next]);
    }
  }

  /**
   * Stages after 0: serve request `requestId` — forward its activations, and on the last stage
   * sample each token and send it back; a middle stage relays the tokens. Resolves with the
   * generated tokens (every stage sees them). On failure it sends an abort back towards stage 0
   * (unless the abort came from a later stage, which it relays) and rejects.
   */
  async serve(requestId: number, prev: Hop, next: Hop | undefined, opts: ServeOptions = {}): Promise<Uint32Array> {
    const { runtime: rt, stage, slot } = this.o;
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
      if (!this.isLast) this.send(next!, FrameKind.GenerateStart, requestId, 0, 1, 'fp32', startTensor(h));
      const rand = this.isLast ? rng(h.seed) : undefined;
      const width = rt.width;
      const out = new Uint32Array(h.maxTokens);
      for (; index < h.maxTokens; index++) {
        const i = index;
        const f = await prev.inbox.take(FrameKind.GenerateActivation, requestId, i, timeout, opts.signal);
        const length = Math.min(seq, h.contextLength + i);
        const input = this.activationInput(f, length, width);
        let token: number;
        let logits: Float32Array | undefined;
        if (this.isLast) {
          logits = await this.gpu(() => rt.forwardLogits(input, slot, 0, length - 1));
          token = sampleToken(logits, h.temperature, rand!);
          this.sendToken(prev, requestId, i, token);
        } else {
          const y = await this.gpu(() => rt.forwardBoundary(input, slot, length));
          this.send(next!, FrameKind.GenerateActivation, requestId, i, length, this.o.dtype, y, f.tokens);
          token = parseToken(await next!.inbox.take(FrameKind.GenerateToken, requestId, i, timeout, opts.signal), vocab, requestId, i);
          this.sendToken(prev, requestId, i, token);
        }
        out[i] = token;
        this.stats.tokens++;
        opts.onToken?.(i, token, logits);
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

  /** The runtime input for a received GenerateActivation: its rows padded back to [batch, seq]. */
  private activationInput(f: Frame, length: number, width: number): { tokens?: Uint32Array; x: Float32Array } {
    const { batch, seq, vocab, subspace } = this.o.runtime.cfg;
    const what = 'GenerateActivation';
    if (f.rows !== length || f.cols !== width) throw new GenerationError(AbortReason.Refused, `${what} is ${f.rows}×${f.cols}, expected ${length}×${width}`);
    if (!!f.tokens !== !!subspace)
      throw new GenerationError(AbortReason.Refused, `${what} ${subspace ? 'lacks the token ids subspace boundaries need' : 'carries token ids, dense boundaries take none'}`);
    const x = new Float32Array(batch * seq * width);
    x.set(f.tensor);
    if (!f.tokens) return { x };
    const tokens = new Uint32Array(batch * seq);
    for (let t = 0; t < length; t++) {
      const id = f.tokens[t];
      if (id >= vocab) throw new GenerationError(AbortReason.Refused, `${what} token id ${t} is ${id}, vocab is ${vocab}`);
      tokens[t] = id;
    }
    return { tokens, x };
  }
}
