// The whole economy with real processes: a local EVM (Hardhat's node), the contracts, a staked
// run, the coordinator and two worker processes training over WebRTC, per-epoch roots of verified
// work, ownership delivered on chain, an owner's listing, a buyer's spend served by the swarm.
// Ownership is checked against units computed here from the model spec, independently.
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicClient, http, keccak256, toHex } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalEvm, startLocalEvm } from '../contracts/local-evm.js';
import { type SwarmChain, credentialId, ownershipId, promptHash, swarmChain } from '../shared/chain/client.js';
import { chainConfigFromEnv, chainOf } from '../shared/chain/config.js';
import { loadEpochTree } from '../shared/ledger/merkle.js';
import { runSpecHash } from '../shared/run/spec.js';
import { RunStore } from '../coordinator/run-store.js';
import { ACCOUNTS_FILE, ECONOMY_DEFAULTS, type EconomyResult, ROLES, StoppedEarly, runLocalEconomy } from '../cli/start.js';
import { SWARM_DEFAULTS } from '../cli/swarm.js';
import { specUnitsPerStage } from './spec-units.js';
import { TINY_MODEL } from './tiny-swarm.js';

const out = mkdtempSync(join(tmpdir(), 'economy-test-'));
/** Two workers on two stages of the tiny model, writing to `dir`. */
const tinySwarm = (dir: string, steps: number) => ({
  ...SWARM_DEFAULTS,
  workers: 2,
  stages: 2,
  layers: 2,
  ...TINY_MODEL,
  microbatches: 2,
  steps,
  out: dir,
  quiet: true,
  quickStart: true,
});
const economy = { ...ECONOMY_DEFAULTS, epochSteps: 3, answerTokens: 24, prompt: 'ROMEO:\n', challengeWindow: 2 };
let evm: LocalEvm;
let result: EconomyResult;
let chain: SwarmChain;

beforeAll(async () => {
  evm = await startLocalEvm({ accounts: ROLES.firstWorker + 2 });
  result = await runLocalEconomy({ ...tinySwarm(out, 10), lr: 1e-2, evalEvery: 5, evalBatches: 2, codec: 'subspace:k=8:int8' }, economy, evm);
  chain = swarmChain(createPublicClient({ chain: chainOf(evm), transport: http(evm.rpcUrl) }), result.addresses);
}, 600_000);
afterAll(async () => evm?.stop());

