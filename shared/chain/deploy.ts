// Deploys the two contracts and wires their roles: the registry mints ownership and activates
// runs; the coordinator posts epochs and marks spends served; the veto account guards roots.
// The registry's shortest challenge window is fixed at deployment, for the chain's block time.
import { type Account, type Address, type Chain, type PublicClient, type Transport, type WalletClient, keccak256, toHex } from 'viem';
import type { SwarmAddresses } from './actions/context.js';
import { modelTokensAbi, modelTokensBytecode } from './generated/ModelTokens.js';
import { runRegistryAbi, runRegistryBytecode } from './generated/RunRegistry.js';

export interface Roles {
  coordinator: Address;
  veto: Address;
}

export interface DeployOptions {
  /** ERC-1155 metadata URI of the tokens. */
  uri?: string;
  /** Shortest challenge window (seconds) a run may open with; defaults by chain, see defaultMinChallengeWindow. */
  minChallengeWindow?: bigint;
}

/** Hardhat's (and anvil's) chain id: the local dev chain, a block every second. */
export const LOCAL_CHAIN_ID = 31337;

/**
 * The shortest challenge window a deployment accepts unless told: 2 s on the local dev chain (a
 * block a second, so a veto fits in the block after the root's; `npm start` uses 3 s), one hour
 * anywhere else, where a watcher must have time to see a root and veto it.
 */
export function defaultMinChallengeWindow(chainId: number): bigint {
  return chainId === LOCAL_CHAIN_ID ? 2n : 3600n;
}

const role = (name: string) => keccak256(toHex(name));

export async function deploySwarmContracts(
  publicClient: PublicClient<Transport, Chain | undefined>,
  admin: WalletClient<Transport, Chain | undefined, Account>,
  roles: Roles,
  opts: DeployOptions = {},
): Promise<SwarmAddresses> {
  const uri = opts.uri ?? 'swarm://model/{id}';
  const minChallengeWindow = opts.minChallengeWindow ?? defaultMinChallengeWindow(await publicClient.getChainId());
  const mined = async (hash: `0x${string}`) => {
    const r = await publicClient.waitForTransactionReceipt({ hash });
    if (r.status !== 'success') throw new Error(`deployment transaction ${hash} reverted`);
    return r;
  };
  const me = admin.account.address;
  const tokens = (await mined(await admin.deployContract({ abi: modelTokensAbi, bytecode: modelTokensBytecode, args: [me, uri], chain: admin.chain }))).contractAddress!;
  const registryArgs = [me, tokens, minChallengeWindow] as const;
  const registry = (await mined(await admin.deployContract({ abi: runRegistryAbi, bytecode: runRegistryBytecode, args: registryArgs, chain: admin.chain }))).contractAddress!;
  const grant = async (address: Address, abi: typeof modelTokensAbi | typeof runRegistryAbi, name: string, to: Address) =>
    mined(await admin.writeContract({ address, abi, functionName: 'grantRole', args: [role(name), to], chain: admin.chain }));
  await grant(tokens, modelTokensAbi, 'REGISTRY_ROLE', registry);
  await grant(tokens, modelTokensAbi, 'SERVER_ROLE', roles.coordinator);
  await grant(registry, runRegistryAbi, 'COORDINATOR_ROLE', roles.coordinator);
  await grant(registry, runRegistryAbi, 'VETO_ROLE', roles.veto);
  return { registry, tokens };
}
