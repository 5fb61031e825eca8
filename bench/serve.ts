// `npm run bench:serve [-- --quick]`: buyers served by a local swarm of the default model (2 stages,
// one worker process each). While it trains: its tokens/s alone over a few steps, while 16 buyers
// are served at once, and alone again; each stage gives serving at most its
// share (shared/peer/serve-share.ts). Once trained, idle: first the reference path, one buyer at a
// time, every token re-forwarding the whole window through both stages; then the KV-cached path with
// 1, 4 and 16 buyers at once, their positions batched into one step per stage. Per run: time to the
// first token (p50, p99, from the moment the buyer sends its spend), tokens/s each buyer sees, and
// tokens/s of all of them together. Spends are checked by an in-memory desk (the chain's receipts
// are tested in the economy tests): this measures serving, not the chain.
// Writes bench/results/serve.json.
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { LocalSwarm } from '../cli/local-swarm.js';
import { SWARM_DEFAULTS, runConfig } from '../cli/swarm.js';
import type { InferenceDesk } from '../coordinator/serving.js';
import { DEFAULT_DATA } from '../node/corpus.js';
import { requestAnswer } from '../shared/buyer/inference-client.js';
import { SERVE_SHARE } from '../shared/peer/serve-share.js';
import type { WebSocketConstructor } from '../shared/swarm/coordinator-client.js';

const RESULTS = join(dirname(fileURLToPath(import.meta.url)), 'results');
const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } }, strict: true });
const PROMPT_TOKENS = 16;
const NEW_TOKENS = values.quick ? 40 : 120;
const CONCURRENCY = [1, 4, 16];
/** Steps trained before measuring (kernels warm, pipeline full), and steps per training measurement. */
const WARM_STEPS = values.quick ? 2 : 4;
const MEASURED_STEPS = values.quick ? 3 : 6;

