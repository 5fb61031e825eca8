// The contributor's and the buyer's client layer (shared/chain/owner.ts, market.ts), which the
// dashboard and the `wallet` and `buy` commands share, on a real EVM: saved proofs checked against
// the roots on chain, ownership claimed from them, a credential bought from the cheapest listing.
import { type Hex, parseEther, toHex, verifyMessage } from 'viem';
import { hardhat } from 'viem/chains';
import { localAccountProvider } from '../renderer/wallet/local-account.js';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { topUpFromLocalKey } from '../electron/pages/desktop-account.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ensureCredential } from '../shared/buyer/market.js';
import { claimOwnership, claimStakeShare, holdings, payoutWallet, verifyProofs } from '../shared/chain/owner.js';
import type { EpochTree } from '../shared/ledger/merkle.js';
import { type ChainFixture, NAMES, type Name, WINDOW, chainFixture, treeOf } from './chain-fixture.js';
import { type ProofFile, checkProofsFor, parseProofFile } from '../shared/ledger/proof-file.js';

let f: ChainFixture;
beforeAll(async () => {
  f = await chainFixture();
  await f.saveState();
}, 120_000);
afterAll(() => f?.stop());
beforeEach(() => f.restoreState());

/** The proofs file a peer of `name` keeps (shared/peer/session.ts), from the trees of its epochs. */
function proofsOf(name: Name, runId: bigint, trees: EpochTree[]): ProofFile {
  const account = f.address(name);
  return parseProofFile(
    {
      chainId: f.evm.chainId,
      registry: f.addresses.registry,
      tokens: f.addresses.tokens,
      runId: runId.toString(),
      epochs: trees.map((t, epoch) => ({
        epoch,
        root: t.root,
        total: t.total.toString(),
        account: account.toLowerCase(),
        cumulative: t.units(account)!.toString(),
        proof: t.proof(account),
      })),
    },
    'test proofs',
  );
}

async function openRun(providers: Name[]): Promise<bigint> {
  const { result: runId } = await f.as('designer').openRun({
    stake: parseEther('1'),
    computeTarget: 100n,
    designerBps: 1000,
    credentialSupply: 100n,
    challengeWindow: BigInt(WINDOW),
    modelHash: `0x${'cd'.repeat(32)}`,
  });
  for (const n of providers) await payoutWallet(f.as(n)).joinRun({ chainId: f.evm.chainId, registry: f.addresses.registry, tokens: f.addresses.tokens, runId: runId.toString() });
  await f.as('coordinator').startTraining(runId);
  return runId;
}

async function post(runId: bigint, tree: EpochTree): Promise<void> {
  await f.as('coordinator').postEpoch(runId, tree.root, tree.total);
  await f.advance(WINDOW);
}

