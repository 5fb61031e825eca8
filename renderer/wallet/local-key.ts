// A wallet for local chains only: an EIP-1193 provider that signs with a dev key the local server
// handed this page (the public dev keys of the local EVM, never a real one), so a contributor and a
// buyer can try the whole economy without a browser extension. Reads go to the chain's RPC.
import { type Chain, type EIP1193Provider, type Hex, createWalletClient, http, toHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

type Listener = (...args: unknown[]) => void;
interface TxParams {
  to?: Hex;
  data?: Hex;
  value?: Hex;
  gas?: Hex;
}

export function localKeyProvider(key: Hex, chain: Chain): EIP1193Provider {
  const account = privateKeyToAccount(key);
  // As a wallet extension does: the page sees the account only once the user connected it (kept
  // across reloads), so a page with several local keys is connected to none until one is picked.
  const granted = `swarm.localKey.${account.address}`;
  const grant = (on: boolean) => (on ? localStorage.setItem(granted, '1') : localStorage.removeItem(granted));
  const wallet = createWalletClient({ account, chain, transport: http() });
  const listeners = new Map<string, Set<Listener>>();
  const request = async ({ method, params }: { method: string; params?: unknown }): Promise<unknown> => {
    const p = (params ?? []) as unknown[];
    switch (method) {
      case 'eth_accounts':
        return localStorage.getItem(granted) ? [account.address] : [];
      case 'eth_requestAccounts':
        grant(true);
        return [account.address];
      case 'eth_chainId':
        return toHex(chain.id);
      // Connecting and disconnecting: nothing to grant or revoke beyond this one account.
      case 'wallet_requestPermissions':
        grant(true);
        return [{ parentCapability: 'eth_accounts' }];
      case 'wallet_revokePermissions':
        grant(false);
        return null;
      case 'wallet_switchEthereumChain':
        if (Number((p[0] as { chainId: Hex }).chainId) !== chain.id) throw new Error(`the local key only signs for chain ${chain.id}`);
        return null;
      case 'eth_sendTransaction': {
        const tx = p[0] as TxParams;
        return wallet.sendTransaction({ to: tx.to, data: tx.data, value: tx.value ? BigInt(tx.value) : undefined, gas: tx.gas ? BigInt(tx.gas) : undefined });
      }
      case 'personal_sign':
        return account.signMessage({ message: { raw: p[0] as Hex } });
      case 'eth_sign':
      case 'eth_signTransaction':
      case 'eth_signTypedData_v4':
        throw new Error(`${method} is not offered by the local key wallet`);
      default:
        return wallet.request({ method, params } as Parameters<typeof wallet.request>[0]);
    }
  };
  return {
    request,
    on(event: string, f: Listener) {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      set.add(f);
    },
    removeListener(event: string, f: Listener) {
      listeners.get(event)?.delete(f);
    },
  } as unknown as EIP1193Provider;
}
