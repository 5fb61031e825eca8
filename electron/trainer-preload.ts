// The hidden training window's preload: exposes `window.swarmTrainer` (renderer/desktop-bridge.ts):
// the page reports its session's events and follows the main process's start/leave/duty commands.
// Sandboxed, so bundled to CommonJS with only 'electron' left to require.
import { contextBridge, ipcRenderer } from 'electron';
import type { TrainerBridge, TrainerCommand } from '../shared/app/bridge.js';
import { CHANNELS, EVENTS, invoker, type RendererIpc, subscribe, walletBridge } from './ipc-contract.js';

export function trainerBridge(ipc: RendererIpc): TrainerBridge {
  const invoke = invoker(ipc);
  return {
    config: () => invoke('config'),
    // One way: a training step must never wait on the main process.
    report: (event) => ipc.send(CHANNELS.report, event),
    onCommand: (listener) => subscribe<TrainerCommand>(ipc, EVENTS.trainerCommand, listener),
    wallet: walletBridge(ipc),
  };
}

contextBridge.exposeInMainWorld('swarmTrainer', trainerBridge(ipcRenderer));
