// The contracts on a real EVM (Hardhat's node): the whole lifecycle of a run, and the attacks
// ARCHITECTURE §7 names, each by an attacker account or contract.
import { type Address, encodeFunctionData, parseEther } from 'viem';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chainInferenceDesk } from '../coordinator/inference-desk.js';
import { ChainRevert, SPEND_TYPES, credentialId, ownershipId, promptHash, swarmChain } from '../shared/chain/client.js';
import { deploySwarmContracts } from '../shared/chain/deploy.js';
import { modelTokensAbi } from '../shared/chain/generated/ModelTokens.js';
import { reentererAbi } from '../shared/chain/generated/Reenterer.js';
import { runRegistryAbi } from '../shared/chain/generated/RunRegistry.js';
import { type ChainFixture, NAMES, WINDOW, chainFixture, settleAndFinish, trainingRun, treeOf } from './chain-fixture.js';

let f: ChainFixture;
beforeAll(async () => {
  f = await chainFixture();
  await f.saveState();
});
afterAll(async () => f?.stop());
beforeEach(async () => f.restoreState());

const ACC = 10n ** 18n;
const REENTRANT = '0x3ee5aeb5'; // ReentrancyGuardReentrantCall()

async function reverts(p: Promise<unknown>, errorName: string) {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, `expected a revert with ${errorName}`).toBeInstanceOf(ChainRevert);
  expect((e as ChainRevert).errorName).toBe(errorName);
}

/** Σ balances of `id` over every named account and the tokens contract itself. */
async function sumBalances(id: bigint, extra: Address[] = []) {
  const holders = [...NAMES.map((n) => f.address(n)), f.addresses.tokens, ...extra];
  const bal = await Promise.all(holders.map((h) => f.publicClient.readContract({ address: f.addresses.tokens, abi: modelTokensAbi, functionName: 'balanceOf', args: [h, id] })));
  return bal.reduce((a, b) => a + b, 0n);
}

