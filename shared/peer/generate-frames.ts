// What generation frames carry and how they are checked, and the sampling every last stage does:
// the request header a GenerateStart frame holds, the token (or abort) a GenerateToken frame holds,
// the errors that travel back as aborts, and argmax / temperature sampling.
import { rng } from '../base/random.js';
import type { Frame } from '../wire/frame.js';

/** Most tokens one request may generate (each costs a full forward through every stage). */
export const MAX_NEW_TOKENS = 1024;
/** Highest sampling temperature accepted (beyond a few the output is noise anyway). */
export const MAX_TEMPERATURE = 100;

export interface Sampling {
  /** 0: greedy (argmax, ties → lowest id). > 0: sample softmax(logits / temperature). Sent as fp32. */
  temperature: number;
  /** u32 seed of the sampler (shared/base/random.ts `rng`): same model, prompt and seed → same tokens. */
  seed: number;
  /**
   * Tokens of this answer an earlier attempt already decided (a path that lost a peer): this request
   * continues after them, and its sampler skips their draws, so the answer is the one the first
   * path would have given.
   */
  decided?: number;
}

/** The sampler for an answer's token `decided` onwards: `rng(seed)` past the draws of the tokens before it (one each when temperature > 0). */
export function samplerAt(s: Sampling): () => number {
  const rand = rng(s.seed);
  if (s.temperature > 0) for (let i = 0; i < (s.decided ?? 0); i++) rand();
  return rand;
}

/**
 * The window a resumed answer continues from: the context `prompt` and the `decided` tokens after it
 * would have had (its first window, grown and slid by advanceWindow once per token), so every stage
 * sees the positions the first path saw.
 */
export function resumedWindow(prompt: ArrayLike<number>, decided: ArrayLike<number>, seq: number): number[] {
  let length = Math.min(prompt.length, seq);
  for (let i = 0; i < decided.length; i++) length = advanceWindow(length, seq).length;
  return [...Array.from(prompt), ...Array.from(decided)].slice(-length);
}

export interface GenerateOptions {
  /** Per frame awaited; defaults to the stage's timeout. */
  timeoutMs?: number;
  /** Aborts the request at the next frame it waits for (e.g. a peer on its path is gone). */
  signal?: AbortSignal;
  /** Sees each token as it is decided (streaming); the last stage also passes the logits it sampled from. */
  onToken?(index: number, token: number, logits?: Float32Array): void;
  /** Stage 0: re-forward the whole window for every token even where every stage keeps a KV cache (the reference path a benchmark compares with). */
  recompute?: boolean;
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
  /** The request asked for a KV cache and a stage of its path keeps none: the same path serves it re-forwarding windows. */
  NoCache: 4,
} as const;
export type AbortReason = (typeof AbortReason)[keyof typeof AbortReason];

