// A real EVM (Hardhat's node in a child process) with the swarm's contracts deployed, named test
// accounts, and snapshots so every test starts from the same chain state.
import { type Address, type Hex, createPublicClient, createTestClient, createWalletClient, http } from 'viem';
import { hardhat } from 'viem/chains';
import { startLocalEvm } from '../contracts/local-evm.js';
import { type SwarmChain, swarmChain } from '../shared/chain/client.js';
import { deploySwarmContracts } from '../shared/chain/deploy.js';
import { reentererAbi, reentererBytecode } from '../shared/chain/generated/Reenterer.js';
import { type EpochTree, epochTree } from '../shared/ledger/merkle.js';

export const NAMES = ['admin', 'coordinator', 'veto', 'designer', 'alice', 'bob', 'carol', 'dave', 'buyer', 'mallory'] as const;
export type Name = (typeof NAMES)[number];

export async function chainFixture() {
  const evm = await startLocalEvm({ accounts: NAMES.length });
  // Hardhat reports a revert as JSON-RPC "internal error", which viem retries with back-off by
  // default (right for a flaky remote node, ~1 s lost per expected revert here).
  const transport = http(evm.rpcUrl, { retryCount: 0 });
  const publicClient = createPublicClient({ chain: hardhat, transport, pollingInterval: 50 });
  const testClient = createTestClient({ mode: 'hardhat', chain: hardhat, transport });
  const wallet = (name: Name) => createWalletClient({ account: evm.accounts[NAMES.indexOf(name)], chain: hardhat, transport });
  const address = (name: Name): Address => evm.accounts[NAMES.indexOf(name)].address;
  const addresses = await deploySwarmContracts(publicClient, wallet('admin'), { coordinator: address('coordinator'), veto: address('veto') });
  const as = (name: Name): SwarmChain => swarmChain(publicClient, addresses, wallet(name));

  async function deployReenterer(): Promise<Address> {
    const hash = await wallet('mallory').deployContract({ abi: reentererAbi, bytecode: reentererBytecode });
    return (await publicClient.waitForTransactionReceipt({ hash })).contractAddress!;
  }

  let snap: Hex | undefined;
  return {
    evm,
    publicClient,
    testClient,
    addresses,
    address,
    wallet,
    as,
    deployReenterer,
    /** Move the chain's clock forward (the challenge window) and mine a block. */
    async advance(seconds: number) {
      await testClient.increaseTime({ seconds });
      await testClient.mine({ blocks: 1 });
    },
    async saveState() {
      snap = await testClient.snapshot();
    },
    async restoreState() {
      await testClient.revert({ id: snap! });
      snap = await testClient.snapshot();
    },
    stop: () => evm.stop(),
  };
}
export type ChainFixture = Awaited<ReturnType<typeof chainFixture>>;

export const WINDOW = 3600;

/** Tree of cumulative units for one epoch, from name → units. */
export function treeOf(f: ChainFixture, epoch: number, units: Partial<Record<Name, bigint>> | Array<[Address, bigint]>): EpochTree {
  const entries = Array.isArray(units) ? units : Object.entries(units).map(([n, u]) => [f.address(n as Name), u as bigint] as [Address, bigint]);
  const cumulative = entries.map(([account, u]) => ({ account, units: u }));
  return epochTree({ epoch, cumulative, total: cumulative.reduce((s, c) => s + c.units, 0n) });
}

/** Open a run, let providers join and start training; returns the run id. */
export async function trainingRun(f: ChainFixture, providers: Name[], p: { computeTarget?: bigint; designerBps?: number; credentialSupply?: bigint; stake?: bigint } = {}) {
  const { result: runId } = await f.as('designer').openRun({
    stake: p.stake ?? 10n ** 18n,
    computeTarget: p.computeTarget ?? 1000n,
    designerBps: p.designerBps ?? 1000,
    credentialSupply: p.credentialSupply ?? 100n,
    challengeWindow: BigInt(WINDOW),
    modelHash: `0x${'ab'.repeat(32)}`,
  });
  for (const n of providers) await f.as(n).join(runId);
  await f.as('coordinator').startTraining(runId);
  return runId;
}

/** Post a root, wait out the window and finish training on it. */
export async function settleAndFinish(f: ChainFixture, runId: bigint, tree: EpochTree) {
  await f.as('coordinator').postEpoch(runId, tree.root, tree.total);
  await f.advance(WINDOW);
  await f.as('coordinator').finishTraining(runId);
}