describe('run lifecycle', () => {
  it('open → join → epochs → trained → claims → list → buy → spend → re-issue → claim re-issued', async () => {
    const designerBalance0 = await f.publicClient.getBalance({ address: f.address('designer') });
    const runId = await trainingRun(f, ['alice', 'bob', 'carol']);
    expect((await f.as('alice').run(runId)).state).toBe('training');

    // Two epochs of cumulative units; carol joins the ledger in epoch 1.
    const e0 = treeOf(f, 0, { alice: 300n, bob: 200n });
    await f.as('coordinator').postEpoch(runId, e0.root, e0.total);
    const e1 = treeOf(f, 1, { alice: 600n, bob: 200n, carol: 400n });
    await f.as('coordinator').postEpoch(runId, e1.root, e1.total);

    // Nothing is claimable before training ends, and training cannot end inside the window.
    await reverts(f.as('alice').claim(runId, 1n, f.address('alice'), 600n, e1.proof(f.address('alice'))), 'WrongState');
    await reverts(f.as('coordinator').finishTraining(runId), 'EpochNotClaimable');
    await f.advance(WINDOW);
    await f.as('coordinator').finishTraining(runId);
    const run = await f.as('alice').run(runId);
    expect(run.state).toBe('trained');
    expect(run.settledEpoch).toBe(1n);

    // Claims: cumulative − claimed, always to the leaf's account, whoever sends the transaction.
    await f.as('alice').claim(runId, 0n, f.address('alice'), 300n, e0.proof(f.address('alice')));
    await f.as('alice').claim(runId, 1n, f.address('alice'), 600n, e1.proof(f.address('alice')));
    await f.as('bob').claim(runId, 1n, f.address('bob'), 200n, e1.proof(f.address('bob')));
    await f.as('buyer').claim(runId, 1n, f.address('carol'), 400n, e1.proof(f.address('carol')));
    await f.as('designer').claimDesignerShare(runId);
    const designerUnits = (1200n * 1000n) / 9000n; // 10 % of the whole, rounded down
    expect(await f.as('alice').ownershipOf(runId, f.address('alice'))).toBe(600n);
    expect(await f.as('alice').ownershipOf(runId, f.address('carol'))).toBe(400n);
    expect(await f.as('alice').ownershipOf(runId, f.address('buyer'))).toBe(0n);
    expect(await f.as('alice').ownershipOf(runId, f.address('designer'))).toBe(designerUnits);
    const total = 1200n + designerUnits;
    expect(await f.as('alice').supply(ownershipId(runId))).toBe(total);

    // The initial 100 credentials are shared pro rata; owners pull them.
    const exact = (units: bigint, credits: bigint) => (units * credits) / total; // floor of the exact share
    expect(await f.as('alice').pendingCredentials(runId, f.address('alice'))).toBe(exact(600n, 100n));
    await f.as('alice').claimCredentials(runId);
    expect(await f.as('alice').credentialsOf(runId, f.address('alice'))).toBe(exact(600n, 100n));

    // Alice lists 10 at 0.01 ETH; the buyer buys 3 in the app.
    const price = parseEther('0.01');
    const { result: listingId } = await f.as('alice').list(runId, 10n, price);
    const [listing] = await f.as('buyer').openListings(runId);
    expect(listing.listingId).toBe(listingId);
    await reverts(f.as('buyer').buy({ ...listing, price: price - 1n }, 3n), 'WrongPayment');
    await f.as('buyer').buy(listing, 3n);
    expect(await f.as('buyer').credentialsOf(runId, f.address('buyer'))).toBe(3n);
    expect(await f.as('alice').proceeds(f.address('alice'))).toBe(3n * price);
    await f.as('alice').withdrawProceeds();
    expect(await f.as('alice').proceeds(f.address('alice'))).toBe(0n);

    // The buyer spends one credential on a query; it is consumed and re-issued to the owners.
    const before = await f.as('bob').pendingCredentials(runId, f.address('bob'));
    const { result: spendId } = await f.as('buyer').spendCredentials(runId, 1n, 'To be, or not');
    const spend = await f.as('buyer').spend(spendId);
    expect(spend).toMatchObject({ buyer: f.address('buyer'), runId, amount: 1n, promptHash: promptHash('To be, or not'), served: false });
    expect(await f.as('buyer').credentialsOf(runId, f.address('buyer'))).toBe(2n);
    const pool = await f.as('bob').pool(runId);
    expect(pool.reissued).toBe(101n);
    // Independent reference: Bob's share of 101 credentials, exactly, minus what he pulled (0).
    expect(await f.as('bob').pendingCredentials(runId, f.address('bob'))).toBe(exact(200n, 101n));
    expect(exact(200n, 101n)).toBeGreaterThanOrEqual(before);
    await f.as('coordinator').markServed(spendId, promptHash('answer'));
    expect((await f.as('buyer').spend(spendId)).served).toBe(true);

    // Re-issued credentials are claimable; supply never changed.
    await f.as('bob').claimCredentials(runId);
    expect(await f.as('bob').credentialsOf(runId, f.address('bob'))).toBe(exact(200n, 101n));
    expect(await f.as('bob').supply(credentialId(runId))).toBe(100n);
    expect(await sumBalances(credentialId(runId))).toBe(100n);
    expect(await sumBalances(ownershipId(runId))).toBe(total);

    // The designer's stake comes back when the run is trained.
    expect(await f.as('designer').withdrawable(f.address('designer'))).toBe(10n ** 18n);
    await f.as('designer').withdraw();
    const designerBalance1 = await f.publicClient.getBalance({ address: f.address('designer') });
    expect(designerBalance0 - designerBalance1 < parseEther('0.01')).toBe(true); // only gas was spent

    // Every step left an event a dashboard can show.
    const names = new Set((await f.as('alice').events()).map((e) => (e as { eventName?: string }).eventName));
    for (const n of [
      'RunOpened',
      'Joined',
      'TrainingStarted',
      'EpochPosted',
      'Trained',
      'OwnershipClaimed',
      'DesignerShareClaimed',
      'Activated',
      'Reissued',
      'CredentialsClaimed',
      'Listed',
      'Bought',
      'CredentialSpent',
      'InferenceServed',
      'Withdrawn',
      'ProceedsWithdrawn',
      'TransferSingle',
    ]) {
      expect(names, n).toContain(n);
    }
  });

  it('owners earn on every spend in proportion to what they hold when it happens', async () => {
    const runId = await trainingRun(f, ['alice', 'bob']);
    const tree = treeOf(f, 0, { alice: 700n, bob: 300n });
    await settleAndFinish(f, runId, tree);
    for (const n of ['alice', 'bob'] as const) await f.as(n).claim(runId, 0n, f.address(n), tree.units(f.address(n))!, tree.proof(f.address(n)));
    await f.as('designer').claimDesignerShare(runId);
    const total = 1000n + (1000n * 1000n) / 9000n;
    // Alice sells half her ownership to Carol after the initial supply was shared out.
    await f.wallet('alice').writeContract({
      address: f.addresses.tokens,
      abi: modelTokensAbi,
      functionName: 'safeTransferFrom',
      args: [f.address('alice'), f.address('carol'), ownershipId(runId), 350n, '0x'],
    });
    await f.as('alice').claimCredentials(runId);
    await f.as('alice').list(runId, 20n, 1n);
    const [l] = await f.as('buyer').openListings(runId);
    await f.as('buyer').buy(l, 20n);
    await f.as('buyer').spendCredentials(runId, 20n, 'q');
    // Carol earns only on the 20 spent after she bought in; Alice on 100 with 700 and 20 with 350.
    expect(await f.as('carol').pendingCredentials(runId, f.address('carol'))).toBe((350n * 20n) / total);
    const aliceExact = (700n * 100n * ACC) / total / ACC; // what she pulled before the sale
    const alicePending = await f.as('alice').pendingCredentials(runId, f.address('alice'));
    const aliceTotal = aliceExact + alicePending;
    const aliceReference = (700n * 100n + 350n * 20n) / total;
    expect(aliceTotal === aliceReference || aliceTotal === aliceReference - 1n).toBe(true);
  });
});

