// `npm run bench:gas`: gas of every step of a run's lifecycle on the local EVM, with a realistic
// tree (1024 contributors, so a claim carries a 10-hash proof). Writes bench/results/gas.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createPublicClient, createTestClient, createWalletClient, http, parseEther, zeroHash } from 'viem';
import { startLocalEvm } from '../contracts/local-evm.js';
import { type Sent, swarmChain } from '../shared/chain/client.js';
import { chainOf } from '../shared/chain/config.js';
import { deploySwarmContracts } from '../shared/chain/deploy.js';
import { modelTokensAbi } from '../shared/chain/generated/ModelTokens.js';
import { epochTree } from '../shared/ledger/merkle.js';

const CONTRIBUTORS = 1024;
const WINDOW = 3600n;

async function main(): Promise<void> {
  const evm = await startLocalEvm({ accounts: 8 });
  try {
    const chain = chainOf(evm);
    const transport = http(evm.rpcUrl);
    const publicClient = createPublicClient({ chain, transport, pollingInterval: 50 });
    const wallet = (i: number) => createWalletClient({ account: evm.accounts[i], chain, transport });
    const addresses = await deploySwarmContracts(publicClient, wallet(0), { coordinator: evm.accounts[1].address, veto: evm.accounts[2].address });
    const as = (i: number) => swarmChain(publicClient, addresses, wallet(i));
    const gas: Record<string, number> = {};
    const note = async <T>(name: string, p: Promise<Sent<T>>): Promise<T> => {
      const r = await p;
      gas[name] = Number(r.receipt.gasUsed);
      return r.result;
    };
    const [coordinator, designer, buyer, alice, bob] = [as(1), as(3), as(4), as(5), as(6)];
    const runId = await note(
      'openRun',
      designer.openRun({ stake: parseEther('1'), computeTarget: 1n, designerBps: 1000, credentialSupply: 1000n, challengeWindow: WINDOW, modelHash: zeroHash }),
    );
    await note('listCorpus (a 46-byte URL)', designer.listCorpus(runId, 'https://data.example/swarm/tinyshakespeare.txt', `0x${'cd'.repeat(32)}`));
    await note('announce (a 34-byte wss:// URL)', coordinator.announceCoordinator(runId, 'wss://coordinator.example.org:8787'));
    await note('announce again (the coordinator moved)', coordinator.announceCoordinator(runId, 'wss://moved.example.org:8787/swarm'));
    await note('join', alice.join(runId));
    await bob.join(runId);
    await note('startTraining', coordinator.startTraining(runId));
    const others = Array.from({ length: CONTRIBUTORS - 2 }, (_, i) => ({ account: `0x${(i + 1).toString(16).padStart(40, '0')}` as `0x${string}`, units: BigInt(1000 + i) }));
    const cumulative = [{ account: alice.account!, units: 50_000n }, { account: bob.account!, units: 30_000n }, ...others];
    const tree = epochTree({ epoch: 0, cumulative, total: cumulative.reduce((s, c) => s + c.units, 0n) });
    await note('postEpoch', coordinator.postEpoch(runId, tree.root, tree.total));
    // The challenge window passes on the chain's clock.
    const testClient = createTestClient({ mode: 'hardhat', chain, transport });
    await testClient.increaseTime({ seconds: Number(WINDOW) });
    await testClient.mine({ blocks: 1 });
    await note('finishTraining (activates credentials)', coordinator.finishTraining(runId));
    await note(`claim ownership (proof of ${tree.proof(alice.account!).length} hashes)`, alice.claim(runId, 0n, alice.account!, 50_000n, tree.proof(alice.account!)));
    await bob.claim(runId, 0n, bob.account!, 30_000n, tree.proof(bob.account!));
    await note('claimDesignerShare', designer.claimDesignerShare(runId));
    await note('claimCredentials', alice.claimCredentials(runId));
    const listingId = await note('list', alice.list(runId, 10n, parseEther('0.001')));
    await note('buy', buyer.buy(await buyer.listing(listingId), 2n));
    const spendId = await note('spend', buyer.spendCredentials(runId, 1n, 'ROMEO:'));
    await note('markServed', coordinator.markServed(spendId, zeroHash));
    const now = (await publicClient.getBlock()).timestamp;
    await note('spendWithSig (relayed)', alice.relaySpend(await buyer.signSpend(runId, 1n, 'JULIET:', now + 600n)));
    const hash = await wallet(5).writeContract({
      address: addresses.tokens,
      abi: modelTokensAbi,
      functionName: 'safeTransferFrom',
      args: [alice.account!, bob.account!, runId * 2n, 1000n, '0x'],
    });
    gas['transfer ownership (settles both sides)'] = Number((await publicClient.waitForTransactionReceipt({ hash })).gasUsed);
    await note('claimCredentials (re-issued)', bob.claimCredentials(runId));
    await note('withdrawProceeds', alice.withdrawProceeds());
    const cancelled = await alice.list(runId, 1n, 1n);
    await note('cancelListing', alice.cancelListing(cancelled.result));
    await note('invalidateNonce', buyer.invalidateNonce());
    // A second run abandoned while its root is in its window: the stake waits, then goes to the root's contributors.
    const run2 = await designer.openRun({ stake: parseEther('1'), computeTarget: 1n, designerBps: 1000, credentialSupply: 1000n, challengeWindow: WINDOW, modelHash: zeroHash });
    await alice.join(run2.result);
    await coordinator.startTraining(run2.result);
    await coordinator.postEpoch(run2.result, tree.root, tree.total);
    await note('abandon (a root in its window)', designer.abandon(run2.result));
    await testClient.increaseTime({ seconds: Number(WINDOW) });
    await testClient.mine({ blocks: 1 });
    await note(`claimStakeShare (proof of ${tree.proof(alice.account!).length} hashes)`, alice.claimStakeShare(run2.result, alice.account!, 50_000n, tree.proof(alice.account!)));
    await note('withdraw (stake share)', alice.withdraw());
    const out = { contributors: CONTRIBUTORS, evm: 'Hardhat 2 node (EDR), cancun, solc 0.8.37 optimizer 200 runs', gas };
    mkdirSync('bench/results', { recursive: true });
    writeFileSync('bench/results/gas.json', `${JSON.stringify(out, null, 2)}\n`);
    for (const [k, v] of Object.entries(gas)) console.log(`${k.padEnd(44)} ${String(v).padStart(8)} gas`);
    console.log('wrote bench/results/gas.json');
  } finally {
    await evm.stop();
  }
}

main().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
