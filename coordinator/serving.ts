// Serving a trained model: a buyer's spend, checked on chain by the desk, answered by generating
// through one path of the swarm (one peer per stage). Up to `maxConcurrent` spends are served at
// once (the stages batch their tokens: decode-batcher.ts); beyond that a buyer is told the swarm is
// busy and when to retry. Stage 0's text reaches the buyer as it is generated. A path that loses a
// peer, errs or times out is abandoned and the query retried on a path avoiding the peers that
// failed, continuing after the tokens already streamed (the new path rebuilds its caches from the
// prompt and them, and its sampler resumes where the first stopped: the buyer gets the answer the
// first path would have given). So a spend is answered while any complete path is alive, and a query never waits out a
// dead peer's timeout: a lost peer ends the attempt at once (its path's peers abort their side too)
// and only that peer is avoided after. A path holding a stage with no KV cache (no memory left for
// one) is asked once more with every token re-forwarding its window.
import { keccak256, toHex } from 'viem';
import type { ClientMessageOf } from '../shared/swarm/protocol.js';

/** The chain side of serving a query; the coordinator only routes it through the swarm. */
export interface InferenceDesk {
  /** Why this spend cannot be served with this prompt (unknown, wrong prompt, already served), or undefined. */
  check(spendId: string, prompt: string): Promise<string | undefined>;
  /** Record the answer's hash as the spend's receipt. */
  served(spendId: string, answerHash: `0x${string}`): Promise<void>;
  /** Sampling temperature for answers (0 = greedy). */
  temperature: number;
}

export interface ServingOptions {
  desk: InferenceDesk;
  /** A path through the live stages avoiding `exclude`, or undefined when none is complete. */
  path(exclude: ReadonlySet<string>): string[] | undefined;
  /** Why no path exists now, for the buyer. */
  why(): string;
  sendGenerate(path: string[], msg: { requestId: number; prompt: string; maxTokens: number; temperature: number; seed: number; recompute?: boolean; resume?: string }): void;
  /** Longest one attempt may take. */
  attemptTimeoutMs: number;
  /** Paths tried per query before the buyer gets an error. */
  maxAttempts: number;
  /** Spends served at once; a buyer beyond them is told the swarm is busy. */
  maxConcurrent: number;
  log(line: string): void;
}

export interface Buyer {
  /** The text of tokens `from`… as stage 0 generated it (a retry may send the same part again). */
  part(msg: { spendId: string; from: number; text: string }): void;
  answer(msg: { spendId: string; text: string; answerHash: `0x${string}` }): void;
  fail(message: string): void;
}

/** A failed attempt names the peer to blame when it is known (one that is gone). */
type Outcome = { ok: true; text: string } | { ok: false; error: string; refused?: boolean; uncached?: boolean; blame?: string };

interface Attempt {
  requestId: number;
  path: string[];
  settle(o: Outcome): void;
  part(from: number, text: string): void;
}

/** Answers remembered for the "retry in" estimate, and its guess before there is any. */
const RECENT_ANSWERS = 16;
const FIRST_GUESS_MS = 30_000;

export class InferenceService {
  private readonly inFlight = new Set<string>();
  private requestSeq = 0;
  private readonly attempts = new Map<number, Attempt>();
  private stopped = false;
  /** Stage 0 of recent attempts, by request id: a late answer to an abandoned attempt is no offence. */
  private readonly past = new Map<number, string>();
  private readonly recentMs: number[] = [];
  /** Have every token re-forward the whole window instead of the stages' KV caches (the reference path bench:serve compares with). */
  recompute = false;

  constructor(private readonly o: ServingOptions) {}

  /** Check a buyer's spend, then serve it (resolves once it is checked; the answer comes later). */
  async request(msg: ClientMessageOf<'infer'>, buyer: Buyer, serving: () => string | undefined): Promise<void> {
    const notNow = serving();
    if (notNow) return buyer.fail(notNow);
    if (this.inFlight.has(msg.spendId)) return buyer.fail(`spend ${msg.spendId} is already being served`);
    if (this.inFlight.size >= this.o.maxConcurrent) return buyer.fail(this.busy());
    this.inFlight.add(msg.spendId);
    const why = await this.check(msg);
    if (why) {
      this.inFlight.delete(msg.spendId);
      return buyer.fail(why);
    }
    void this.serve(msg, buyer)
      .catch((e: Error) => this.o.log(`BUG: serving spend ${msg.spendId} threw: ${e.message}`))
      .finally(() => this.inFlight.delete(msg.spendId));
  }

