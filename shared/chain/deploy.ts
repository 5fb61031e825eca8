// Deploys the two contracts and wires their roles: the registry mints ownership and activates
// runs; the coordinator posts epochs and marks spends served; the veto account guards roots.
import { type Account, type Address, type Chain, type PublicClient, type Transport, type WalletClient, keccak256, toHex } from 'viem';
import type { SwarmAddresses } from './client.js';
import { modelTokensAbi, modelTokensBytecode } from './generated/ModelTokens.js';
import { runRegistryAbi, runRegistryBytecode } from './generated/RunRegistry.js';

export interface Roles {
  coordinator: Address;
  veto: Address;
}

const role = (name: string) => keccak256(toHex(name));

export async function deploySwarmContracts(
  publicClient: PublicClient<Transport, Chain | undefined>,
  admin: WalletClient<Transport, Chain | undefined, Account>,
  roles: Roles,
  uri = 'swarm://model/{id}',
): Promise<SwarmAddresses> {
  const mined = async (hash: `0x${string}`) => {
    const r = await publicClient.waitForTransactionReceipt({ hash });
    if (r.status !== 'success') throw new Error(`deployment transaction ${hash} reverted`);
    return r;
  };
  const me = admin.account.address;
  const tokens = (await mined(await admin.deployContract({ abi: modelTokensAbi, bytecode: modelTokensBytecode, args: [me, uri], chain: admin.chain }))).contractAddress!;
  const registry = (await mined(await admin.deployContract({ abi: runRegistryAbi, bytecode: runRegistryBytecode, args: [me, tokens], chain: admin.chain }))).contractAddress!;
  const grant = async (address: Address, abi: typeof modelTokensAbi | typeof runRegistryAbi, name: string, to: Address) =>
    mined(await admin.writeContract({ address, abi, functionName: 'grantRole', args: [role(name), to], chain: admin.chain }));
  await grant(tokens, modelTokensAbi, 'REGISTRY_ROLE', registry);
  await grant(tokens, modelTokensAbi, 'SERVER_ROLE', roles.coordinator);
  await grant(registry, runRegistryAbi, 'COORDINATOR_ROLE', roles.coordinator);
  await grant(registry, runRegistryAbi, 'VETO_ROLE', roles.veto);
  return { registry, tokens };
}