const REASON_TEXT: Record<AbortReason, string> = {
  1: 'the logits are not finite (the model has diverged)',
  2: 'it refused the request or one of its frames',
  3: 'it failed (timed out or errored)',
  4: 'it keeps no KV cache (the request must re-forward its window)',
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

export const isU32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

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

/** Tokens a request's window keeps when it slides: the newest half of the model's context. */
export const slideKeep = (seq: number): number => Math.max(1, Math.floor(seq / 2));

/**
 * A request's window length after one more token: one longer while it fits in seq, else (a slide)
 * its newest slideKeep(seq) tokens, which every stage then forwards anew. Positions are learned
 * only up to seq, so a KV cache cannot slide one position at a time (every cached key would move);
 * sliding by half re-forwards the window once every seq/2 tokens instead of every token. The cached
 * and the recomputing paths both follow it, so they decode the same tokens.
 */
export function advanceWindow(length: number, seq: number): { length: number; slid: boolean } {
  return length + 1 > seq ? { length: slideKeep(seq), slid: true } : { length: length + 1, slid: false };
}

/** A request's window (its tokens) after one more token, by advanceWindow. */
export const windowAfter = (window: readonly number[], token: number, seq: number): number[] => [...window, token].slice(-advanceWindow(window.length, seq).length);

/** What GenerateStart carries. */
export interface RequestHeader {
  maxTokens: number;
  /** As sent: rounded to fp32. */
  temperature: number;
  seed: number;
  /** Real positions of the first context window, min(prompt length, seq). */
  contextLength: number;
  /** Every stage keeps the request's keys and values (KV cache) and forwards one new position per token; else each token re-forwards the window. */
  cached: boolean;
  /** Tokens an earlier attempt decided (Sampling.decided): the last stage's sampler starts past them. */
  decided: number;
}

/** Values a GenerateStart frame carries (fp32, one row). */
export const START_COLS = 7;

export function startTensor(h: RequestHeader): Float32Array {
  // fp32 holds integers up to 2^24 exactly: the u32 seed travels as two 16-bit halves.
  return Float32Array.from([h.maxTokens, h.temperature, h.seed & 0xffff, h.seed >>> 16, h.contextLength, h.cached ? 1 : 0, h.decided]);
}

export function checkMaxTokens(n: number, cap = MAX_NEW_TOKENS): void {
  if (!(Number.isInteger(n) && n >= 1 && n <= cap)) throw new GenerationError(AbortReason.Refused, `maxTokens must be an integer in [1, ${cap}], got ${n}`);
}

export function checkSampling(s: Sampling): void {
  const t = s?.temperature;
  if (!(typeof t === 'number' && t >= 0 && t <= MAX_TEMPERATURE))
    throw new GenerationError(AbortReason.Refused, `temperature must be a number in [0, ${MAX_TEMPERATURE}] (0 = greedy), got ${t}`);
  if (!isU32(s.seed)) throw new GenerationError(AbortReason.Refused, `seed must be a u32 integer, got ${s.seed}`);
  const d = s.decided ?? 0;
  if (!(Number.isInteger(d) && d >= 0 && d <= MAX_NEW_TOKENS)) throw new GenerationError(AbortReason.Refused, `decided must be an integer in [0, ${MAX_NEW_TOKENS}], got ${d}`);
}

export function parseStart(f: Frame, seq: number): RequestHeader {
  if (f.dtype !== 'fp32' || f.rows !== 1 || f.cols !== START_COLS)
    throw new GenerationError(AbortReason.Refused, `GenerateStart must be 1×${START_COLS} fp32, got ${f.rows}×${f.cols} ${f.dtype}`);
  const [maxTokens, temperature, lo, hi, contextLength, cached, decided] = f.tensor;
  checkMaxTokens(maxTokens);
  const half = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffff;
  if (!half(lo) || !half(hi)) throw new GenerationError(AbortReason.Refused, `GenerateStart seed halves ${lo}, ${hi} are not u16`);
  const seed = (hi * 0x10000 + lo) >>> 0;
  checkSampling({ temperature, seed, decided });
  if (!(Number.isInteger(contextLength) && contextLength >= 1 && contextLength <= seq)) {
    throw new GenerationError(AbortReason.Refused, `GenerateStart context length ${contextLength} is outside [1, seq=${seq}]`);
  }
  if (cached !== 0 && cached !== 1) throw new GenerationError(AbortReason.Refused, `GenerateStart cached flag ${cached} is not 0 or 1`);
  return { maxTokens, temperature, seed, contextLength, cached: cached === 1, decided };
}

/** The token a GenerateToken frame carries; throws GenerationError (remote) if it is an abort. */
export function parseToken(f: Frame, vocab: number, requestId: number, index: number): number {
  if (f.dtype !== 'fp32' || f.rows !== 1 || f.cols !== 1) throw new GenerationError(AbortReason.Failed, `GenerateToken must be 1×1 fp32, got ${f.rows}×${f.cols} ${f.dtype}`);
  const v = f.tensor[0];
  if (Number.isInteger(v) && v >= 0 && v < vocab) return v;
  const reason = -v as AbortReason;
  if (Object.hasOwn(REASON_TEXT, reason)) {
    throw new GenerationError(reason, `request ${requestId}: a later stage aborted at token ${index}: ${REASON_TEXT[reason]}`, true);
  }
  throw new GenerationError(AbortReason.Failed, `request ${requestId}: token ${index} came back as ${v}, not a token id in [0, ${vocab}) nor an abort`);
}
