// The settlement's record in the coordinator's store (coordinator/run-store.ts), on a real EVM:
// a restarted settlement picks the ledger up where it was, and an epoch whose root the crashed
// coordinator had already sent is recorded from the chain, not posted a second time.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parseEther } from 'viem';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommitEvent } from '../coordinator/run-control.js';
import { RunStore } from '../coordinator/run-store.js';
import { Settlement } from '../coordinator/settlement.js';
import { parseRisk } from '../shared/ledger/risk.js';

import { type ChainFixture, chainFixture } from './chain-fixture.js';
import { testRun } from './test-run.js';

const run = testRun({ runId: 'settlement-restart' });

let f: ChainFixture;
let runId: bigint;
const dir = mkdtempSync(join(tmpdir(), 'settlement-restart-'));

const commit = (step: number): CommitEvent => ({
  step,
  round: step,
  ms: 1,
  loss: 3,
  work: [
    { peerId: 'pa', account: f.address('alice'), stage: 0, microbatches: 2 },
    { peerId: 'pb', account: f.address('bob'), stage: 1, microbatches: 2 },
  ],
});

// Roots at every epoch's close (no hold: the hold is the ledger's, tested in ledger.test.ts), to number them simply.
const settlement = (store: RunStore) => new Settlement({ run, chain: f.as('coordinator'), runId, risk: parseRisk('exp:4'), epochSteps: 2, heldEpochs: 0, store, log: () => {} });

async function posted(store: RunStore, n: number): Promise<void> {
  for (const deadline = Date.now() + 30_000; store.epochs().filter((e) => e.posted !== undefined).length < n; await new Promise((r) => setTimeout(r, 50))) {
    if (Date.now() > deadline) throw new Error(`${n} epoch(s) not posted within 30 s: ${JSON.stringify(store.epochs().map((e) => e.posted))}`);
  }
}

beforeAll(async () => {
  f = await chainFixture();
  ({ result: runId } = await f.as('designer').openRun({
    stake: parseEther('1'),
    computeTarget: 1n,
    designerBps: 1000,
    credentialSupply: 1000n,
    challengeWindow: await f.as('designer').minChallengeWindow(),
    modelHash: `0x${'22'.repeat(32)}`,
  }));
  for (const n of ['alice', 'bob'] as const) await f.as(n).join(runId);
  await f.as('coordinator').startTraining(runId);
}, 120_000);
afterAll(async () => f?.stop());

describe('settlement after a coordinator restart (real EVM)', () => {
  it('resumes the ledger from the store and never posts an epoch twice', async () => {
    // The first coordinator: steps 1–3 credited, epoch 0 (closed at step 2) posted.
    const path = join(dir, 'coordinator.db');
    const first = RunStore.open(path, run);
    const a = settlement(first);
    for (const s of [1, 2, 3]) first.atomically(() => a.credit(commit(s)));
    await posted(first, 1);
    const afterThree = { alice: a.ledger.units(f.address('alice')), bob: a.ledger.units(f.address('bob')) };
    first.atomically(() => a.credit(commit(4))); // closes epoch 1 at step 4...
    const epoch1 = first.epochs()[1];
    expect(epoch1).toMatchObject({ epoch: 1, step: 4 });
    // ...whose root the chain received, when the coordinator was killed before recording it.
    await posted(first, 2);
    first.close();
    // As if killed between sending the root and recording it: the record of the post is lost.
    const raw = new Database(path);
    raw.prepare('UPDATE epochs SET posted = NULL WHERE epoch = 1').run();
    raw.close();
    const store = RunStore.open(path, run);
    expect(store.epochs()[1].posted).toBeUndefined();
    expect((await f.as('admin').run(runId)).epochs).toBe(2n);

    // The restarted coordinator's settlement.
    const b = settlement(store);
    await posted(store, 2);
    expect((await f.as('admin').run(runId)).epochs).toBe(2n);
    expect(store.epochs()[1].posted).toBe(1);
    expect(b.posted.map((p) => p.epoch)).toEqual([0, 1]);
    // The ledger is where the first left it: step 4 credited once, on top of steps 1–3.
    const step4 = b.ledger.units(f.address('alice')) - afterThree.alice;
    expect(step4).toBeGreaterThan(0n);
    expect(b.ledger.units(f.address('bob')) - afterThree.bob).toBeGreaterThan(0n);
    // The run goes on: the next epoch is epoch 2, posted as the chain's third root.
    for (const s of [5, 6]) store.atomically(() => b.credit(commit(s)));
    await posted(store, 3);
    expect((await f.as('admin').run(runId)).epochs).toBe(3n);
    expect(store.epochs().map((e) => e.posted)).toEqual([0, 1, 2]);

    // The last steps, and the settlement finishes: the final root, training ended on chain, ownership claimed.
    for (const s of [7, 8, 9, 10]) store.atomically(() => b.credit(commit(s)));
    const report = await b.finish({ pollMs: 200, timeoutMs: 60_000 });
    const owned = await f.as('admin').ownershipOf(runId, f.address('alice'));
    expect(owned).toBe(b.ledger.units(f.address('alice')));
    const roots = (await f.as('admin').run(runId)).epochs;
    // Killed after that and started again (the run resumes trained and settles again): nothing is posted, minted or claimed twice.
    const again = await settlement(store).finish({ pollMs: 200, timeoutMs: 60_000 });
    expect((await f.as('admin').run(runId)).epochs).toBe(roots);
    expect(await f.as('admin').ownershipOf(runId, f.address('alice'))).toBe(owned);
    expect(again.units).toEqual(report.units);
    expect(again.ownershipTotal).toBe(report.ownershipTotal);
    store.close();
  });

  it('refuses a store of another run configuration', () => {
    const path = join(dir, 'other.db');
    RunStore.open(path, run).close();
    expect(() => RunStore.open(path, { ...run, steps: 11 })).toThrow(/holds run settlement-restart with other settings \(steps differ\): resume it with the same flags/);
  });
});
