// Serving a trained model: a buyer's spend, checked on chain by the desk, answered by generating
// through one path of the swarm (one peer per stage). Queries run one at a time in arrival order
// (a path holds one generation at once). A path that loses a peer, errs or times out is abandoned
// and the query retried on a path avoiding the peers that failed, so a spend is answered while any
// complete path is alive, and a query never waits out a dead peer's timeout: a lost peer ends the
// attempt at once (its path's peers abort their side too) and only that peer is avoided after.
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
  sendGenerate(path: string[], msg: { requestId: number; prompt: string; maxTokens: number; temperature: number; seed: number }): void;
  /** Longest one attempt may take. */
  attemptTimeoutMs: number;
  /** Paths tried per query before the buyer gets an error. */
  maxAttempts: number;
  log(line: string): void;
}

export interface Buyer {
  answer(msg: { spendId: string; text: string; answerHash: `0x${string}` }): void;
  fail(message: string): void;
}

/** A failed attempt names the peer to blame when it is known (one that is gone). */
type Outcome = { ok: true; text: string } | { ok: false; error: string; refused?: boolean; blame?: string };

interface Attempt {
  requestId: number;
  path: string[];
  settle(o: Outcome): void;
}

export class InferenceService {
  private queue: Promise<void> = Promise.resolve();
  private readonly queued = new Set<string>();
  private requestSeq = 0;
  private attempt?: Attempt;
  private stopped = false;
  /** Stage 0 of recent attempts, by request id: a late answer to an abandoned attempt is no offence. */
  private readonly past = new Map<number, string>();

  constructor(private readonly o: ServingOptions) {}

  /** Check a buyer's spend, then queue it. */
  async request(msg: ClientMessageOf<'infer'>, buyer: Buyer, serving: () => string | undefined): Promise<void> {
    const notNow = serving();
    if (notNow) return buyer.fail(notNow);
    if (this.queued.has(msg.spendId)) return buyer.fail(`spend ${msg.spendId} is already being served`);
    this.queued.add(msg.spendId);
    // The query takes its place in the queue now (checks may finish in any order); a bad spend is told at once.
    const checked = this.check(msg).then((why) => {
      if (why) {
        this.queued.delete(msg.spendId);
        buyer.fail(why);
      }
      return why;
    });
    this.queue = this.queue
      .then(async () => {
        if (!(await checked)) await this.serve(msg, buyer).finally(() => this.queued.delete(msg.spendId));
      })
      .catch((e: Error) => this.o.log(`BUG: serving spend ${msg.spendId} threw: ${e.message}`));
    await checked;
  }

  private async check(msg: ClientMessageOf<'infer'>): Promise<string | undefined> {
    try {
      return await this.o.desk.check(msg.spendId, msg.prompt);
    } catch (e) {
      return `could not check spend ${msg.spendId} on chain: ${(e as Error).message}`;
    }
  }

  /** Stage 0 of the attempt's path answered. */
  onGenerated(peerId: string, msg: ClientMessageOf<'generated'>): string | undefined {
    const a = this.attempt;
    if (!a || a.requestId !== msg.requestId || a.path[0] !== peerId) {
      if (this.past.get(msg.requestId) === peerId) return undefined;
      return `unexpected generated for request ${msg.requestId}: only stage 0 of the request's path answers, and only what was asked`;
    }
    if (msg.error !== undefined || msg.text === undefined) a.settle({ ok: false, error: msg.error ?? 'no text', refused: msg.refused });
    else a.settle({ ok: true, text: msg.text });
    return undefined;
  }

  /** A peer is gone: an attempt routed through it will never finish. */
  onPeerGone(peerId: string): void {
    const a = this.attempt;
    if (a?.path.includes(peerId)) a.settle({ ok: false, error: `peer ${peerId} on the path is gone`, blame: peerId });
  }

  stop(): void {
    this.stopped = true;
    this.attempt?.settle({ ok: false, error: 'the swarm stopped serving', refused: true });
  }

  private async serve(msg: ClientMessageOf<'infer'>, buyer: Buyer): Promise<void> {
    const t0 = Date.now();
    const failedPeers = new Set<string>();
    const errors: string[] = [];
    for (let i = 0; i < this.o.maxAttempts && !this.stopped; i++) {
      const path = this.o.path(failedPeers);
      if (!path) {
        errors.push(`no complete path${failedPeers.size ? ` avoiding ${[...failedPeers].join(', ')}` : ''} (${this.o.why()})`);
        break;
      }
      const r = await this.generate(msg, path);
      if (r.ok) return this.deliver(msg, r.text, buyer, t0, i + 1);
      errors.push(`path ${path.join('→')}: ${r.error}`);
      this.o.log(`spend ${msg.spendId}: attempt ${i + 1} on ${path.join('→')} failed: ${r.error}`);
      if (r.refused) break;
      // Avoid the peer to blame (one that is gone): the rest of its path may serve again. When
      // nobody is to blame (an error, a timeout), avoid the whole path.
      for (const p of r.blame ? [r.blame] : path) failedPeers.add(p);
    }
    if (errors.length === 0) errors.push('the swarm stopped serving');
    buyer.fail(`generation failed: ${errors.join('; ')}`.slice(0, 1024));
  }

  private generate(msg: ClientMessageOf<'infer'>, path: string[]): Promise<Outcome> {
    const requestId = ++this.requestSeq;
    return new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => settle({ ok: false, error: `no answer within ${this.o.attemptTimeoutMs} ms` }), this.o.attemptTimeoutMs);
      const settle = (o: Outcome) => {
        clearTimeout(timer);
        if (this.attempt?.requestId === requestId) this.attempt = undefined;
        resolve(o);
      };
      this.attempt = { requestId, path, settle };
      this.past.set(requestId, path[0]);
      if (this.past.size > 64) this.past.delete(this.past.keys().next().value!);
      const seed = Number(BigInt(msg.spendId) % 2_147_483_647n);
      this.o.sendGenerate(path, { requestId, prompt: msg.prompt, maxTokens: msg.maxTokens, temperature: this.o.desk.temperature, seed });
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
    this.o.log(`served spend ${msg.spendId}: ${text.length} chars in ${Date.now() - t0} ms (${attempts} attempt${attempts > 1 ? 's' : ''})`);
  }
}