interface ServeRun {
  concurrency: number;
  training: boolean;
  cached: boolean;
  prompt_tokens: number;
  new_tokens: number;
  ttft_ms_p50: number;
  ttft_ms_p99: number;
  tokens_per_s_per_request: number;
  tokens_per_s_total: number;
  recompute_tokens_per_s: number;
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

/** Prompts of PROMPT_TOKENS characters (the model's tokens) from the training text, a different one per buyer. */
function prompts(n: number): string[] {
  const text = readFileSync(DEFAULT_DATA, 'utf8');
  return Array.from({ length: n }, (_, i) => text.slice(1000 + i * 997, 1000 + i * 997 + PROMPT_TOKENS));
}

let spendSeq = 0;

/** `n` buyers at once; each one's time to its first token, its own tokens/s, and all of theirs together. */
async function buyers(url: string, n: number): Promise<Omit<ServeRun, 'training' | 'cached' | 'recompute_tokens_per_s'>> {
  const t0 = performance.now();
  const each = await Promise.all(
    prompts(n).map(async (prompt) => {
      const sent = performance.now();
      let first: number | undefined;
      const q = { spendId: BigInt(++spendSeq), prompt, maxTokens: NEW_TOKENS };
      const a = await requestAnswer(url, WebSocket as unknown as WebSocketConstructor, q, { timeoutMs: 30 * 60_000, onText: () => (first ??= performance.now()) });
      if (a.text.length !== NEW_TOKENS) throw new Error(`a buyer got ${a.text.length} characters, asked for ${NEW_TOKENS}`);
      const done = performance.now();
      return { ttft: (first ?? done) - sent, rate: NEW_TOKENS / ((done - sent) / 1000) };
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const ttft = each.map((e) => e.ttft);
  return {
    concurrency: n,
    prompt_tokens: PROMPT_TOKENS,
    new_tokens: NEW_TOKENS,
    ttft_ms_p50: Math.round(quantile(ttft, 0.5)),
    ttft_ms_p99: Math.round(quantile(ttft, 0.99)),
    tokens_per_s_per_request: Number(
      quantile(
        each.map((e) => e.rate),
        0.5,
      ).toFixed(2),
    ),
    tokens_per_s_total: Number(((n * NEW_TOKENS) / wall).toFixed(2)),
  };
}

/** Commits of the run as they happen, to time training over a number of steps. */
class CommitClock {
  readonly at: number[] = [];

  constructor(private readonly c: LocalSwarm['coordinator']) {
    c.on('commit', () => this.at.push(performance.now()));
  }

  /** Resolves when `n` more steps have committed; their tokens/s (tokensPerStep each). */
  async over(n: number, tokensPerStep: number): Promise<number> {
    const from = this.at.length;
    await this.until(from + 1 + n);
    return this.rate(from, from + n, tokensPerStep);
  }

  /** Runs `task` while training; the tokens/s of the steps committed meanwhile. */
  async during(task: () => Promise<void>, tokensPerStep: number): Promise<number> {
    const from = this.at.length;
    await task();
    const to = this.at.length - 1;
    if (to - from < 2) throw new Error(`only ${to - from + 1} steps committed while serving: too few to time training`);
    if (this.c.phase !== 'training') throw new Error('training ended while serving: give the run more steps');
    return this.rate(from, to, tokensPerStep);
  }

  private rate(from: number, to: number, tokensPerStep: number): number {
    return Number((((to - from) * tokensPerStep) / ((this.at[to] - this.at[from]) / 1000)).toFixed(1));
  }

  private async until(commits: number): Promise<void> {
    while (this.at.length < commits) {
      if (this.c.phase !== 'training') throw new Error(`training ended after ${this.at.length} steps, before the ${commits} a measurement needs: give the run more steps`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function main(): Promise<void> {
  const out = mkdtempSync(join(tmpdir(), 'bench-serve-'));
  // Serving 16 buyers while training takes minutes on a CPU adapter (each decode step waits behind
  // a training microbatch in the GPU's one queue): steps to spare for it.
  const steps = WARM_STEPS + 2 * (MEASURED_STEPS + 1) + (values.quick ? 40 : 80);
  const run = { ...(await runConfig({ ...SWARM_DEFAULTS, workers: 2, minPerStage: 1, steps, evalEvery: 0, evalBatches: 0, quiet: true, out })), serve: true };
  const tokensPerStep = run.microbatches * run.model.batch * run.model.seq;
  const desk: InferenceDesk = { temperature: 0, check: async () => undefined, served: async () => {} };
  const swarm = new LocalSwarm({ run, data: DEFAULT_DATA, out, quickStart: true, coordinator: { inference: desk, generateTimeoutMs: 30 * 60_000 } });
  try {
    const url = await swarm.listen();
    const clock = new CommitClock(swarm.coordinator);
    swarm.spawn(0);
    swarm.spawn(1);
    console.log(`training ${run.steps} steps of the default model (${run.model.nLayer} layers, d ${run.model.dModel}, seq ${run.model.seq}) on 2 stages, serving while it trains…`);
    while (clock.at.length < WARM_STEPS) await new Promise((r) => setTimeout(r, 200));
    // Alone before and after serving (a training's speed drifts: the mean of both is the reference).
    const before = await clock.over(MEASURED_STEPS, tokensPerStep);
    let served: ServeRun | undefined;
    const whileServing = await clock.during(async () => {
      served = { ...(await buyers(url, 16)), training: true, cached: true, recompute_tokens_per_s: 0 };
    }, tokensPerStep);
    const after = await clock.over(MEASURED_STEPS, tokensPerStep);
    const alone = Number(((before + after) / 2).toFixed(1));
    console.log(`training alone: ${before} tok/s before serving, ${after} after, over ${MEASURED_STEPS} steps each`);
    console.log(
      `training while serving 16 buyers: ${whileServing} tok/s (${((100 * whileServing) / alone).toFixed(0)} % of alone); buyers got ${served!.tokens_per_s_total} tok/s together, first token p50 ${served!.ttft_ms_p50} ms`,
    );
    await swarm.coordinator.trained;
    swarm.coordinator.serveRecompute(true);
    const reference = await buyers(url, 1);
    console.log(`recompute, 1 buyer: ${reference.tokens_per_s_per_request} tok/s, first token after ${reference.ttft_ms_p50} ms`);
    swarm.coordinator.serveRecompute(false);
    const runs: ServeRun[] = [{ ...reference, training: false, cached: false, recompute_tokens_per_s: reference.tokens_per_s_per_request }];
    for (const n of CONCURRENCY) {
      const r = await buyers(url, n);
      console.log(
        `cached, ${n} buyer(s): ${r.tokens_per_s_per_request} tok/s each, ${r.tokens_per_s_total} tok/s together, first token p50 ${r.ttft_ms_p50} ms, p99 ${r.ttft_ms_p99} ms`,
      );
      runs.push({ ...r, training: false, cached: true, recompute_tokens_per_s: reference.tokens_per_s_per_request });
    }
    report([...runs, { ...served!, recompute_tokens_per_s: reference.tokens_per_s_per_request }], { alone, before, after, whileServing });
  } finally {
    await swarm.close();
  }
}

function report(runs: ServeRun[], training: { alone: number; before: number; after: number; whileServing: number }): void {
  const at = (n: number) => runs.find((r) => r.cached && !r.training && r.concurrency === n)!;
  const reference = runs.find((r) => !r.cached)!;
  const result = {
    runs,
    training_tokens_per_s_alone: training.alone,
    training_tokens_per_s_alone_before_and_after: [training.before, training.after],
    training_tokens_per_s_while_serving: training.whileServing,
    serving_while_training: `16 buyers at once, training timed over the steps committed while they were served; each stage gives decode steps at most ${SERVE_SHARE.share * 100} % of its time while a round runs (burst ${SERVE_SHARE.burstMs} ms)`,
    targets: {
      cached_per_request_vs_recompute: Number((at(1).tokens_per_s_per_request / reference.tokens_per_s_per_request).toFixed(2)),
      cached_per_request_at_least_10x: at(1).tokens_per_s_per_request >= 10 * reference.tokens_per_s_per_request,
      total_at_16_vs_1: Number((at(16).tokens_per_s_total / at(1).tokens_per_s_total).toFixed(2)),
      total_at_16_at_least_4x: at(16).tokens_per_s_total >= 4 * at(1).tokens_per_s_total,
      ttft_p50_under_1s_idle: at(1).ttft_ms_p50 < 1000,
      training_kept_while_serving: Number((training.whileServing / training.alone).toFixed(3)),
      training_kept_at_least_70pct: training.whileServing >= 0.7 * training.alone,
    },
  };
  console.log(JSON.stringify(result.targets, null, 2));
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'serve.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log('wrote bench/results/serve.json');
}

main().catch((e: Error) => {
  console.error(`bench:serve failed: ${e.message}`);
  process.exit(1);
});