describe('local economy (chain + coordinator + 2 worker processes)', () => {
  it('credits each worker exactly its stage’s spec FLOPs, risk-weighted per step, as ownership on chain', async () => {
    const run = result.swarm.run;
    // Independent reference (one peer per stage: each computes all of a step's microbatches).
    const expected = specUnitsPerStage(run, 8);
    // Why a worker's ownership is missing, if it is (a worker that never joined the run on chain).
    expect(result.settlement.unclaimed).toEqual([]);
    const byStage = new Map(result.swarm.peers.map((p) => [p.stage, p]));
    expect(byStage.size).toBe(2);
    const owned = await Promise.all(result.workers.map((w) => chain.ownershipOf(result.runId, w.account)));
    expect(owned.slice().sort()).toEqual(expected.slice().sort());
    const contributors = expected[0] + expected[1];
    const designer = (contributors * 1000n) / 9000n;
    const info = await chain.run(result.runId);
    expect(info.state).toBe('trained');
    // The designer staked on the very text the coordinator serves at /run.json.
    expect(info.modelHash).toBe(runSpecHash(run));
    expect(await chain.ownershipOf(result.runId, info.designer)).toBe(designer);
    expect(await chain.supply(ownershipId(result.runId))).toBe(contributors + designer);
  });

  it('posted a root per epoch; the saved trees match the chain and prove every worker’s units', async () => {
    const info = await chain.run(result.runId);
    expect(info.epochs).toBeGreaterThanOrEqual(2n);
    // The coordinator's store (run-store.ts) holds every closed epoch, each with the index the chain gave its root.
    const store = RunStore.open(join(out, 'coordinator.db'), result.swarm.run);
    const saved = store.epochs();
    store.close();
    expect(saved.length).toBe(Number(info.epochs));
    let previous = 0n;
    for (const e of saved) {
      expect(e.posted).toBe(e.epoch);
      const onChain = await chain.epoch(result.runId, BigInt(e.posted!));
      const tree = loadEpochTree(e.tree);
      expect(onChain.root).toBe(tree.root);
      expect(onChain.total).toBe(tree.total);
      expect(onChain.total).toBeGreaterThanOrEqual(previous);
      previous = onChain.total;
    }
    const last = loadEpochTree(saved.at(-1)!.tree);
    for (const w of result.workers) expect(last.units(w.account)).toBe(await chain.ownershipOf(result.runId, w.account));
    // Each worker kept every epoch's proof of its own units on its own disk.
    for (let i = 0; i < 2; i++) {
      const account = evm.accounts[ROLES.firstWorker + i].address;
      const kept = JSON.parse(readFileSync(join(out, 'peers', `worker-${i}`, 'proofs', `${account}-run${result.runId}.json`), 'utf8'));
      expect(kept).toMatchObject({ chainId: evm.chainId, registry: result.addresses.registry, runId: result.runId.toString() });
      expect(kept.epochs).toHaveLength(Number(info.epochs));
      const final = kept.epochs.at(-1);
      expect(final.root).toBe((await chain.epoch(result.runId, BigInt(final.epoch))).root);
      expect(final.proof).toEqual(last.proof(final.account));
      expect(BigInt(final.cumulative)).toBe(await chain.ownershipOf(result.runId, final.account));
    }
  });

  it('the buyer’s spend was served: the answer is generated text whose hash is the receipt on chain', async () => {
    const a = result.answer;
    expect(Array.from(a.text)).toHaveLength(economy.answerTokens);
    expect(a.answerHash).toBe(keccak256(toHex(a.text)));
    const spend = await chain.spend(BigInt(a.spendId));
    expect(spend.served).toBe(true);
    expect(spend.promptHash).toBe(promptHash(economy.prompt));
    expect(spend.buyer).toBe(evm.accounts[ROLES.buyer].address);
    const logs = await chain.events();
    const served = logs.find((l) => (l as { eventName?: string }).eventName === 'InferenceServed') as unknown as { args: { spendId: bigint; answerHash: string } };
    expect(served.args).toEqual({ spendId: BigInt(a.spendId), answerHash: a.answerHash });
  });

  it('wrote the settings npm run wallet and npm run buy need: each block names this chain, this run and its account', async () => {
    const text = readFileSync(join(out, ACCOUNTS_FILE), 'utf8');
    const blocks = text.split('\n# ').slice(1);
    const env = (block: string) =>
      Object.fromEntries(
        block
          .split('\n')[1]
          .replace(/^export /, '')
          .split(' ')
          .map((kv) => kv.split('=') as [string, string]),
      );
    const configs = blocks.map((b) => chainConfigFromEnv(env(b))!);
    expect(blocks.map((b) => b.split(':')[0])).toEqual(["worker 0's account", "worker 1's account", 'the buyer', 'the designer']);
    for (const c of configs)
      expect([c.rpcUrl, c.chainId, c.registry, c.tokens, c.runId]).toEqual([evm.rpcUrl, evm.chainId, result.addresses.registry, result.addresses.tokens, result.runId]);
    const accounts = [ROLES.firstWorker, ROLES.firstWorker + 1, ROLES.buyer, ROLES.designer].map((i) => evm.keys[i]);
    expect(configs.map((c) => c.key)).toEqual(accounts);
    expect(blocks[2]).toMatch(/npm run buy -- --coordinator ws:\/\/127\.0\.0\.1:\d+ --prompt/);
  });

  it('credential supply is unchanged by the spend, and the coordinator never saw a tensor', async () => {
    const id = credentialId(result.runId);
    const holders = [...evm.accounts.map((a) => a.address), result.addresses.tokens];
    let sum = 0n;
    for (const h of holders) sum += await chain.credentialsOf(result.runId, h);
    expect(sum).toBe(1000n);
    expect(await chain.supply(id)).toBe(1000n);
    expect((await chain.pool(result.runId)).reissued).toBe(1001n);
    expect(result.swarm.coordinator.binaryBytesReceived).toBe(0);
  });
});

describe('local economy stopped by Ctrl-C before training ends', () => {
  it('shows each worker’s units so far in the table and economy.json, and leaves no write-ahead log behind', async () => {
    const stopOut = mkdtempSync(join(tmpdir(), 'economy-stop-'));
    const stopEvm = await startLocalEvm({ accounts: ROLES.firstWorker + 2 });
    try {
      const o = { ...tinySwarm(stopOut, 200), evalEvery: 0, evalBatches: 0 };
      // What a terminal's Ctrl-C does to `npm start` once a few steps are committed.
      const steps = () => (existsSync(join(stopOut, 'worker-0.json.work.jsonl')) ? readFileSync(join(stopOut, 'worker-0.json.work.jsonl'), 'utf8').split('\n').length - 1 : 0);
      const poll = setInterval(() => {
        if (steps() < 3) return;
        clearInterval(poll);
        process.emit('SIGINT');
      }, 200);
      await expect(runLocalEconomy(o, economy, stopEvm)).rejects.toThrow(StoppedEarly);
      clearInterval(poll);
      const saved = JSON.parse(readFileSync(join(stopOut, 'economy.json'), 'utf8'));
      expect(saved.stoppedEarly.step).toBeGreaterThanOrEqual(3);
      expect(saved.stoppedEarly.step).toBeLessThan(200);
      const accounts = [ROLES.firstWorker, ROLES.firstWorker + 1].map((i) => stopEvm.accounts[i].address);
      expect(saved.stoppedEarly.units.map((u: { account: string }) => u.account)).toEqual(accounts);
      expect(saved.stoppedEarly.units.every((u: { units: string }) => BigInt(u.units) > 0n)).toBe(true);
      expect(saved.swarm.stopped).toBe(true);
      expect(readdirSync(stopOut).filter((f) => f.startsWith('coordinator.db'))).toEqual(['coordinator.db']);
    } finally {
      await stopEvm.stop();
    }
  }, 300_000);
});
