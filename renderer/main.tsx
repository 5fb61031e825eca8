// Entry of the dashboard bundle: in the desktop app its preload has put `swarmDesktop` on window;
// in a browser tab the page's own server hands out at /config.json a coordinator, or a network whose
// chain lists the run to join (?run=ID asks for one; ?coordinator=URL overrides the server's).
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import type { AppHost } from './app-host.js';
import type { AppConfig, DesktopBridge, SiteConfig } from '../shared/app/bridge.js';
import { resolveAppConfig, withChosenNetwork } from '../shared/app/join-run.js';
import { chosenNetwork } from './network-choice.js';
import { desktopHost } from './hosts/desktop.js';
import { tabHost } from './hosts/tab.js';
import { useDashboard } from './store.js';
import './styles.css';

declare global {
  interface Window {
    swarmDesktop?: DesktopBridge;
  }
}

async function tabConfig(): Promise<AppConfig> {
  const q = new URLSearchParams(location.search);
  const r = await fetch('/config.json', { cache: 'no-store' }).catch(() => undefined);
  const served = withChosenNetwork(r?.ok ? ((await r.json()) as SiteConfig) : {}, chosenNetwork());
  const coordinator = q.get('coordinator') ?? served.coordinator;
  return resolveAppConfig({ ...served, ...(coordinator ? { coordinator } : {}) }, q.get('run') ?? undefined);
}

async function main(): Promise<void> {
  const host: AppHost = window.swarmDesktop
    ? await desktopHost(window.swarmDesktop)
    : await tabHost(await tabConfig(), new URLSearchParams(location.search).get('name') ?? 'browser tab');
  useDashboard.getState().attach(host);
  createRoot(document.getElementById('root')!).render(
    <StrictMode>
      <App host={host} />
    </StrictMode>,
  );
}

main().catch((e: Error) => {
  document.getElementById('root')!.textContent = `The dashboard could not start: ${e.message}`;
});
