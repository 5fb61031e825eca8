// Connect the typed client to a configured chain, with a local private key when one is given.
// (The browser connects through RainbowKit/wagmi instead and hands its wallet to swarmChain.)
import { createPublicClient, createWalletClient, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { type SwarmChain, swarmChain } from './client.js';
import { type ChainConfig, chainOf } from './config.js';

export async function connectChain(c: ChainConfig, key = c.key): Promise<SwarmChain> {
  const chain = chainOf(c);
  const transport = http(c.rpcUrl);
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 250 });
  const actual = await publicClient.getChainId();
  if (actual !== c.chainId) throw new Error(`the RPC at ${c.rpcUrl} serves chain ${actual}, configured for ${c.chainId}`);
  const wallet = key ? createWalletClient({ account: privateKeyToAccount(key), chain, transport }) : undefined;
  return swarmChain(publicClient, { registry: c.registry, tokens: c.tokens }, wallet);
}
