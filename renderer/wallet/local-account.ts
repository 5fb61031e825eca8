// A wallet for local chains only: an EIP-1193 provider for one of the local node's own test accounts,
// which the node keeps unlocked and signs for. The page never holds a key (and never does the
// elliptic-curve arithmetic that deriving one's address costs it), so a contributor and a buyer can
// try the whole economy without a browser extension.
import { type Address, type Chain, type EIP1193Provider, createPublicClient, http, isAddressEqual, toHex } from 'viem';

type Listener = (...args: unknown[]) => void;

/** The account a signing request names: `from` of a transaction, the second parameter of personal_sign. */
function signer(method: string, p: unknown[]): unknown {
  if (method === 'eth_sendTransaction') return (p[0] as { from?: unknown } | undefined)?.from;
  if (method === 'personal_sign') return p[1];
  return undefined;
}

const SIGNING = new Set(['eth_sendTransaction', 'personal_sign']);
const REFUSED = new Set(['eth_sign', 'eth_signTransaction', 'eth_signTypedData', 'eth_signTypedData_v3', 'eth_signTypedData_v4']);

export function localAccountProvider(address: Address, chain: Chain): EIP1193Provider {
  // As a wallet extension does: the page sees the account only once the user connected it (kept
  // across reloads), so a page with several local accounts is connected to none until one is picked.
  const granted = `swarm.localAccount.${address}`;
  const grant = (on: boolean) => (on ? localStorage.setItem(granted, '1') : localStorage.removeItem(granted));
  const node = createPublicClient({ chain, transport: http() });
  const listeners = new Map<string, Set<Listener>>();
  const request = async ({ method, params }: { method: string; params?: unknown }): Promise<unknown> => {
    // Each answer comes a task later, as an extension's does over its messaging: otherwise the whole
    // connection (and the redraw of everything that shows the account) ran inside the click on it.
    await new Promise((resolve) => setTimeout(resolve, 0));
    const p = (params ?? []) as unknown[];
    switch (method) {
      case 'eth_accounts':
        return localStorage.getItem(granted) ? [address] : [];
      case 'eth_requestAccounts':
        grant(true);
        return [address];
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
        if (Number((p[0] as { chainId: string }).chainId) !== chain.id) throw new Error(`the local account only signs for chain ${chain.id}`);
        return null;
    }
    if (REFUSED.has(method)) throw new Error(`${method} is not offered by the local account wallet`);
    // The node signs for any of its accounts: this wallet asks only for its own.
    const who = signer(method, p);
    if (SIGNING.has(method) && !(typeof who === 'string' && isAddressEqual(who as Address, address)))
      throw new Error(`this wallet signs only as ${address}, not as ${String(who)}`);
    return node.request({ method, params } as Parameters<typeof node.request>[0]);
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
