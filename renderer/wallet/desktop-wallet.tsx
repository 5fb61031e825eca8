// The desktop app's wallet in the dashboard: its own key (electron/pages/desktop-account.ts), no connect step.
import { type ReactNode, useEffect, useState } from 'react';
import type { AppConfig, DesktopWallet as Bridge } from '../../shared/app/bridge.js';
import { WalletContext, type WalletView } from './context.js';
import { desktopChain } from '../../electron/pages/desktop-account.js';

export function DesktopWallet({ config, wallet, children }: { config: AppConfig; wallet: Bridge; children: ReactNode }) {
  const [view, setView] = useState<WalletView>({ label: config.chain ? 'opening the local wallet…' : 'no chain configured: training is unpaid' });
  useEffect(() => {
    if (!config.chain) return;
    desktopChain(config.chain, wallet).then(
      (c) => setView({ ...c, label: `this computer's wallet ${c.account}` }),
      (e: Error) => setView({ label: `the local wallet could not open: ${e.message}` }),
    );
  }, [config, wallet]);
  return <WalletContext.Provider value={view}>{children}</WalletContext.Provider>;
}
