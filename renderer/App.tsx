// The dashboard's frame: the host's wallet around six pages, a navigation bar, and the last error.
// Each page is its own chunk, loaded when first shown: the page's first load evaluates only the frame.
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { type ReactNode, useDeferredValue, useEffect, useState } from 'react';
import { useShallow } from 'zustand/shallow';
import type { AppHost } from './app-host.js';
import { GlanceBar } from './GlanceBar.js';
import { type Page, useDashboard } from './store.js';

type View = () => ReactNode;
const PAGES: { id: Page; title: string; load: () => Promise<View> }[] = [
  { id: 'training', title: 'Training', load: async () => (await import('./pages/TrainingPage.js')).TrainingPage },
  { id: 'gpu', title: 'GPU', load: async () => (await import('./pages/GpuPage.js')).GpuPage },
  { id: 'runs', title: 'Runs', load: async () => (await import('./pages/RunsPage.js')).RunsPage },
  { id: 'earnings', title: 'Earnings', load: async () => (await import('./pages/EarningsPage.js')).EarningsPage },
  { id: 'credentials', title: 'Credentials', load: async () => (await import('./pages/CredentialsPage.js')).CredentialsPage },
  { id: 'settings', title: 'Settings', load: async () => (await import('./pages/SettingsPage.js')).SettingsPage },
];

const loaded = new Map<Page, View>();

/** Loads a page's chunk once. */
async function loadPage(id: Page): Promise<void> {
  if (!loaded.has(id)) loaded.set(id, await PAGES.find((p) => p.id === id)!.load());
}

type Frame = (props: { children: ReactNode }) => ReactNode;
/** Set once by `prepare`, before the first render. */
let walletFrame: Frame = ({ children }) => children;

/** The host's wallet around the pages: in a tab, its code (wagmi, RainbowKit), then the page's wallets. */
function walletSteps(host: AppHost): (() => unknown)[] {
  const wallet = host.desktopWallet;
  if (wallet)
    return [
      async () => {
        const { DesktopWallet } = await import('./wallet/desktop-wallet.js');
        walletFrame = ({ children }) => (
          <DesktopWallet config={host.config} wallet={wallet}>
            {children}
          </DesktopWallet>
        );
      },
    ];
  let tab: typeof import('./wallet/tab-wallet.js');
  return [
    // Its code evaluated in three tasks, not one: wagmi, then RainbowKit over it, then the page's own.
    () => import('wagmi'),
    () => import('@rainbow-me/rainbowkit'),
    async () => {
      tab = await import('./wallet/tab-wallet.js');
    },
    () => {
      tab.tabWalletConfig(host.config);
      walletFrame = ({ children }) => <tab.TabWallet config={host.config}>{children}</tab.TabWallet>;
    },
  ];
}

/** What to do before the first render, in steps `main.tsx` runs a task apart: the wallet, the first page. */
export function prepare(host: AppHost, page: Page): (() => unknown)[] {
  return [...walletSteps(host), () => loadPage(page)];
}

function PageView({ id }: { id: Page }) {
  const View = loaded.get(id);
  const [failed, setFailed] = useState<string>();
  const [, setLoads] = useState(0);
  useEffect(() => {
    setFailed(undefined);
    if (!loaded.has(id))
      loadPage(id).then(
        () => setLoads((n) => n + 1),
        (e: Error) => setFailed(`This page could not be loaded (${e.message}). Reload the dashboard to try again.`),
      );
  }, [id]);
  if (View) return <View />;
  return failed ? (
    <p className="error" role="alert">
      {failed}
    </p>
  ) : (
    <p className="muted">Loading this page…</p>
  );
}

const queryClient = new QueryClient({ defaultOptions: { queries: { retry: 1 } } });

function Shell() {
  // Only what the frame shows: a session event re-renders the glance bar, not the frame and its page.
  const { page, setPage, error, setError } = useDashboard(useShallow((s) => ({ page: s.page, setPage: s.setPage, error: s.error, setError: s.setError })));
  // The page is drawn a step behind the navigation, in the background (React renders it in slices):
  // the frame answers a click at once, and the first screen commits the frame before the page.
  const shown = useDeferredValue<Page | undefined>(page, undefined);
  const current = PAGES.find((p) => p.id === (shown ?? page))!;
  return (
    <div className="shell">
      <header>
        <h1>Swarm</h1>
        <nav aria-label="pages">
          {PAGES.map((p) => (
            <button type="button" key={p.id} aria-current={p.id === page ? 'page' : undefined} onClick={() => setPage(p.id)}>
              {p.title}
            </button>
          ))}
        </nav>
      </header>
      <GlanceBar />
      {error && (
        <div className="error" role="alert">
          {error}{' '}
          <button type="button" onClick={() => setError(undefined)}>
            Dismiss
          </button>
        </div>
      )}
      <main aria-label={current.title}>{shown && <PageView id={shown} />}</main>
    </div>
  );
}

/** The dashboard, once `prepare`'s steps have run. */
export function App() {
  const WalletFrame = walletFrame;
  return (
    <QueryClientProvider client={queryClient}>
      <WalletFrame>
        <Shell />
      </WalletFrame>
    </QueryClientProvider>
  );
}
