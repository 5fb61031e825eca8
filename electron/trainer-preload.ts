// The hidden training window's preload: exposes `window.swarmTrainer` (shared/app/bridge.ts): the
// page reports its session's events and follows the main process's start/leave/duty commands,
// each checked against the contract before the page sees it. Sandboxed, so bundled to CommonJS
// with only 'electron' left to require.
import { contextBridge, ipcRenderer } from 'electron';
import type { TrainerBridge } from '../shared/app/bridge.js';
import { CHANNELS, describeIssues, EVENTS, invoker, type RendererIpc, subscribe, TrainerCommandSchema, walletBridge } from './ipc-contract.js';

export function trainerBridge(ipc: RendererIpc): TrainerBridge {
  const invoke = invoker(ipc);
  return {
    config: () => invoke('config'),
    // One way: a training step must never wait on the main process.
    report: (event) => ipc.send(CHANNELS.report, event),
    // Whatever arrives on the channel is untrusted until checked: a malformed command is dropped, never half-obeyed.
    onCommand: (listener) =>
      subscribe(ipc, EVENTS.trainerCommand, (value) => {
        const command = TrainerCommandSchema.safeParse(value);
        if (command.success) listener(command.data);
        else console.warn(`${EVENTS.trainerCommand}: dropped an invalid command: ${describeIssues(command.error)}`);
      }),
    wallet: walletBridge(ipc),
  };
}

contextBridge.exposeInMainWorld('swarmTrainer', trainerBridge(ipcRenderer));
