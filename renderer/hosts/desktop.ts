// The dashboard inside the desktop app: everything goes through the preload's typed bridge; the
// peer trains in the app's hidden training window, which shares this page's origin and so its
// IndexedDB (where the saved proofs are). Switching runs or networks is the main process's to do.
import { browserStorage } from '../../browser/storage.js';
import type { AppHost } from '../app-host.js';
import type { DesktopBridge } from '../../shared/app/bridge.js';

export async function desktopHost(bridge: DesktopBridge): Promise<AppHost> {
  const [config, storage] = await Promise.all([bridge.config(), browserStorage()]);
  return {
    kind: 'desktop',
    config,
    storage,
    policy: () => bridge.policy(),
    saveSettings: (s) => bridge.saveSettings(s),
    snooze: (h) => bridge.snooze(h),
    pause: () => bridge.pause(),
    resume: () => bridge.resume(),
    onPolicy: (l) => bridge.onPolicy(l),
    onTrainerEvent: (l) => bridge.onTrainerEvent(l),
    // The main process leaves the run, saves the choice and reloads this page onto the new run.
    switchRun: (runId) => bridge.switchRun(runId),
    switchNetwork: (json) => bridge.switchNetwork(json),
    desktopWallet: bridge.wallet,
    setPayout: () => {},
  };
}
