// Entry of the dashboard bundle: in the desktop app its preload has put `swarmDesktop` on window;
// in a browser tab the page's own server hands out at /config.json a coordinator, or a network whose
// chain lists the run to join (?run=ID asks for one; ?coordinator=URL overrides the server's).
//
// Start-up comes in steps (the host's code, the host, the frame's code, its wallet, the first page,
// the first render), each in a task of its own, so the page never stops answering for long; the
// host's heavy work (a tab's GPU benchmark) waits for the first screen.
import { StrictMode, startTransition } from 'react';
import { createRoot } from 'react-dom/client';
import type { AppHost } from './app-host.js';
import type { DesktopBridge } from '../shared/app/bridge.js';
import { useDashboard } from './store.js';
import './styles.css';

declare global {
  interface Window {
    swarmDesktop?: DesktopBridge;
  }
}

/** Lets the browser draw and answer input before the next step. */
const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

async function startHost(bridge: DesktopBridge | undefined): Promise<AppHost> {
  if (bridge) {
    const { desktopHost } = await import('./hosts/desktop.js');
    await nextTask();
    return desktopHost(bridge);
  }
  const { tabHost } = await import('./hosts/tab.js');
  await nextTask();
  return tabHost(new URLSearchParams(location.search).get('name') ?? 'browser tab');
}

async function main(): Promise<void> {
  // The chain's code, most of what a host needs, in two steps: its config (zod), then its client (viem).
  for (const chainCode of [() => import('../shared/chain/config.js'), () => import('../shared/chain/find-run.js')]) {
    await chainCode();
    await nextTask();
  }
  const host = await startHost(window.swarmDesktop);
  useDashboard.getState().attach(host);
  const { App, prepare } = await import('./App.js');
  for (const step of prepare(host, useDashboard.getState().page)) {
    await nextTask();
    await step();
  }
  await nextTask();
  const root = document.getElementById('root')!;
  const drawn = replaced(root);
  // A transition: React renders the first screen in slices, answering input between them.
  startTransition(() =>
    createRoot(root).render(
      <StrictMode>
        <App />
      </StrictMode>,
    ),
  );
  await drawn;
  await nextTask();
  host.detectGpu?.();
}

/** Resolves once React has put the first screen in `root`, in place of the static "Starting…". */
function replaced(root: HTMLElement): Promise<void> {
  return new Promise((resolve) => {
    const seen = new MutationObserver(() => {
      seen.disconnect();
      resolve();
    });
    seen.observe(root, { childList: true });
  });
}

main().catch((e: Error) => {
  document.getElementById('root')!.textContent = `The dashboard could not start: ${e.message}`;
});
