// What every chain action is handed: the viem clients and the two contracts' addresses. Actions take
// it first, as viem's own actions take a client, so each is a plain function a front end can call
// alone or through the swarmChain facade.
import { type Account, type Address, type Chain, type PublicClient, type Transport, type WalletClient, isAddress } from 'viem';
import { modelTokensAbi } from '../generated/ModelTokens.js';
import { runRegistryAbi } from '../generated/RunRegistry.js';

export interface SwarmAddresses {
  registry: Address;
  tokens: Address;
}

export type ReadClient = PublicClient<Transport, Chain | undefined>;
export type SigningWallet = WalletClient<Transport, Chain | undefined, Account>;

export interface ChainContext {
  publicClient: ReadClient;
  /** Absent for a read-only client: every write then throws before it reaches the chain. */
  wallet?: SigningWallet;
  addresses: SwarmAddresses;
}

function checkAddress(a: string, what: string): Address {
  if (!isAddress(a)) throw new Error(`${what} is not an address: ${a}`);
  return a;
}

/** Addresses are checked here, once, so a mistyped one fails on connecting rather than at the first call. */
export function chainContext(publicClient: ReadClient, addresses: SwarmAddresses, wallet?: SigningWallet): ChainContext {
  return { publicClient, wallet, addresses: { registry: checkAddress(addresses.registry, 'registry'), tokens: checkAddress(addresses.tokens, 'tokens') } };
}

type TokensError = Extract<(typeof modelTokensAbi)[number], { type: 'error' }>;
const declaredByRegistry = (name: string) => runRegistryAbi.some((x) => x.type === 'error' && x.name === name);
/**
 * The registry calls into the tokens contract, whose reverts bubble up: the registry's ABI as the
 * actions use it also carries the errors only the tokens contract declares, so those decode by name
 * too. Its functions stay the registry's alone.
 */
export const registryAbiWithTokenErrors = [...runRegistryAbi, ...modelTokensAbi.filter((x): x is TokensError => x.type === 'error' && !declaredByRegistry(x.name))] as const;

/** The registry as viem's contract calls take it: address and typed ABI. */
export const registry = (ctx: ChainContext) => ({ address: ctx.addresses.registry, abi: registryAbiWithTokenErrors });
export const tokens = (ctx: ChainContext) => ({ address: ctx.addresses.tokens, abi: modelTokensAbi });

/** The contract at `address`, by name, for messages. */
export const contractName = (ctx: ChainContext, address: Address) => (address === ctx.addresses.registry ? 'RunRegistry' : 'ModelTokens');