  /** Spends in flight now. */
  get serving(): number {
    return this.inFlight.size;
  }

  private busy(): string {
    const sorted = [...this.recentMs].sort((a, b) => a - b);
    const typical = sorted.length ? sorted[Math.floor(sorted.length / 2)] : FIRST_GUESS_MS;
    return `busy: the swarm is answering ${this.inFlight.size} spends, the most it serves at once; retry in about ${Math.ceil(typical / 1000)} s`;
  }

  private async check(msg: ClientMessageOf<'infer'>): Promise<string | undefined> {
    try {
      return await this.o.desk.check(msg.spendId, msg.prompt);
    } catch (e) {
      return `could not check spend ${msg.spendId} on chain: ${(e as Error).message}`;
    }
  }

  /** The attempt `requestId` if `peerId` is its stage 0; a late message of an abandoned attempt is ignored; anything else is an offence (its sentence). */
  private attemptOf(peerId: string, requestId: number, what: string): Attempt | string | undefined {
    const a = this.attempts.get(requestId);
    if (a && a.path[0] === peerId) return a;
    if (this.past.get(requestId) === peerId) return undefined;
    return `unexpected ${what} for request ${requestId}: only stage 0 of the request's path answers, and only what was asked`;
  }

  /** Stage 0 of the attempt's path answered. */
  onGenerated(peerId: string, msg: ClientMessageOf<'generated'>): string | undefined {
    const a = this.attemptOf(peerId, msg.requestId, 'generated');
    if (typeof a !== 'object') return a;
    if (msg.error !== undefined || msg.text === undefined) a.settle({ ok: false, error: msg.error ?? 'no text', refused: msg.refused, uncached: msg.uncached });
    else a.settle({ ok: true, text: msg.text });
    return undefined;
  }

  /** Stage 0 of the attempt's path sent text as it generates it: on to the buyer. */
  onGenerating(peerId: string, msg: ClientMessageOf<'generating'>): string | undefined {
    const a = this.attemptOf(peerId, msg.requestId, 'generating');
    if (typeof a !== 'object') return a;
    a.part(msg.from, msg.text);
    return undefined;
  }

  /** A peer is gone: the attempts routed through it will never finish. */
  onPeerGone(peerId: string): void {
    for (const a of [...this.attempts.values()]) if (a.path.includes(peerId)) a.settle({ ok: false, error: `peer ${peerId} on the path is gone`, blame: peerId });
  }

  stop(): void {
    this.stopped = true;
    for (const a of [...this.attempts.values()]) a.settle({ ok: false, error: 'the swarm stopped serving', refused: true });
  }

  private async serve(msg: ClientMessageOf<'infer'>, buyer: Buyer): Promise<void> {
    const t0 = Date.now();
    const failedPeers = new Set<string>();
    const errors: string[] = [];
    const sofar = new AnswerSoFar(msg.maxTokens, (from, text) => buyer.part({ spendId: msg.spendId, from, text }));
    // A path found to hold a stage that keeps no KV cache: asked again at once, re-forwarding windows.
    let again: string[] | undefined;
    for (let i = 0; i < this.o.maxAttempts && !this.stopped; i++) {
      const path = again ?? this.o.path(failedPeers);
      const recompute = this.recompute || again !== undefined;
      again = undefined;
      if (!path) {
        errors.push(`no complete path${failedPeers.size ? ` avoiding ${[...failedPeers].join(', ')}` : ''} (${this.o.why()})`);
        break;
      }
      const resume = sofar.text;
      const r =
        sofar.length < msg.maxTokens
          ? await this.generate(msg, path, { resume, recompute }, sofar.length, (from, text) => sofar.add(from, text))
          : ({ ok: true, text: '' } as const);
      if (r.ok) return this.deliver(msg, resume + r.text, buyer, t0, i + 1);
      errors.push(`path ${path.join('→')}: ${r.error}`);
      this.o.log(`spend ${msg.spendId}: attempt ${i + 1} on ${path.join('→')} failed after ${sofar.length} tokens: ${r.error}`);
      // The text so far came from a peer: one that lied (a character the model has no token for)
      // would have every path refuse to resume it. Start again from the prompt instead.
      if (r.refused && resume) {
        sofar.clear();
        continue;
      }
      if (r.refused) break;
      if (r.uncached && !recompute) {
        again = path;
        continue;
      }
      // Avoid the peer to blame (one that is gone): the rest of its path may serve again. When
      // nobody is to blame (an error, a timeout), avoid the whole path.
      for (const p of r.blame ? [r.blame] : path) failedPeers.add(p);
    }
    if (errors.length === 0) errors.push('the swarm stopped serving');
    buyer.fail(`generation failed: ${errors.join('; ')}`.slice(0, 1024));
  }