describe('contributor', () => {
  it('joins a run once, however often it is asked', async () => {
    const runId = await openRun(['alice']);
    const w = payoutWallet(f.as('alice'));
    await w.joinRun({ chainId: f.evm.chainId, registry: f.addresses.registry, tokens: f.addresses.tokens, runId: runId.toString() });
    expect(await f.as('alice').joined(runId, f.address('alice'))).toBe(true);
    expect((await f.as('alice').run(runId)).providers).toBe(1n);
  });

  it('verifies every saved epoch against the root on chain, with the units of each', async () => {
    const runId = await openRun(['alice', 'bob']);
    const trees = [treeOf(f, 0, { alice: 300n, bob: 100n }), treeOf(f, 1, { alice: 700n, bob: 500n })];
    for (const t of trees) await post(runId, t);
    const checks = await verifyProofs(f.as('bob'), runId, proofsOf('alice', runId, trees));
    expect(checks.map((c) => [c.epoch, c.ok, c.units, c.cumulative])).toEqual([
      [0, true, 300n, 300n],
      [1, true, 400n, 700n],
    ]);
  });

  it('finds a proof that does not lead to the root on chain, and a vetoed root', async () => {
    const runId = await openRun(['alice', 'bob']);
    const trees = [treeOf(f, 0, { alice: 300n, bob: 100n }), treeOf(f, 1, { alice: 700n, bob: 500n })];
    await post(runId, trees[0]);
    await f.as('coordinator').postEpoch(runId, trees[1].root, trees[1].total);
    await f.as('veto').veto(runId, 1n);
    const p = proofsOf('alice', runId, trees);
    p.epochs[0].cumulative = '3000'; // what a coordinator might have told it
    const [inflated, vetoed] = await verifyProofs(f.as('bob'), runId, p);
    expect(inflated.ok).toBe(false);
    expect(inflated.detail).toMatch(/does not lead to the root on chain/);
    expect(vetoed.ok).toBe(false);
    expect(vetoed.detail).toMatch(/vetoed/);
  });

  it('claims ownership from its saved proofs once the run is trained, and not before', async () => {
    const runId = await openRun(['alice', 'bob']);
    const tree = treeOf(f, 0, { alice: 300n, bob: 100n });
    await post(runId, tree);
    const proofs = proofsOf('alice', runId, [tree]);
    await expect(claimOwnership(f.as('alice'), runId, proofs)).rejects.toThrow(/claimable once it is trained/);
    await f.as('coordinator').finishTraining(runId);
    // Anyone may send the claim; ownership goes to the account in the proof.
    await claimOwnership(f.as('bob'), runId, proofs);
    const h = await holdings(f.as('alice'), runId, f.address('alice'));
    expect(h.ownership).toBe(300n);
    expect(h.claimed).toBe(300n);
    expect(h.share).toBeGreaterThan(0);
    await expect(claimOwnership(f.as('alice'), runId, proofs)).rejects.toThrow();
  });

  it('claims ownership from the saved proof of the final root only', async () => {
    const runId = await openRun(['alice', 'bob']);
    const trees = [treeOf(f, 0, { alice: 300n, bob: 100n }), treeOf(f, 1, { alice: 200n, bob: 400n })];
    for (const t of trees) await post(runId, t);
    await f.as('coordinator').finishTraining(runId);
    // Kept only the earlier root's proof: nothing is sent, and it says which root is needed.
    const early = proofsOf('alice', runId, trees);
    early.epochs = early.epochs.slice(0, 1);
    await expect(claimOwnership(f.as('alice'), runId, early)).rejects.toThrow(/final epoch 1/);
    expect(await f.as('alice').claimed(runId, f.address('alice'))).toBe(0n);
    const e = await claimOwnership(f.as('alice'), runId, proofsOf('alice', runId, trees));
    expect(e.epoch).toBe(1);
    expect(await f.as('alice').ownershipOf(runId, f.address('alice'))).toBe(200n);
  });

  it("takes its share of an abandoned run's stake from the root it is paid from, once that is decided", async () => {
    const runId = await openRun(['alice', 'bob']);
    const trees = [treeOf(f, 0, { alice: 300n, bob: 100n }), treeOf(f, 1, { alice: 700n, bob: 500n })];
    await post(runId, trees[0]);
    await f.as('coordinator').postEpoch(runId, trees[1].root, trees[1].total);
    await f.as('designer').abandon(runId);
    // The later root is in its window: the worker is told when to come back, and nothing is sent.
    const proofs = proofsOf('bob', runId, trees);
    await expect(claimStakeShare(f.as('bob'), runId, proofs)).rejects.toThrow(/decided when epoch 1's challenge window ends/);
    expect(await f.as('bob').withdrawable(f.address('bob'))).toBe(0n);
    await f.advance(WINDOW);
    expect((await claimStakeShare(f.as('bob'), runId, proofs)).epoch).toBe(1);
    expect(await f.as('bob').withdrawable(f.address('bob'))).toBe((parseEther('1') * 500n) / 1200n);
    await expect(claimStakeShare(f.as('bob'), runId, proofs)).rejects.toThrow(/NothingToClaim/);
    expect(await f.as('designer').withdrawable(f.address('designer'))).toBe(0n);
  });

  it("says so when an abandoned run's stake went back to its designer", async () => {
    const runId = await openRun(['alice']);
    const tree = treeOf(f, 0, { alice: 300n });
    await f.as('coordinator').postEpoch(runId, tree.root, tree.total);
    await f.as('coordinator').abandon(runId);
    await f.as('veto').veto(runId, 0n);
    await f.advance(WINDOW);
    await expect(claimStakeShare(f.as('alice'), runId, proofsOf('alice', runId, [tree]))).rejects.toThrow(/went back to the designer/);
    await f.as('designer').refundStake(runId);
    expect(await f.as('designer').withdrawable(f.address('designer'))).toBe(parseEther('1'));
  });

  it('refuses proofs kept for another run or chain before sending anything', () => {
    const p = proofsOf('alice', 7n, [treeOf(f, 0, { alice: 1n })]);
    expect(() => checkProofsFor(p, 'file.json', { chainId: f.evm.chainId, registry: f.addresses.registry, runId: 8n })).toThrow(/proofs for run 7/);
    expect(() => checkProofsFor(p, 'file.json', { chainId: 1, registry: f.addresses.registry, runId: 7n })).toThrow(/not for run 7 on chain 1/);
    expect(() => parseProofFile({ chainId: 1, epochs: [] }, 'junk.json')).toThrow(/junk.json is not a proofs file/);
  });
});

describe('desktop app on a local chain', () => {
  it("tops its fresh key up with gas from the launcher's test key, once", async () => {
    const fresh = privateKeyToAccount(generatePrivateKey()).address;
    const c = { rpcUrl: f.evm.rpcUrl, chainId: f.evm.chainId, registry: f.addresses.registry, tokens: f.addresses.tokens, runId: '1' };
    await topUpFromLocalKey(c, f.evm.keys[NAMES.indexOf('carol')], fresh);
    expect(await f.publicClient.getBalance({ address: fresh })).toBe(parseEther('0.5'));
    await topUpFromLocalKey(c, f.evm.keys[NAMES.indexOf('carol')], fresh);
    expect(await f.publicClient.getBalance({ address: fresh })).toBe(parseEther('0.5'));
  });
});

describe("a tab's local dev account wallet (renderer/wallet/local-account.ts)", () => {
  // The page's storage, where the wallet keeps that its user connected it (a tab has localStorage; Node has not).
  const kept = new Map<string, string>();
  Object.assign(globalThis, {
    localStorage: { getItem: (k: string) => kept.get(k) ?? null, setItem: (k: string, v: string) => kept.set(k, v), removeItem: (k: string) => kept.delete(k) },
  });
  const wallet = () => localAccountProvider(f.address('carol'), { ...hardhat, id: f.evm.chainId, rpcUrls: { default: { http: [f.evm.rpcUrl] } } });

  it('shows its account only once connected, and has the node sign as it, never as another account', async () => {
    const w = wallet();
    expect(await w.request({ method: 'eth_accounts' })).toEqual([]);
    expect(await w.request({ method: 'eth_requestAccounts' })).toEqual([f.address('carol')]);
    expect(await w.request({ method: 'eth_accounts' })).toEqual([f.address('carol')]);
    const message = toHex('join run 7');
    const signature = (await w.request({ method: 'personal_sign', params: [message, f.address('carol')] })) as Hex;
    expect(await verifyMessage({ address: f.address('carol'), message: { raw: message }, signature })).toBe(true);
    await expect(w.request({ method: 'personal_sign', params: [message, f.address('alice')] })).rejects.toThrow(/signs only as 0x/);
    await expect(w.request({ method: 'eth_sendTransaction', params: [{ from: f.address('alice'), to: f.address('bob'), value: '0x1' }] })).rejects.toThrow(/signs only as/);
    await expect(w.request({ method: 'eth_signTypedData_v4', params: [f.address('carol'), '{}'] } as never)).rejects.toThrow(/not offered/);
  });

  it('sends a transaction the node signs for its account', async () => {
    const before = await f.publicClient.getBalance({ address: f.address('bob') });
    const hash = (await wallet().request({ method: 'eth_sendTransaction', params: [{ from: f.address('carol'), to: f.address('bob'), value: toHex(parseEther('0.25')) }] })) as Hex;
    const receipt = await f.publicClient.waitForTransactionReceipt({ hash });
    expect(receipt.from.toLowerCase()).toBe(f.address('carol').toLowerCase());
    expect(await f.publicClient.getBalance({ address: f.address('bob') })).toBe(before + parseEther('0.25'));
  });
});

describe('buyer', () => {
  it('buys one credential from the cheapest listing, within its price limit, only when it holds none', async () => {
    const runId = await openRun(['alice', 'bob']);
    const tree = treeOf(f, 0, { alice: 300n, bob: 100n });
    await post(runId, tree);
    await f.as('coordinator').finishTraining(runId);
    for (const n of ['alice', 'bob'] as const) {
      await claimOwnership(f.as(n), runId, proofsOf(n, runId, [tree]));
      await f.as(n).claimCredentials(runId);
    }
    await f.as('alice').list(runId, 5n, parseEther('0.003'));
    await f.as('bob').list(runId, 5n, parseEther('0.002'));
    const buyer = f.as('buyer');
    const me = f.address('buyer');
    await expect(ensureCredential(buyer, runId, me, parseEther('0.001'))).rejects.toThrow(/cheapest credential costs 0.002 ETH/);
    expect(await ensureCredential(buyer, runId, me, parseEther('0.01'))).toBe(parseEther('0.002'));
    expect(await buyer.credentialsOf(runId, me)).toBe(1n);
    expect(await ensureCredential(buyer, runId, me, parseEther('0.01'))).toBe(0n);
    expect(await buyer.credentialsOf(runId, me)).toBe(1n);
  });

  it('a spend re-issues one credential to the owners: each accrues its share, fraction included', async () => {
    const runId = await openRun(['alice', 'bob']);
    const tree = treeOf(f, 0, { alice: 300n, bob: 100n });
    await post(runId, tree);
    await f.as('coordinator').finishTraining(runId);
    for (const n of ['alice', 'bob'] as const) await claimOwnership(f.as(n), runId, proofsOf(n, runId, [tree]));
    await f.as('designer').claimDesignerShare(runId);
    await f.as('alice').claimCredentials(runId);
    const owners = [f.address('alice'), f.address('bob'), f.address('designer')];
    const before = await Promise.all(owners.map((a) => holdings(f.as('bob'), runId, a)));
    await f.as('alice').list(runId, 1n, parseEther('0.001'));
    await ensureCredential(f.as('buyer'), runId, f.address('buyer'), parseEther('1'));
    await f.as('buyer').spendCredentials(runId, 1n, 'ROMEO:');
    const after = await Promise.all(owners.map((a) => holdings(f.as('bob'), runId, a)));
    const gained = after.map((h, i) => h.accrued - before[i].accrued);
    const ONE = 10n ** 18n;
    // Each owner's share of one credential, to within the contract's rounding (at most 1e-18 per unit held).
    after.forEach((h, i) => {
      expect(gained[i] * h.totalOwnership).toBeLessThanOrEqual(ONE * h.ownership);
      expect(gained[i] * h.totalOwnership).toBeGreaterThan(ONE * h.ownership - h.totalOwnership * h.ownership);
      expect(h.pending).toBe(h.accrued / ONE);
    });
    expect(gained.reduce((a, b) => a + b, 0n)).toBeLessThanOrEqual(ONE);
  });

  it('says so when nothing is for sale', async () => {
    const runId = await openRun(['alice']);
    await expect(ensureCredential(f.as('buyer'), runId, f.address('buyer'), parseEther('1'))).rejects.toThrow(/none is listed for sale/);
  });
});