describe('client', () => {
  it('watch delivers the events of both contracts as they are mined', async () => {
    const seen: string[] = [];
    const stop = f.as('alice').watch((logs) => logs.forEach((l) => seen.push((l as { eventName?: string }).eventName ?? '?')), 100);
    try {
      const runId = await trainingRun(f, ['alice']);
      await settleAndFinish(f, runId, treeOf(f, 0, { alice: 1000n }));
      const t0 = Date.now();
      while (!(seen.includes('Trained') && seen.includes('Activated')) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
      for (const n of ['RunOpened', 'Joined', 'TrainingStarted', 'EpochPosted', 'Trained', 'Activated', 'Reissued']) expect(seen, n).toContain(n);
    } finally {
      stop();
    }
  });
});

describe('stake', () => {
  it('is refunded to the designer when a run is abandoned before any root settled', async () => {
    const runId = await trainingRun(f, ['alice']);
    await f.as('designer').abandon(runId);
    expect((await f.as('alice').run(runId)).state).toBe('abandoned');
    expect(await f.as('designer').withdrawable(f.address('designer'))).toBe(10n ** 18n);
  });

  it('goes to the contributors of the last settled root when training is abandoned, once each', async () => {
    const runId = await trainingRun(f, ['alice', 'bob', 'carol']);
    const tree = treeOf(f, 0, { alice: 1n, bob: 1n, carol: 1n });
    await f.as('coordinator').postEpoch(runId, tree.root, tree.total);
    await f.advance(WINDOW);
    // A later root still inside its window is not what the stake is paid from.
    const later = treeOf(f, 1, { alice: 10n, bob: 1n, carol: 1n });
    await f.as('coordinator').postEpoch(runId, later.root, later.total);
    await f.as('designer').abandon(runId);
    expect(await f.as('designer').withdrawable(f.address('designer'))).toBe(0n);
    for (const n of ['alice', 'bob', 'carol'] as const) await f.as('dave').claimStakeShare(runId, f.address(n), 1n, tree.proof(f.address(n)));
    const third = 10n ** 18n / 3n;
    for (const n of ['alice', 'bob', 'carol'] as const) expect(await f.as(n).withdrawable(f.address(n))).toBe(third);
    await reverts(f.as('alice').claimStakeShare(runId, f.address('alice'), 1n, tree.proof(f.address('alice'))), 'NothingToClaim');
    await reverts(f.as('alice').claimStakeShare(runId, f.address('alice'), 10n, later.proof(f.address('alice'))), 'InvalidProof');
    // Paid out never exceeds the stake (rounding leaves at most a wei per contributor).
    expect(3n * third <= 10n ** 18n).toBe(true);
    expect((await f.as('alice').run(runId)).stakePaid).toBe(3n * third);
  });

  it('a root that understates its leaves cannot pay out more than the stake (other runs’ stakes stay safe)', async () => {
    await trainingRun(f, ['carol']); // another run whose stake sits in the same contract
    const runId = await trainingRun(f, ['alice', 'bob']);
    const lying = treeOf(f, 0, { alice: 900n, bob: 900n });
    await f.as('coordinator').postEpoch(runId, lying.root, 1000n);
    await f.advance(WINDOW);
    await f.as('designer').abandon(runId);
    await f.as('alice').claimStakeShare(runId, f.address('alice'), 900n, lying.proof(f.address('alice')));
    await reverts(f.as('bob').claimStakeShare(runId, f.address('bob'), 900n, lying.proof(f.address('bob'))), 'StakeExceeded');
    expect(await f.as('bob').withdrawable(f.address('bob'))).toBe(0n);
  });
});

describe('attacks', () => {
  it('double claims and proofs for another account or amount are refused', async () => {
    const runId = await trainingRun(f, ['alice', 'bob', 'mallory']);
    const tree = treeOf(f, 0, { alice: 500n, bob: 400n, mallory: 100n });
    await settleAndFinish(f, runId, tree);
    const alice = f.address('alice');
    await f.as('alice').claim(runId, 0n, alice, 500n, tree.proof(alice));
    await reverts(f.as('alice').claim(runId, 0n, alice, 500n, tree.proof(alice)), 'NothingToClaim');
    // Mallory replays Alice's proof for herself, or inflates her own amount.
    await reverts(f.as('mallory').claim(runId, 0n, f.address('mallory'), 500n, tree.proof(alice)), 'InvalidProof');
    await reverts(f.as('mallory').claim(runId, 0n, f.address('mallory'), 900n, tree.proof(f.address('mallory'))), 'InvalidProof');
    // Claiming Bob's leaf from Mallory's account still pays Bob.
    await f.as('mallory').claim(runId, 0n, f.address('bob'), 400n, tree.proof(f.address('bob')));
    expect(await f.as('mallory').ownershipOf(runId, f.address('mallory'))).toBe(0n);
    expect(await f.as('bob').ownershipOf(runId, f.address('bob'))).toBe(400n);
  });

  it('a vetoed root can neither end training nor be claimed; the veto closes with the window', async () => {
    const runId = await trainingRun(f, ['alice', 'mallory']);
    const bad = treeOf(f, 0, { alice: 10n, mallory: 5000n });
    await f.as('coordinator').postEpoch(runId, bad.root, bad.total);
    await f.as('veto').veto(runId, 0n);
    await f.advance(WINDOW);
    await reverts(f.as('coordinator').finishTraining(runId), 'EpochNotClaimable');
    const good = treeOf(f, 1, { alice: 1000n, mallory: 5n });
    await f.as('coordinator').postEpoch(runId, good.root, good.total);
    await f.advance(WINDOW);
    await reverts(f.as('veto').veto(runId, 1n), 'ChallengeWindowOver');
    await f.as('coordinator').finishTraining(runId);
    await reverts(f.as('mallory').claim(runId, 0n, f.address('mallory'), 5000n, bad.proof(f.address('mallory'))), 'EpochNotClaimable');
    await f.as('mallory').claim(runId, 1n, f.address('mallory'), 5n, good.proof(f.address('mallory')));
  });

  it('calls from the wrong role are refused', async () => {
    const runId = await trainingRun(f, ['alice']);
    const tree = treeOf(f, 0, { alice: 2000n });
    await reverts(f.as('mallory').postEpoch(runId, tree.root, tree.total), 'AccessControlUnauthorizedAccount');
    await f.as('coordinator').postEpoch(runId, tree.root, tree.total);
    await reverts(f.as('mallory').veto(runId, 0n), 'AccessControlUnauthorizedAccount');
    await reverts(f.as('coordinator').veto(runId, 0n), 'AccessControlUnauthorizedAccount');
    await f.advance(WINDOW);
    await reverts(f.as('mallory').finishTraining(runId), 'AccessControlUnauthorizedAccount');
    await reverts(f.as('mallory').abandon(runId), 'NotDesigner');
    await f.as('coordinator').finishTraining(runId);
    await reverts(f.as('mallory').markServed(1n, promptHash('x')), 'AccessControlUnauthorizedAccount');
    const direct = (functionName: 'mintOwnership' | 'activate', args: readonly [bigint, `0x${string}` | bigint, bigint]) =>
      f.wallet('mallory').writeContract({ address: f.addresses.tokens, abi: modelTokensAbi, functionName, args } as never);
    await expect(direct('mintOwnership', [runId, f.address('mallory'), 10n ** 9n])).rejects.toThrow(/AccessControlUnauthorizedAccount/);
    await expect(direct('activate', [99n, 10n, 10n])).rejects.toThrow(/AccessControlUnauthorizedAccount/);
    expect(await f.as('mallory').ownershipOf(runId, f.address('mallory'))).toBe(0n);
  });

  it('bad run parameters and an inconsistent ledger are refused', async () => {
    const p = { stake: 1n, computeTarget: 1n, designerBps: 0, credentialSupply: 1n, challengeWindow: 0n, modelHash: `0x${'00'.repeat(32)}` as const };
    await reverts(f.as('designer').openRun({ ...p, stake: 0n }), 'BadParameter');
    await reverts(f.as('designer').openRun({ ...p, designerBps: 2001 }), 'BadParameter');
    await reverts(f.as('designer').openRun({ ...p, computeTarget: 0n }), 'BadParameter');
    await reverts(f.as('designer').openRun({ ...p, challengeWindow: 31n * 86400n }), 'BadParameter');
    // Target not reached; a shrinking cumulative total.
    const runId = await trainingRun(f, ['alice', 'bob'], { computeTarget: 1000n });
    const small = treeOf(f, 0, { alice: 400n });
    await f.as('coordinator').postEpoch(runId, small.root, small.total);
    await f.advance(WINDOW);
    await reverts(f.as('coordinator').finishTraining(runId), 'TargetNotReached');
    await reverts(f.as('coordinator').postEpoch(runId, small.root, 300n), 'TotalDecreased');
    // A root whose published total understates its leaves cannot mint past the total.
    const lying = treeOf(f, 1, { alice: 800n, bob: 800n });
    await f.as('coordinator').postEpoch(runId, lying.root, 1000n);
    await f.advance(WINDOW);
    await f.as('coordinator').finishTraining(runId);
    await f.as('alice').claim(runId, 1n, f.address('alice'), 800n, lying.proof(f.address('alice')));
    await f.as('designer').claimDesignerShare(runId);
    await reverts(f.as('bob').claim(runId, 1n, f.address('bob'), 800n, lying.proof(f.address('bob'))), 'OwnershipCapExceeded');
    // Not a provider: a leaf for an account that never joined pays nothing.
    const runId2 = await trainingRun(f, ['alice']);
    const t2 = treeOf(f, 0, { alice: 1000n, mallory: 1000n });
    await settleAndFinish(f, runId2, t2);
    await reverts(f.as('mallory').claim(runId2, 0n, f.address('mallory'), 1000n, t2.proof(f.address('mallory'))), 'NotJoined');
  });

  describe('reentrancy through a malicious receiver', () => {
    async function armed(target: Address, data: `0x${string}`) {
      const r = await f.deployReenterer();
      const mallory = f.wallet('mallory');
      const exec = async (to: Address, call: `0x${string}`, value = 0n) => {
        const hash = await mallory.writeContract({ address: r, abi: reentererAbi, functionName: 'execute', args: [to, call], value });
        const receipt = await f.publicClient.waitForTransactionReceipt({ hash });
        expect(receipt.status).toBe('success');
      };
      await mallory.writeContract({ address: r, abi: reentererAbi, functionName: 'arm', args: [target, data] }).then((hash) => f.publicClient.waitForTransactionReceipt({ hash }));
      const read = async () => ({
        attempted: await f.publicClient.readContract({ address: r, abi: reentererAbi, functionName: 'attempted' }),
        reentered: await f.publicClient.readContract({ address: r, abi: reentererAbi, functionName: 'reentered' }),
        error: await f.publicClient.readContract({ address: r, abi: reentererAbi, functionName: 'reentryError' }),
      });
      return { r, exec, read };
    }
    const reg = (functionName: string, args: readonly unknown[]) => encodeFunctionData({ abi: runRegistryAbi, functionName, args } as never);
    const tok = (functionName: string, args: readonly unknown[]) => encodeFunctionData({ abi: modelTokensAbi, functionName, args } as never);

    it('on ownership claim: the hook cannot claim again', async () => {
      const runId = 1n;
      const { r, exec, read } = await armed(f.addresses.registry, '0x');
      await trainingRun(f, ['alice']);
      await exec(f.addresses.registry, reg('join', [runId]));
      const tree = treeOf(f, 0, [
        [f.address('alice'), 900n],
        [r, 300n],
      ]);
      await settleAndFinish(f, runId, tree);
      const again = reg('claim', [runId, 0n, r, 300n, tree.proof(r)]);
      await f
        .wallet('mallory')
        .writeContract({ address: r, abi: reentererAbi, functionName: 'arm', args: [f.addresses.registry, again] })
        .then((hash) => f.publicClient.waitForTransactionReceipt({ hash }));
      await f.as('mallory').claim(runId, 0n, r, 300n, tree.proof(r));
      const s = await read();
      expect(s.attempted).toBe(true);
      expect(s.reentered).toBe(false);
      expect(s.error.slice(0, 10)).toBe(REENTRANT);
      expect(await f.as('alice').ownershipOf(runId, r)).toBe(300n);
    });

    async function soldOut(runId: bigint) {
      const tree = treeOf(f, 0, { alice: 1000n });
      await settleAndFinish(f, runId, tree);
      await f.as('alice').claim(runId, 0n, f.address('alice'), 1000n, tree.proof(f.address('alice')));
      await f.as('alice').claimCredentials(runId);
      const { result: listingId } = await f.as('alice').list(runId, 10n, 1000n);
      return listingId;
    }

    it('on buy: the hook can neither buy again nor spend what is still being delivered', async () => {
      const runId = await trainingRun(f, ['alice']);
      const listingId = await soldOut(runId);
      for (const payload of [tok('buy', [listingId, 1n]), tok('spend', [runId, 1n, promptHash('x')])]) {
        const { r, exec, read } = await armed(f.addresses.tokens, payload);
        await exec(f.addresses.tokens, tok('buy', [listingId, 2n]), 2000n);
        const s = await read();
        expect(s.attempted).toBe(true);
        expect(s.reentered).toBe(false);
        expect(s.error.slice(0, 10)).toBe(REENTRANT);
        expect(await f.as('alice').credentialsOf(runId, r)).toBe(2n);
      }
      expect((await f.as('alice').listing(listingId)).amount).toBe(6n);
      expect(await f.as('alice').proceeds(f.address('alice'))).toBe(4000n);
    });

    it('on re-issued credentials and proceeds: the hook cannot pull twice', async () => {
      const runId = 1n;
      const { r, exec, read } = await armed(f.addresses.tokens, tok('claimCredentials', [runId]));
      await trainingRun(f, ['alice']);
      await exec(f.addresses.registry, reg('join', [runId]));
      const tree = treeOf(f, 0, [
        [f.address('alice'), 500n],
        [r, 500n],
      ]);
      await settleAndFinish(f, runId, tree);
      // Claiming ownership mints to r: the armed hook fires there first, with nothing yet to pull.
      await f
        .wallet('mallory')
        .writeContract({ address: r, abi: reentererAbi, functionName: 'arm', args: [f.addresses.tokens, '0x'] })
        .then((hash) => f.publicClient.waitForTransactionReceipt({ hash }));
      await f.as('mallory').claim(runId, 0n, r, 500n, tree.proof(r));
      await f
        .wallet('mallory')
        .writeContract({ address: r, abi: reentererAbi, functionName: 'arm', args: [f.addresses.tokens, tok('claimCredentials', [runId])] })
        .then((hash) => f.publicClient.waitForTransactionReceipt({ hash }));
      await exec(f.addresses.tokens, tok('claimCredentials', [runId]));
      let s = await read();
      expect(s.reentered).toBe(false);
      expect(s.error.slice(0, 10)).toBe(REENTRANT);
      const share = (500n * 100n) / 1111n; // 500 of 1000 + 111 designer units, of 100 credentials
      expect(await f.as('alice').credentialsOf(runId, r)).toBe(share);
      // Sell them, then try to withdraw the proceeds twice from the ETH receive hook.
      await exec(f.addresses.tokens, tok('list', [runId, share, 10n]));
      await f.as('buyer').buy((await f.as('buyer').openListings(runId))[0], share);
      await f
        .wallet('mallory')
        .writeContract({ address: r, abi: reentererAbi, functionName: 'arm', args: [f.addresses.tokens, tok('withdrawProceeds', [])] })
        .then((hash) => f.publicClient.waitForTransactionReceipt({ hash }));
      await exec(f.addresses.tokens, tok('withdrawProceeds', []));
      s = await read();
      expect(s.reentered).toBe(false);
      expect(await f.publicClient.getBalance({ address: r })).toBe(share * 10n);
    });
  });

  describe('replay', () => {
    async function buyerWithCredentials() {
      const runId = await trainingRun(f, ['alice']);
      const tree = treeOf(f, 0, { alice: 1000n });
      await settleAndFinish(f, runId, tree);
      await f.as('alice').claim(runId, 0n, f.address('alice'), 1000n, tree.proof(f.address('alice')));
      await f.as('alice').claimCredentials(runId);
      await f.as('alice').list(runId, 10n, 1n);
      await f.as('buyer').buy((await f.as('buyer').openListings(runId))[0], 10n);
      return runId;
    }

    it('a signed spend works once, on this chain and this contract only, and not after its deadline', async () => {
      const runId = await buyerWithCredentials();
      const now = (await f.publicClient.getBlock()).timestamp;
      const signed = await f.as('buyer').signSpend(runId, 1n, 'hello', now + 600n);
      // Anyone may relay it; the credential comes from the signer.
      const { result: spendId } = await f.as('dave').relaySpend(signed);
      expect((await f.as('dave').spend(spendId)).buyer).toBe(f.address('buyer'));
      expect(await f.as('buyer').credentialsOf(runId, f.address('buyer'))).toBe(9n);
      await reverts(f.as('dave').relaySpend(signed), 'BadSignature');
      // The same signature on another deployment of the contract.
      const other = await deploySwarmContracts(f.publicClient, f.wallet('admin'), { coordinator: f.address('coordinator'), veto: f.address('veto') });
      const fresh = await f.as('buyer').signSpend(runId, 1n, 'hello', now + 600n);
      await reverts(swarmChain(f.publicClient, other, f.wallet('dave')).relaySpend(fresh), 'BadSignature');
      // Signed for another chain id.
      const foreign = await f.wallet('buyer').signTypedData({
        domain: { name: 'SwarmModelTokens', version: '1', chainId: 1, verifyingContract: f.addresses.tokens },
        types: SPEND_TYPES,
        primaryType: 'Spend',
        message: { buyer: f.address('buyer'), runId, amount: 1n, promptHash: promptHash('hello'), nonce: fresh.nonce, deadline: now + 600n },
      });
      await reverts(f.as('dave').relaySpend({ ...fresh, signature: foreign }), 'BadSignature');
      // Someone else's credentials with a signature not theirs.
      await reverts(f.as('mallory').relaySpend({ ...fresh, buyer: f.address('alice') }), 'BadSignature');
      // Still valid here until the deadline passes.
      await f.advance(601);
      await reverts(f.as('dave').relaySpend(fresh), 'Expired');
      expect(await f.as('buyer').credentialsOf(runId, f.address('buyer'))).toBe(9n);
    });

    it('the coordinator’s desk serves a spend only for its run, with the committed prompt, once', async () => {
      const runId = await buyerWithCredentials();
      const { result: spendId } = await f.as('buyer').spendCredentials(runId, 1n, 'To be');
      const id = spendId.toString();
      const desk = chainInferenceDesk(f.as('coordinator'), runId);
      expect(await desk.check('999', 'To be')).toMatch(/does not exist/);
      expect(await desk.check(id, 'Not to be')).toMatch(/does not match/);
      expect(await chainInferenceDesk(f.as('coordinator'), runId + 1n).check(id, 'To be')).toMatch(/paid for run/);
      expect(await desk.check(id, 'To be')).toBeUndefined();
      await desk.served(id, promptHash('the answer'));
      expect(await desk.check(id, 'To be')).toMatch(/already served/);
      await expect(desk.served(id, promptHash('again'))).rejects.toThrow(/AlreadyServed/);
      await expect(chainInferenceDesk(f.as('mallory'), runId).served(id, promptHash('x'))).rejects.toThrow(/AccessControlUnauthorizedAccount/);
    });

    it('a spend receipt is served once; a spend needs credentials', async () => {
      const runId = await buyerWithCredentials();
      const { result: spendId } = await f.as('buyer').spendCredentials(runId, 1n, 'q');
      await f.as('coordinator').markServed(spendId, promptHash('a'));
      await reverts(f.as('coordinator').markServed(spendId, promptHash('a')), 'AlreadyServed');
      await reverts(f.as('coordinator').markServed(spendId + 1n, promptHash('a')), 'UnknownSpend');
      await reverts(f.as('mallory').spendCredentials(runId, 1n, 'free?'), 'ERC1155InsufficientBalance');
      await reverts(f.as('buyer').spendCredentials(runId + 1n, 1n, 'no such run'), 'NotActive');
    });
  });
});
