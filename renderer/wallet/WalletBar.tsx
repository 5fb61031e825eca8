// Who the dashboard acts as: RainbowKit's connect button in a tab, the app's own key in the desktop app.
import { useDashboard } from '../store.js';
import { useWallet } from './context.js';
import { TabConnectButton } from './tab-wallet.js';

export function WalletBar() {
  const kind = useDashboard((s) => s.host?.kind);
  const { label, runId } = useWallet();
  return <div className="wallet-bar">{kind === 'tab' && runId !== undefined ? <TabConnectButton /> : <span data-testid="wallet-label">{label}</span>}</div>;
}
