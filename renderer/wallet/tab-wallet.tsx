// The browser tab's wallet: RainbowKit over wagmi. Injected wallets (MetaMask, Rabby, …) always;
// WalletConnect only when a projectId is configured; and on a local chain, its dev keys as clearly
// labelled "local key" wallets. The connected account is who the tab's peer is paid at.
import '@rainbow-me/rainbowkit/styles.css';
import { ConnectButton, RainbowKitProvider, type Wallet, connectorsForWallets, darkTheme } from '@rainbow-me/rainbowkit';
import { injectedWallet, walletConnectWallet } from '@rainbow-me/rainbowkit/wallets';
import { type ReactNode, startTransition, useDeferredValue, useEffect, useMemo } from 'react';
import type { Address, Chain } from 'viem';
import { WagmiProvider, createConfig, createConnector, http, useAccount, usePublicClient, useWalletClient } from 'wagmi';
import { injected } from 'wagmi/connectors';
import { swarmChain } from '../../shared/chain/client.js';
import { chainOf } from '../../shared/chain/config.js';
import { payoutWallet } from '../../shared/chain/owner.js';
import type { AppConfig } from '../../shared/app/bridge.js';
import { useDashboard } from '../store.js';
import { WalletContext, type WalletView } from './context.js';
import { localAccountProvider } from './local-account.js';
import { short } from '../format.js';

const KEY_ICON = `data:image/svg+xml,${encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 28 28"><rect width="28" height="28" fill="#334"/><circle cx="11" cy="14" r="5" fill="none" stroke="#fc6" stroke-width="2.5"/><path d="M16 14h8v4" stroke="#fc6" stroke-width="2.5" fill="none"/></svg>')}`;

function localAccountWallet(address: Address, i: number, chain: Chain): () => Wallet {
  const id = `localAccount${i}`;
  const name = `Local dev account ${i + 1} (${short(address)}) — local chain only`;
  return () => ({
    id,
    name,
    iconUrl: KEY_ICON,
    iconBackground: '#334',
    installed: true,
    createConnector: (details) => createConnector((config) => ({ ...injected({ target: { id, name, provider: localAccountProvider(address, chain) } })(config), ...details })),
  });
}

const wagmiConfigs = new WeakMap<AppConfig, ReturnType<typeof wagmiConfigOf>>();

/** The page's wallets for `config`, made once (`App.tsx` asks a task before the first render). */
export function tabWalletConfig(config: AppConfig): ReturnType<typeof wagmiConfigOf> | undefined {
  if (!config.chain) return undefined;
  let wagmi = wagmiConfigs.get(config);
  if (!wagmi) wagmiConfigs.set(config, (wagmi = wagmiConfigOf(config, chainOf(config.chain))));
  return wagmi;
}

function wagmiConfigOf(config: AppConfig, chain: Chain) {
  const projectId = config.walletConnectProjectId;
  const connectors = connectorsForWallets(
    [
      ...(config.localAccounts?.length ? [{ groupName: 'Local chain (test accounts)', wallets: config.localAccounts.map((a, i) => localAccountWallet(a, i, chain)) }] : []),
      { groupName: 'Browser wallets', wallets: [injectedWallet, ...(projectId ? [walletConnectWallet] : [])] },
    ],
    // RainbowKit asks for a projectId even when no WalletConnect wallet is listed; it is used only by those.
    { appName: 'Swarm', projectId: projectId ?? 'walletconnect-disabled' },
  );
  return createConfig({ chains: [chain], connectors, transports: { [chain.id]: http(chain.rpcUrls.default.http[0]) } });
}

function Bridge({ config, children }: { config: AppConfig & { chain: NonNullable<AppConfig['chain']> }; children: ReactNode }) {
  const { address } = useAccount();
  const { data: walletClient } = useWalletClient();
  const publicClient = usePublicClient();
  const host = useDashboard((s) => s.host);
  const value = useMemo<WalletView>(() => {
    const addresses = { registry: config.chain.registry, tokens: config.chain.tokens };
    const runId = BigInt(config.chain.runId);
    if (!publicClient) return { runId, label: 'connecting to the chain…' };
    const chain = walletClient ? swarmChain(publicClient, addresses, walletClient) : undefined;
    return { runId, reader: swarmChain(publicClient, addresses), account: address, chain, label: address ?? 'not connected' };
  }, [config, publicClient, walletClient, address]);
  useEffect(() => host?.setPayout(value.chain && payoutWallet(value.chain)), [host, value.chain]);
  // wagmi's store updates render at once, in the task that changed it (a click, a reply): the pages
  // follow a new wallet in the background instead, rendered in slices that let input through.
  const shown = useDeferredValue(value);
  return <WalletContext.Provider value={shown}>{children}</WalletContext.Provider>;
}

export function TabWallet({ config, children }: { config: AppConfig; children: ReactNode }) {
  const c = config.chain;
  const wagmi = tabWalletConfig(config);
  if (!c || !wagmi) return <>{children}</>;
  return (
    <WagmiProvider config={wagmi}>
      <RainbowKitProvider theme={darkTheme()}>
        <Bridge config={{ ...config, chain: c }}>{children}</Bridge>
      </RainbowKitProvider>
    </WagmiProvider>
  );
}

/**
 * RainbowKit's connect and account buttons, opening their modals as transitions: RainbowKit draws a
 * modal in slices then, and the click that opened it returns at once.
 */
export function TabConnectButton() {
  return (
    <ConnectButton.Custom>
      {({ account, chain, mounted, openConnectModal, openAccountModal, openChainModal }) => {
        if (!mounted) return null;
        const [open, text, testId] = !account
          ? [openConnectModal, 'Connect a wallet', 'connect-wallet']
          : chain?.unsupported
            ? [openChainModal, 'Wrong network: switch', 'switch-network']
            : [openAccountModal, account.displayName, 'account-button'];
        return (
          <button type="button" data-testid={testId} title={account?.address} onClick={() => startTransition(open)}>
            {text}
          </button>
        );
      }}
    </ConnectButton.Custom>
  );
}