  /** One attempt on `path`: the tokens after the `decided` ones of `resume` (the text earlier paths decided), every token re-forwarding its window when `recompute`. */
  private generate(msg: ClientMessageOf<'infer'>, path: string[], o: { resume: string; recompute: boolean }, decided: number, part: Attempt['part']): Promise<Outcome> {
    const { resume, recompute } = o;
    const requestId = ++this.requestSeq;
    return new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => settle({ ok: false, error: `no answer within ${this.o.attemptTimeoutMs} ms` }), this.o.attemptTimeoutMs);
      const settle = (o: Outcome) => {
        clearTimeout(timer);
        this.attempts.delete(requestId);
        resolve(o);
      };
      this.attempts.set(requestId, { requestId, path, settle, part });
      this.past.set(requestId, path[0]);
      if (this.past.size > 256) this.past.delete(this.past.keys().next().value!);
      const seed = Number(BigInt(msg.spendId) % 2_147_483_647n);
      this.o.sendGenerate(path, {
        requestId,
        prompt: msg.prompt,
        maxTokens: msg.maxTokens - decided,
        temperature: this.o.desk.temperature,
        seed,
        ...(recompute && { recompute: true }),
        ...(resume && { resume }),
      });
    });
  }

  private async deliver(msg: ClientMessageOf<'infer'>, text: string, buyer: Buyer, t0: number, attempts: number): Promise<void> {
    const answerHash = keccak256(toHex(text));
    try {
      await this.o.desk.served(msg.spendId, answerHash);
    } catch (e) {
      return buyer.fail(`the answer could not be receipted on chain: ${(e as Error).message}`);
    }
    buyer.answer({ spendId: msg.spendId, text, answerHash });
    this.recentMs.push(Date.now() - t0);
    if (this.recentMs.length > RECENT_ANSWERS) this.recentMs.shift();
    this.o.log(`served spend ${msg.spendId}: ${text.length} chars in ${Date.now() - t0} ms (${attempts} attempt${attempts > 1 ? 's' : ''})`);
  }
}

/**
 * The answer's tokens streamed so far, across attempts (a token is one character: the model's
 * tokens are the characters of its text): what a retry resumes from, and what reaches the buyer,
 * each token once and in order.
 */
class AnswerSoFar {
  private readonly chars: string[] = [];

  constructor(
    /** The tokens asked for: a stage 0 streaming more is not believed beyond them. */
    private readonly most: number,
    private readonly toBuyer: (from: number, text: string) => void,
  ) {}

  /** Forget the text so far (a retry starts from the prompt; its parts replace what the buyer was shown). */
  clear(): void {
    this.chars.length = 0;
  }

  get length(): number {
    return this.chars.length;
  }

  get text(): string {
    return this.chars.join('');
  }

  /** Stage 0's text of tokens `from`…: the part not yet known is kept and passed on; a gap (tokens never sent) is not usable, and is dropped. */
  add(from: number, text: string): void {
    if (from > this.chars.length) return;
    const fresh = Array.from(text)
      .slice(this.chars.length - from)
      .slice(0, this.most - this.chars.length);
    if (fresh.length === 0) return;
    this.toBuyer(this.chars.length, fresh.join(''));
    this.chars.push(...fresh);
  }
}
