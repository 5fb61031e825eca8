// The dashboard window's preload: exposes `window.swarmDesktop` (shared/app/bridge.ts), one
// method per action on a fixed channel. Sandboxed, so bundled to CommonJS with only 'electron'
// left to require; ipcRenderer itself never reaches the page.
import { contextBridge, ipcRenderer } from 'electron';
import type { DesktopBridge, TrainerEvent } from '../shared/app/bridge.js';
import type { PolicyView } from '../shared/policy/types.js';
import { EVENTS, invoker, type RendererIpc, subscribe, walletBridge } from './ipc-contract.js';

export function desktopBridge(ipc: RendererIpc): DesktopBridge {
  const invoke = invoker(ipc);
  return {
    config: () => invoke('config'),
    policy: () => invoke('policy'),
    saveSettings: (settings) => invoke('saveSettings', settings),
    snooze: (hours) => invoke('snooze', hours),
    pause: () => invoke('pause'),
    resume: () => invoke('resume'),
    switchRun: (runId) => invoke('switchRun', runId),
    switchNetwork: (json) => invoke('switchNetwork', json ?? null),
    onPolicy: (listener) => subscribe<PolicyView>(ipc, EVENTS.policy, listener),
    onTrainerEvent: (listener) => subscribe<TrainerEvent>(ipc, EVENTS.trainerEvent, listener),
    wallet: walletBridge(ipc),
  };
}

contextBridge.exposeInMainWorld('swarmDesktop', desktopBridge(ipcRenderer));
