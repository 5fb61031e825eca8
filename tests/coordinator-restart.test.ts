// A coordinator killed with SIGKILL mid-run, with real processes: a local EVM (Hardhat's node), the
// coordinator (`npm run coordinator`, settling on chain) and two worker processes training over
// WebRTC. It is killed after its first epoch was posted and started again with the same flags.
// The run must resume from its store: the workers reconnect on their own with the states they kept,
// every step is credited exactly once (ownership on chain equals units computed here from the model
// spec, independently), and no epoch's root is posted twice.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parseEther } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlSnapshot } from '../coordinator/run-control.js';
import { loadEpochTree } from '../shared/ledger/merkle.js';
import { type ChainFixture, chainFixture } from './chain-fixture.js';
import { specUnitsPerStage } from './spec-units.js';
import { TINY_MODEL } from './tiny-swarm.js';
import type { RunConfig } from '../shared/run/config.js';

const STEPS = 16;
const out = mkdtempSync(join(tmpdir(), 'restart-test-'));
const db = join(out, 'coordinator.db');
let f: ChainFixture;
let runId: bigint;
let port: number;
const procs: Proc[] = [];

interface Proc {
  child: ChildProcess;
  output: string;
  exit: Promise<number | string>;
}

function start(script: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const p: Proc = { child, output: '', exit: new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? 1))) };
  const append = (b: Buffer) => (p.output += b.toString());
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  procs.push(p);
  return p;
}

/** Wait until `p`'s output matches `re`, saying what it waits for if it does not come. */
async function waitFor(p: Proc, re: RegExp, what: string, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = p.output.match(re);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; output so far:\n${p.output.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

const coordinatorArgs = () => [
  ...['--port', String(port), '--run-id', 'restart-test', '--state', db],
  ...['--stages', '2', '--layers', '2', '--d-model', String(TINY_MODEL.dModel), '--heads', String(TINY_MODEL.heads)],
  ...['--seq', String(TINY_MODEL.seq), '--batch', String(TINY_MODEL.batch), '--microbatches', '2', '--steps', String(STEPS)],
  ...['--lr', '1e-2', '--warmup', '0', '--average-every', '2', '--eval-every', '8', '--eval-batches', '2', '--codec', 'subspace:k=8:int8'],
  // Epochs of 2 steps, held 2 closes: the first root is posted at step 6.
  ...['--epoch-steps', '2', '--heartbeat-timeout-ms', '30000'],
];

const chainEnv = () => ({
  SWARM_RPC_URL: f.evm.rpcUrl,
  SWARM_CHAIN_ID: String(f.evm.chainId),
  SWARM_REGISTRY: f.addresses.registry,
  SWARM_TOKENS: f.addresses.tokens,
  SWARM_RUN_ID: runId.toString(),
  SWARM_KEY: f.evm.keys[1],
});

function saved(): { control: ControlSnapshot; run: RunConfig; epochs: Array<{ epoch: number; tree: string; posted: number | null }> } {
  const d = new Database(db, { readonly: true });
  try {
    const meta = (k: string) => JSON.parse((d.prepare('SELECT value FROM meta WHERE key = ?').get(k) as { value: string }).value);
    return { control: meta('control'), run: meta('run'), epochs: d.prepare('SELECT epoch, tree, posted FROM epochs ORDER BY epoch').all() as never };
  } finally {
    d.close();
  }
}

let killedAt: ControlSnapshot;
let second: Proc;
const workers: Proc[] = [];

beforeAll(async () => {
  f = await chainFixture();
  const minWindow = await f.as('designer').minChallengeWindow();
  ({ result: runId } = await f.as('designer').openRun({
    stake: parseEther('1'),
    computeTarget: 1n,
    designerBps: 1000,
    credentialSupply: 1000n,
    challengeWindow: minWindow,
    modelHash: `0x${'11'.repeat(32)}`,
  }));
  port = await freePort();
  const first = start('coordinator/main.ts', coordinatorArgs(), chainEnv());
  await waitFor(first, /workers join with/, 'coordinator listening', 60_000);
  for (const [i, name] of (['alice', 'bob'] as const).entries()) {
    const args = ['--coordinator', `ws://127.0.0.1:${port}`, '--name', `worker-${i}`, '--state-dir', join(out, `worker-${i}`), '--quick-start'];
    workers.push(start('worker/worker.ts', args, { SWARM_RPC_URL: f.evm.rpcUrl, SWARM_KEY: f.evm.keys[f.evm.accounts.findIndex((a) => a.address === f.address(name))] }));
  }
  // Killed once its first root is on chain and training is past it: the restart must neither lose
  // nor repeat what that epoch and the steps after it credited.
  await waitFor(first, /epoch 0 posted at step/, 'first epoch posted', 300_000);
  for (const deadline = Date.now() + 300_000; saved().control.step < 6; await new Promise((r) => setTimeout(r, 100))) {
    if (Date.now() > deadline) throw new Error(`training did not pass step 5 within 300 s; output so far:\n${first.output.slice(-4000)}`);
  }
  first.child.kill('SIGKILL');
  expect(await first.exit).toBe('SIGKILL');
  killedAt = saved().control;
  second = start('coordinator/main.ts', coordinatorArgs(), chainEnv());
  await waitFor(second, /ownership delivered to (\d+) contributors/, 'the resumed run trained and settled', 420_000);
}, 900_000);

afterAll(async () => {
  for (const p of procs) p.child.kill('SIGKILL');
  // What each process printed, for reading after a failure.
  procs.forEach((p, i) => writeFileSync(join(out, `process-${i}.log`), p.output));
  await f?.stop();
});

describe('a coordinator killed with SIGKILL mid-run (real processes, real chain)', () => {
  it('resumes from its store at the step it had committed, and the workers come back on their own', () => {
    expect(killedAt.step).toBeGreaterThanOrEqual(6);
    expect(killedAt.step).toBeLessThan(STEPS);
    expect(second.output).toContain(`resuming run restart-test from ${db}: step ${killedAt.step} of ${STEPS} committed`);
    for (const w of workers) {
      expect(w.output).toMatch(/the coordinator connection closed \(code 1006\); keeping this peer's state/);
      expect(w.output).toMatch(/reconnected to ws:\/\/127\.0\.0\.1:\d+ as p\d+-/);
    }
    // Training went on after the step it was killed at, to the end.
    expect(saved().control.step).toBe(STEPS);
    expect(second.output).toMatch(new RegExp(`training complete at step ${STEPS}`));
  });

  it('credits every step exactly once: ownership on chain equals units computed from the model spec', async () => {
    const { run } = saved();
    // One worker per stage computes every microbatch of every step.
    const expected = specUnitsPerStage(run, 8);
    const owned = await Promise.all((['alice', 'bob'] as const).map((n) => f.as('admin').ownershipOf(runId, f.address(n))));
    expect(owned.slice().sort()).toEqual(expected.slice().sort());
  });

  it('posts each epoch once: the chain holds exactly the store’s roots, in order', async () => {
    const { epochs } = saved();
    const info = await f.as('admin').run(runId);
    expect(info.state).toBe('trained');
    expect(epochs.length).toBe(Number(info.epochs));
    let previous = 0n;
    for (const e of epochs) {
      expect(e.posted).toBe(e.epoch);
      const tree = loadEpochTree(JSON.parse(e.tree));
      const onChain = await f.as('admin').epoch(runId, BigInt(e.epoch));
      expect(onChain.root).toBe(tree.root);
      expect(onChain.total).toBeGreaterThan(previous);
      previous = onChain.total;
    }
  });
});
