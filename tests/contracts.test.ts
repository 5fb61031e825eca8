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

async function reverts(p: Promise<unknown>, errorName: string, args?: readonly unknown[]) {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e, `expected a revert with ${errorName}`).toBeInstanceOf(ChainRevert);
  expect((e as ChainRevert).errorName).toBe(errorName);
  if (args) expect((e as ChainRevert).args).toEqual(args);
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

    // Claims: from the final root only, always to the leaf's account, whoever sends the transaction.
    await reverts(f.as('alice').claim(runId, 0n, f.address('alice'), 300n, e0.proof(f.address('alice'))), 'EpochNotClaimable');
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

describe('run listing', () => {
  const CORPUS = `0x${'cd'.repeat(32)}` as const;

  it('the designer names the corpus once while the run is open; the coordinator announces where it is, again when it moves, in wss:// only', async () => {
    const { result: runId } = await f
      .as('designer')
      .openRun({ stake: ACC, computeTarget: 1000n, designerBps: 1000, credentialSupply: 100n, challengeWindow: BigInt(WINDOW), modelHash: `0x${'ab'.repeat(32)}` });
    expect(await f.as('alice').runListing(runId)).toEqual({ coordinator: '', corpusUrl: '', corpusHash: `0x${'0'.repeat(64)}` });
    await reverts(f.as('mallory').listCorpus(runId, 'https://evil.example/x.txt', CORPUS), 'NotDesigner', [runId]);
    await reverts(f.as('designer').listCorpus(runId, 'https://data.example/corpus.txt', `0x${'0'.repeat(64)}`), 'BadParameter', ['corpusHash']);
    await reverts(f.as('designer').listCorpus(runId, '', CORPUS), 'BadParameter', ['corpusUrl']);
    await reverts(f.as('designer').listCorpus(runId, `https://data.example/${'x'.repeat(250)}`, CORPUS), 'BadParameter', ['corpusUrl']);
    await f.as('designer').listCorpus(runId, 'https://data.example/corpus.txt', CORPUS);
    await reverts(f.as('designer').listCorpus(runId, 'https://data.example/other.txt', `0x${'ef'.repeat(32)}`), 'BadParameter', ['corpus already listed']);

    await reverts(f.as('mallory').announceCoordinator(runId, 'wss://evil.example:8787'), 'AccessControlUnauthorizedAccount');
    for (const bad of ['ws://coordinator.example:8787', 'ws://127.0.0.1.example:1', 'ws://127.0.0.1:', 'wss://', 'https://coordinator.example', `wss://${'c'.repeat(251)}`]) {
      await reverts(f.as('coordinator').announceCoordinator(runId, bad), 'BadParameter', ['url']);
    }
    await f.as('coordinator').announceCoordinator(runId, 'ws://127.0.0.1:8787');
    await f.as('coordinator').announceCoordinator(runId, 'wss://coordinator.example:8787');
    await f.as('alice').join(runId);
    await f.as('coordinator').startTraining(runId);
    // The corpus is fixed once training starts; the coordinator may still move.
    await f.as('coordinator').announceCoordinator(runId, 'wss://moved.example:443');
    expect(await f.as('alice').runListing(runId)).toEqual({ coordinator: 'wss://moved.example:443', corpusUrl: 'https://data.example/corpus.txt', corpusHash: CORPUS });
    const announced = await f.publicClient.getContractEvents({ address: f.addresses.registry, abi: runRegistryAbi, eventName: 'CoordinatorAnnounced', fromBlock: 0n });
    expect(announced.map((e) => e.args.url)).toEqual(['ws://127.0.0.1:8787', 'wss://coordinator.example:8787', 'wss://moved.example:443']);
  });

  it('a run that is not open takes no corpus; an abandoned one no announcement; an unknown one neither', async () => {
    const runId = await trainingRun(f, ['alice']);
    await reverts(f.as('designer').listCorpus(runId, 'https://data.example/corpus.txt', CORPUS), 'WrongState');
    await f.as('designer').abandon(runId);
    await reverts(f.as('coordinator').announceCoordinator(runId, 'wss://coordinator.example'), 'WrongState');
    await reverts(f.as('coordinator').announceCoordinator(99n, 'wss://coordinator.example'), 'UnknownRun', [99n]);
    await reverts(f.as('designer').listCorpus(99n, 'https://data.example/corpus.txt', CORPUS), 'UnknownRun', [99n]);
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
    await f.as('designer').abandon(runId);
    expect(await f.as('designer').withdrawable(f.address('designer'))).toBe(0n);
    expect(await f.as('alice').stakeOutcome(runId)).toEqual({ to: 'contributors', epoch: 0n });
    for (const n of ['alice', 'bob', 'carol'] as const) await f.as('dave').claimStakeShare(runId, f.address(n), 1n, tree.proof(f.address(n)));
    const third = 10n ** 18n / 3n;
    for (const n of ['alice', 'bob', 'carol'] as const) expect(await f.as(n).withdrawable(f.address(n))).toBe(third);
    // Twice for one account, or with an amount the root does not hold.
    await reverts(f.as('alice').claimStakeShare(runId, f.address('alice'), 1n, tree.proof(f.address('alice'))), 'NothingToClaim');
    await reverts(f.as('alice').claimStakeShare(runId, f.address('alice'), 10n, tree.proof(f.address('alice'))), 'InvalidProof');
    await reverts(f.as('designer').refundStake(runId), 'NothingToClaim');
    // Paid out never exceeds the stake (rounding leaves at most a wei per contributor).
    expect(3n * third <= 10n ** 18n).toBe(true);
    expect((await f.as('alice').run(runId)).stakePaid).toBe(3n * third);
  });

  it('a root still in its window when the run is abandoned pays its contributors once it settles, or the last settled one if vetoed', async () => {
    for (const vetoLater of [false, true]) {
      await f.restoreState();
      const runId = await trainingRun(f, ['alice', 'bob', 'carol']);
      const tree = treeOf(f, 0, { alice: 1n, bob: 1n, carol: 1n });
      await f.as('coordinator').postEpoch(runId, tree.root, tree.total);
      await f.advance(WINDOW);
      const later = treeOf(f, 1, { alice: 10n, bob: 1n, carol: 1n });
      await f.as('coordinator').postEpoch(runId, later.root, later.total);
      await f.as('designer').abandon(runId);
      // Nothing is paid while the later root may still be vetoed, and no root can be added.
      const outcome = await f.as('alice').stakeOutcome(runId);
      expect(outcome).toEqual({ to: 'undecided', epoch: 1n, decidedAt: (await f.as('alice').epoch(runId, 1n)).claimableAt });
      await reverts(f.as('alice').claimStakeShare(runId, f.address('alice'), 1n, tree.proof(f.address('alice'))), 'StakeUndecided');
      await reverts(f.as('alice').claimStakeShare(runId, f.address('alice'), 10n, later.proof(f.address('alice'))), 'StakeUndecided');
      await reverts(f.as('coordinator').postEpoch(runId, later.root, later.total), 'WrongState');
      if (vetoLater) await f.as('veto').veto(runId, 1n);
      await f.advance(WINDOW);
      const paying = vetoLater ? tree : later;
      const stale = vetoLater ? later : tree;
      expect(await f.as('alice').stakeOutcome(runId)).toEqual({ to: 'contributors', epoch: vetoLater ? 0n : 1n });
      await reverts(f.as('alice').claimStakeShare(runId, f.address('alice'), stale.units(f.address('alice'))!, stale.proof(f.address('alice'))), 'InvalidProof');
      for (const n of ['alice', 'bob', 'carol'] as const) await f.as('dave').claimStakeShare(runId, f.address(n), paying.units(f.address(n))!, paying.proof(f.address(n)));
      const share = (n: 'alice' | 'bob' | 'carol') => (10n ** 18n * paying.units(f.address(n))!) / paying.total;
      for (const n of ['alice', 'bob', 'carol'] as const) expect(await f.as(n).withdrawable(f.address(n)), n).toBe(share(n));
      expect(await f.as('designer').withdrawable(f.address('designer'))).toBe(0n);
    }
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

  // The attack found from outside: the designer abandons while its only root is in its window, is
  // refunded, and its second account is paid the same stake once the root settles.
  for (const by of ['designer', 'coordinator'] as const) {
    it(`abandoned by the ${by} while a root is in its window, the stake is paid once, to the root's contributors (other runs' stakes stay whole)`, async () => {
      const held = () => f.publicClient.getBalance({ address: f.addresses.registry });
      const { result: honest } = await f.as('dave').openRun({
        stake: parseEther('5'),
        computeTarget: 1000n,
        designerBps: 0,
        credentialSupply: 100n,
        challengeWindow: BigInt(WINDOW),
        modelHash: `0x${'11'.repeat(32)}`,
      });
      const runId = await trainingRun(f, ['mallory'], { stake: parseEther('1') }); // mallory: the designer's second account
      const tree = treeOf(f, 0, { mallory: 100n });
      await f.as('coordinator').postEpoch(runId, tree.root, tree.total);
      await f.as(by).abandon(runId);
      // While the root may still settle, the stake is nobody's to take.
      expect(await f.as('designer').withdrawable(f.address('designer'))).toBe(0n);
      await reverts(f.as('designer').withdraw(), 'NothingToClaim');
      await reverts(f.as('designer').refundStake(runId), 'StakeUndecided');
      await reverts(f.as('mallory').claimStakeShare(runId, f.address('mallory'), 100n, tree.proof(f.address('mallory'))), 'StakeUndecided');
      await f.advance(WINDOW);
      // The root settled: its contributors did the work and take the stake; the designer gets nothing.
      await f.as('mallory').claimStakeShare(runId, f.address('mallory'), 100n, tree.proof(f.address('mallory')));
      await reverts(f.as('designer').refundStake(runId), 'NothingToClaim');
      await reverts(f.as('mallory').claimStakeShare(runId, f.address('mallory'), 100n, tree.proof(f.address('mallory'))), 'NothingToClaim');
      await f.as('mallory').withdraw();
      await reverts(f.as('designer').withdraw(), 'NothingToClaim');
      expect(await held()).toBe(parseEther('5'));
      // The honest designer's 5 ETH are all there.
      await f.as('dave').abandon(honest);
      expect(await f.as('dave').withdrawable(f.address('dave'))).toBe(parseEther('5'));
      await f.as('dave').withdraw();
      expect(await held()).toBe(0n);
    });
  }

  it('goes back to the designer when the root in its window at abandonment is vetoed, once that window is over', async () => {
    const runId = await trainingRun(f, ['alice']);
    const tree = treeOf(f, 0, { alice: 100n });
    await f.as('coordinator').postEpoch(runId, tree.root, tree.total);
    await f.as('designer').abandon(runId);
    await f.as('veto').veto(runId, 0n);
    await reverts(f.as('dave').refundStake(runId), 'StakeUndecided');
    await f.advance(WINDOW);
    expect(await f.as('alice').stakeOutcome(runId)).toEqual({ to: 'designer', epoch: 0n });
    await reverts(f.as('alice').claimStakeShare(runId, f.address('alice'), 100n, tree.proof(f.address('alice'))), 'NothingToClaim');
    await f.as('dave').refundStake(runId); // anyone may send it; the designer is credited
    await reverts(f.as('dave').refundStake(runId), 'NothingToClaim');
    expect(await f.as('designer').withdrawable(f.address('designer'))).toBe(10n ** 18n);
    expect(await f.as('dave').withdrawable(f.address('dave'))).toBe(0n);
    expect((await f.as('alice').run(runId)).stakePaid).toBe(10n ** 18n);
  });
});

describe('market', () => {
  it('listing and cancelling in a loop leaves the client one bounded read of the open listings', async () => {
    const runId = await trainingRun(f, ['alice']);
    const tree = treeOf(f, 0, { alice: 1000n });
    await settleAndFinish(f, runId, tree);
    await f.as('alice').claim(runId, 0n, f.address('alice'), 1000n, tree.proof(f.address('alice')));
    const { result: held } = await f.as('alice').claimCredentials(runId);
    for (let i = 0; i < 25; i++) {
      const { result } = await f.as('alice').list(runId, 1n, 1n);
      await f.as('alice').cancelListing(result);
    }
    const { result: soldOut } = await f.as('alice').list(runId, 2n, 5n);
    const { result: a } = await f.as('alice').list(runId, 3n, 7n);
    const { result: b } = await f.as('alice').list(runId, 4n, 3n);
    await f.as('buyer').buy(await f.as('buyer').listing(soldOut), 2n);
    await reverts(f.as('alice').cancelListing(soldOut), 'ListingClosed');
    await reverts(f.as('alice').cancelListing(1n), 'ListingClosed');
    expect(await f.as('alice').openListingCount(runId)).toBe(2n);

    // The client reads the open listings in one call, whatever the history.
    let reads = 0;
    const counting = new Proxy(f.publicClient, {
      get(target, key) {
        const v = Reflect.get(target, key);
        if (key !== 'readContract') return v;
        return (...args: unknown[]) => {
          reads++;
          return v.apply(target, args);
        };
      },
    });
    const c = swarmChain(counting, f.addresses);
    const open = await c.openListings(runId);
    expect(reads).toBe(1);
    expect(open.map((l) => [l.listingId, l.seller, l.runId, l.amount, l.price])).toEqual([
      [b, f.address('alice'), runId, 4n, 3n],
      [a, f.address('alice'), runId, 3n, 7n],
    ]);
    expect(await c.openListings(runId, 1)).toHaveLength(1);
    expect(await c.openListings(runId + 1n)).toEqual([]);
    const page = (offset: bigint, limit: bigint) =>
      f.publicClient.readContract({ address: f.addresses.tokens, abi: modelTokensAbi, functionName: 'openListings', args: [runId, offset, limit] });
    expect((await page(1n, 10n))[0]).toHaveLength(1);
    expect((await page(5n, 10n))[0]).toEqual([]);
    // Bought out or cancelled, a listing leaves the set; every escrowed credential came back or was sold.
    await f.as('buyer').buy(open[0], 4n);
    await f.as('alice').cancelListing(a);
    expect(await c.openListings(runId)).toEqual([]);
    expect(await f.as('alice').credentialsOf(runId, f.address('alice'))).toBe(held - 6n);
    expect(await f.as('alice').credentialsOf(runId, f.address('buyer'))).toBe(6n);
    expect(await f.as('alice').proceeds(f.address('alice'))).toBe(2n * 5n + 4n * 3n);
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

  it('ownership is claimed from the final root only: an earlier root that credited an account more pays nothing', async () => {
    const runId = await trainingRun(f, ['alice', 'mallory']);
    const [alice, mallory] = [f.address('alice'), f.address('mallory')];
    const early = treeOf(f, 0, { alice: 500n, mallory: 5000n });
    await f.as('coordinator').postEpoch(runId, early.root, early.total);
    await f.advance(WINDOW); // settled: nobody vetoed it
    // The ledger is corrected: the total does not shrink, but mallory's units do.
    const final = treeOf(f, 1, { alice: 5000n, mallory: 500n });
    await settleAndFinish(f, runId, final);
    await reverts(f.as('mallory').claim(runId, 0n, mallory, 5000n, early.proof(mallory)), 'EpochNotClaimable');
    await f.as('mallory').claim(runId, 1n, mallory, 500n, final.proof(mallory));
    await reverts(f.as('mallory').claim(runId, 0n, mallory, 5000n, early.proof(mallory)), 'EpochNotClaimable');
    await reverts(f.as('mallory').claim(runId, 1n, mallory, 500n, final.proof(mallory)), 'NothingToClaim');
    await f.as('alice').claim(runId, 1n, alice, 5000n, final.proof(alice));
    await f.as('designer').claimDesignerShare(runId);
    expect(await f.as('alice').ownershipOf(runId, mallory)).toBe(500n);
    expect(await f.as('alice').ownershipOf(runId, alice)).toBe(5000n);
    expect(await f.as('alice').supply(ownershipId(runId))).toBe(5500n + (5500n * 1000n) / 9000n);
  });

  it('a challenge window under the deployment’s minimum is refused; at the minimum a root can be vetoed in the next block', async () => {
    const p = { stake: 1n, computeTarget: 1000n, designerBps: 0, credentialSupply: 1n, challengeWindow: 0n, modelHash: `0x${'00'.repeat(32)}` as const };
    for (const w of [0n, 1n]) await reverts(f.as('designer').openRun({ ...p, challengeWindow: w }), 'BadParameter', ['challengeWindow']);
    const min = await f.as('alice').minChallengeWindow();
    expect(min).toBe(2n); // the local chain's (shared/chain/deploy.ts)
    p.challengeWindow = min;
    // No deployment may set a minimum under 2 s.
    const roles = { coordinator: f.address('coordinator'), veto: f.address('veto') };
    for (const m of [0n, 1n]) await expect(deploySwarmContracts(f.publicClient, f.wallet('admin'), roles, { minChallengeWindow: m })).rejects.toThrow();
    const strict = await deploySwarmContracts(f.publicClient, f.wallet('admin'), roles, { minChallengeWindow: 3600n });
    await reverts(swarmChain(f.publicClient, strict, f.wallet('designer')).openRun({ ...p, challengeWindow: 3599n }), 'BadParameter', ['challengeWindow']);
    // At the minimum, the block after the root's can still veto it.
    const { result: runId } = await f.as('designer').openRun(p);
    await f.as('alice').join(runId);
    await f.as('coordinator').startTraining(runId);
    await f.testClient.setIntervalMining({ interval: 0 }); // no empty block in between
    try {
      const tree = treeOf(f, 0, { alice: 1000n });
      const { receipt } = await f.as('coordinator').postEpoch(runId, tree.root, tree.total);
      const posted = (await f.publicClient.getBlock({ blockNumber: receipt.blockNumber })).timestamp;
      await f.testClient.setNextBlockTimestamp({ timestamp: posted + min - 1n });
      await f.as('veto').veto(runId, 0n);
      expect((await f.as('alice').epoch(runId, 0n)).vetoed).toBe(true);
    } finally {
      await f.testClient.setIntervalMining({ interval: 1000 });
    }
  });

  it('credential supplies and units past their maximum are refused; the maximum supply activates and re-issues without overflow', async () => {
    const MAX = 2n ** 128n - 1n;
    const p = { stake: 1n, computeTarget: 1000n, designerBps: 1000, credentialSupply: 1n, challengeWindow: BigInt(WINDOW), modelHash: `0x${'00'.repeat(32)}` as const };
    // Unbounded, a supply of 2^200 made activation overflow: such a run could never finish.
    for (const credentialSupply of [2n ** 200n, MAX + 1n]) await reverts(f.as('designer').openRun({ ...p, credentialSupply }), 'BadParameter', ['credentialSupply']);
    await reverts(f.as('designer').openRun({ ...p, computeTarget: MAX + 1n }), 'BadParameter', ['computeTarget']);
    const registry = { address: f.addresses.registry, abi: runRegistryAbi } as const;
    expect(await f.publicClient.readContract({ ...registry, functionName: 'MAX_CREDENTIAL_SUPPLY' })).toBe(MAX);
    expect(await f.publicClient.readContract({ ...registry, functionName: 'MAX_UNITS' })).toBe(MAX);
    expect(await f.publicClient.readContract({ address: f.addresses.tokens, abi: modelTokensAbi, functionName: 'MAX_CREDENTIAL_SUPPLY' })).toBe(MAX);
    const runId = await trainingRun(f, ['alice', 'bob'], { credentialSupply: MAX, computeTarget: MAX });
    const big = treeOf(f, 0, { alice: MAX - 1000n, bob: 1001n });
    await reverts(f.as('coordinator').postEpoch(runId, big.root, big.total), 'BadParameter', ['total']);
    const tree = treeOf(f, 0, { alice: MAX - 1000n, bob: 1000n });
    await settleAndFinish(f, runId, tree);
    for (const n of ['alice', 'bob'] as const) await f.as(n).claim(runId, 0n, f.address(n), tree.units(f.address(n))!, tree.proof(f.address(n)));
    await f.as('designer').claimDesignerShare(runId);
    const total = MAX + (MAX * 1000n) / 9000n;
    // Rounding never pays more than the exact share; each re-issue loses an owner under 1e-18
    // credential per unit held (the accumulator's resolution).
    const near = (got: bigint, exact: bigint, units: bigint, reissues: bigint) =>
      expect(got <= exact && got >= exact - (units * reissues) / ACC - 1n, `${got} vs exact ${exact}`).toBe(true);
    const { result: pulled } = await f.as('alice').claimCredentials(runId);
    near(pulled, ((MAX - 1000n) * MAX) / total, MAX - 1000n, 1n);
    await f.as('alice').spendCredentials(runId, pulled, 'all of it');
    near(await f.as('bob').pendingCredentials(runId, f.address('bob')), (1000n * (MAX + pulled)) / total, 1000n, 2n);
    expect(await f.as('bob').supply(credentialId(runId))).toBe(MAX);
    expect(await sumBalances(credentialId(runId))).toBe(MAX);
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
    const p = { stake: 1n, computeTarget: 1n, designerBps: 0, credentialSupply: 1n, challengeWindow: BigInt(WINDOW), modelHash: `0x${'00'.repeat(32)}` as const };
    await f.as('designer').openRun(p);
    await reverts(f.as('designer').openRun({ ...p, stake: 0n }), 'BadParameter', ['stake']);
    await reverts(f.as('designer').openRun({ ...p, designerBps: 2001 }), 'BadParameter', ['designerBps']);
    await reverts(f.as('designer').openRun({ ...p, computeTarget: 0n }), 'BadParameter', ['computeTarget']);
    await reverts(f.as('designer').openRun({ ...p, credentialSupply: 0n }), 'BadParameter', ['credentialSupply']);
    await reverts(f.as('designer').openRun({ ...p, challengeWindow: 31n * 86400n }), 'BadParameter', ['challengeWindow']);
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

    it('on ownership mint: the hook cannot re-enter the tokens contract', async () => {
      const runId = 1n;
      const { r, exec, read } = await armed(f.addresses.tokens, tok('claimCredentials', [runId]));
      await trainingRun(f, ['alice']);
      await exec(f.addresses.registry, reg('join', [runId]));
      const tree = treeOf(f, 0, [
        [f.address('alice'), 500n],
        [r, 500n],
      ]);
      await settleAndFinish(f, runId, tree);
      await f.as('mallory').claim(runId, 0n, r, 500n, tree.proof(r));
      const s = await read();
      expect(s.attempted).toBe(true);
      expect(s.reentered).toBe(false);
      expect(s.error.slice(0, 10)).toBe(REENTRANT);
      expect(await f.as('alice').ownershipOf(runId, r)).toBe(500n);
      expect(await f.as('alice').credentialsOf(runId, r)).toBe(0n);
      // What it is owed waits for it outside the hook.
      await exec(f.addresses.tokens, tok('claimCredentials', [runId]));
      expect(await f.as('alice').credentialsOf(runId, r)).toBe((500n * 100n) / 1111n);
    });

    it('on a stake withdrawal: the ETH hook cannot withdraw twice', async () => {
      const runId = 1n;
      const { r, exec, read } = await armed(f.addresses.registry, reg('withdraw', []));
      await trainingRun(f, ['alice']);
      await exec(f.addresses.registry, reg('join', [runId]));
      const tree = treeOf(f, 0, [
        [f.address('alice'), 1n],
        [r, 1n],
      ]);
      await f.as('coordinator').postEpoch(runId, tree.root, tree.total);
      await f.advance(WINDOW);
      await f.as('designer').abandon(runId);
      for (const a of [f.address('alice'), r]) await f.as('mallory').claimStakeShare(runId, a, 1n, tree.proof(a));
      await exec(f.addresses.registry, reg('withdraw', []));
      const s = await read();
      expect(s.attempted).toBe(true);
      expect(s.reentered).toBe(false);
      expect(s.error.slice(0, 10)).toBe(REENTRANT);
      expect(await f.publicClient.getBalance({ address: r })).toBe(10n ** 18n / 2n);
      expect(await f.publicClient.getBalance({ address: f.addresses.registry })).toBe(10n ** 18n / 2n); // alice's, still to withdraw
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

    it('a signed spend can be revoked before its deadline: its signer burns the nonce', async () => {
      const runId = await buyerWithCredentials();
      const buyer = f.address('buyer');
      const now = (await f.publicClient.getBlock()).timestamp;
      const signed = await f.as('buyer').signSpend(runId, 1n, 'hello', now + 600n);
      // Anyone else burns only their own nonce.
      await f.as('mallory').invalidateNonce();
      expect(await f.as('buyer').nonce(buyer)).toBe(signed.nonce);
      const { result: burnt } = await f.as('buyer').invalidateNonce();
      expect(burnt).toBe(signed.nonce);
      await reverts(f.as('dave').relaySpend(signed), 'BadSignature');
      expect(await f.as('buyer').credentialsOf(runId, buyer)).toBe(10n);
      // A new signature carries the next nonce and works, once.
      const fresh = await f.as('buyer').signSpend(runId, 1n, 'hello', now + 600n);
      expect(fresh.nonce).toBe(signed.nonce + 1n);
      await f.as('dave').relaySpend(fresh);
      await reverts(f.as('dave').relaySpend(fresh), 'BadSignature');
      expect(await f.as('buyer').credentialsOf(runId, buyer)).toBe(9n);
      const names = (await f.as('alice').events()).map((e) => (e as { eventName?: string }).eventName);
      expect(names.filter((n) => n === 'NonceInvalidated')).toHaveLength(2);
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
