// Entry of the dashboard bundle: in the desktop app its preload has put `swarmDesktop` on window;
// in a browser tab the page's own server hands out the swarm's coordinates at /config.json.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import type { AppHost } from './app-host.js';
import type { AppConfig, DesktopBridge } from '../shared/app/bridge.js';
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
  const served = r?.ok ? ((await r.json()) as AppConfig) : undefined;
  const coordinator = q.get('coordinator') ?? served?.coordinator;
  if (!coordinator) throw new Error('this page needs a swarm: open it from `npm start`, or add ?coordinator=ws://HOST:PORT to the address');
  return { ...served, coordinator };
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
