// The desktop app's key as a viem account, in its pages: the key stays in the main process
// (electron/keystore.ts); every signature is asked for over the preload bridge. Both the dashboard
// and the hidden training window act through it, with the same typed client as the command line
// (shared/chain/client.ts).
import { type Hex, createPublicClient, createWalletClient, http, parseEther } from 'viem';
import { privateKeyToAccount, toAccount } from 'viem/accounts';
import type { AppConfig, DesktopWallet } from '../../shared/app/bridge.js';
import { type SwarmChain, swarmChain } from '../../shared/chain/client.js';
import { chainOf } from '../../shared/chain/config.js';

export interface DesktopChain {
  runId: bigint;
  account: `0x${string}`;
  reader: SwarmChain;
  chain: SwarmChain;
}

export async function desktopChain(c: NonNullable<AppConfig['chain']>, w: DesktopWallet): Promise<DesktopChain> {
  const chain = chainOf(c);
  const address = await w.address();
  const account = toAccount({
    address,
    signMessage: ({ message }) => w.signMessage(typeof message === 'string' ? message : JSON.stringify(message)),
    signTypedData: (data) => w.signTypedData(JSON.stringify(data, (_, v) => (typeof v === 'bigint' ? v.toString() : v))),
    async signTransaction(tx) {
      if (!tx.to || tx.nonce === undefined || tx.gas === undefined) throw new Error('the desktop wallet signs only complete contract calls');
      return w.signTransaction({
        chainId: tx.chainId ?? chain.id,
        to: tx.to,
        ...(tx.data && { data: tx.data }),
        ...(tx.value !== undefined && { value: tx.value.toString() }),
        nonce: tx.nonce,
        gas: tx.gas.toString(),
        maxFeePerGas: (tx.maxFeePerGas ?? 0n).toString(),
        maxPriorityFeePerGas: (tx.maxPriorityFeePerGas ?? 0n).toString(),
      });
    },
  });
  const transport = http(c.rpcUrl);
  const publicClient = createPublicClient({ chain, transport });
  const addresses = { registry: c.registry, tokens: c.tokens };
  return {
    runId: BigInt(c.runId),
    account: address,
    reader: swarmChain(publicClient, addresses),
    chain: swarmChain(publicClient, addresses, createWalletClient({ account, chain, transport })),
  };
}

/**
 * On a local chain the app's fresh key holds no ether to pay for joining a run: the launcher
 * hands it one of the chain's test keys, from which it takes gas money (never on a real chain,
 * whose launcher hands out no keys).
 */
export async function topUpFromLocalKey(c: NonNullable<AppConfig['chain']>, faucetKey: Hex, to: `0x${string}`): Promise<void> {
  const chain = chainOf(c);
  const transport = http(c.rpcUrl);
  const publicClient = createPublicClient({ chain, transport });
  if ((await publicClient.getBalance({ address: to })) >= parseEther('0.05')) return;
  const faucet = createWalletClient({ account: privateKeyToAccount(faucetKey), chain, transport });
  await publicClient.waitForTransactionReceipt({ hash: await faucet.sendTransaction({ to, value: parseEther('0.5') }) });
}
