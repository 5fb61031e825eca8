// The dashboard's frame: the host's wallet around six pages, a navigation bar, and the last error.
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { useShallow } from 'zustand/shallow';
import type { AppHost } from './app-host.js';
import { CredentialsPage } from './pages/CredentialsPage.js';
import { EarningsPage } from './pages/EarningsPage.js';
import { GpuPage } from './pages/GpuPage.js';
import { RunsPage } from './pages/RunsPage.js';
import { SettingsPage } from './pages/SettingsPage.js';
import { TrainingPage } from './pages/TrainingPage.js';
import { GlanceBar } from './GlanceBar.js';
import { type Page, useDashboard } from './store.js';
import { DesktopWallet } from './wallet/desktop-wallet.js';
import { TabWallet } from './wallet/tab-wallet.js';

const PAGES: { id: Page; title: string; view: () => ReactNode }[] = [
  { id: 'training', title: 'Training', view: TrainingPage },
  { id: 'gpu', title: 'GPU', view: GpuPage },
  { id: 'runs', title: 'Runs', view: RunsPage },
  { id: 'earnings', title: 'Earnings', view: EarningsPage },
  { id: 'credentials', title: 'Credentials', view: CredentialsPage },
  { id: 'settings', title: 'Settings', view: SettingsPage },
];

const queryClient = new QueryClient({ defaultOptions: { queries: { retry: 1 } } });

function Wallet({ host, children }: { host: AppHost; children: ReactNode }) {
  if (host.desktopWallet)
    return (
      <DesktopWallet config={host.config} wallet={host.desktopWallet}>
        {children}
      </DesktopWallet>
    );
  return <TabWallet config={host.config}>{children}</TabWallet>;
}

function Shell() {
  // Only what the frame shows: a session event re-renders the glance bar, not the frame and its page.
  const { page, setPage, error, setError } = useDashboard(useShallow((s) => ({ page: s.page, setPage: s.setPage, error: s.error, setError: s.setError })));
  const current = PAGES.find((p) => p.id === page)!;
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
      <main aria-label={current.title}>
        <current.view />
      </main>
    </div>
  );
}

export function App({ host }: { host: AppHost }) {
  return (
    <QueryClientProvider client={queryClient}>
      <Wallet host={host}>
        <Shell />
      </Wallet>
    </QueryClientProvider>
  );
}
