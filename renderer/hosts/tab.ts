// The dashboard in a browser tab: the peer trains in a worker of this tab (browser/trainer-client.ts)
// once its user chose to (hosts/train-choice.ts), following the shared policy loop, which runs here on what a page
// can know of the machine (hosts/tab-policy.ts).
// Switching runs is a graceful leave and a reload of the page asking for the other run (main.tsx).
import { browserStorage, memoryStorage } from '../../browser/storage.js';
import { TrainerClient } from '../../browser/trainer-client.js';
import type { AppConfig, TrainerEvent } from '../../shared/app/bridge.js';
import { Emitter } from '../../shared/base/emitter.js';
import type { PolicyView } from '../../shared/policy/types.js';
import type { AppHost } from '../app-host.js';
import { chooseNetwork } from '../network-choice.js';
import { startTabPolicy } from './tab-policy.js';
import { trainChoice } from './train-choice.js';

export async function tabHost(config: AppConfig, name: string): Promise<AppHost> {
  const storage = await browserStorage().catch(() => memoryStorage());
  const events = new Emitter<{ trainer: TrainerEvent; policy: PolicyView }>();
  const trainer = new TrainerClient({ config, name, emit: (e) => events.emit('trainer', e) });
  const choice = trainChoice(trainer);
  const loop = startTabPolicy({ command: (c) => choice.follow(c), view: (v) => events.emit('policy', v) });
  void trainer.detect().catch((e: Error) => events.emit('trainer', { type: 'phase', data: { phase: 'failed', why: e.message } }));
  return {
    kind: 'tab',
    config,
    storage,
    trainChoice: choice,
    policy: async () => loop.view(),
    saveSettings: (s) => loop.saveSettings(s),
    snooze: (hours) => loop.snooze(hours),
    pause: () => loop.pause(),
    resume: () => loop.resume(),
    onPolicy: (l) => events.on('policy', l),
    onTrainerEvent: (l) => events.on('trainer', l),
    setPayout: (w) => void trainer.setWallet(w),
    switchRun: async (runId) => {
      await trainer.follow({ type: 'leave', reason: `switching to run ${runId}` });
      location.search = runSearch(location.search, runId);
    },
    switchNetwork: async (json) => {
      chooseNetwork(json); // a file that is not a network throws its sentence here, and nothing changes
      await trainer.follow({ type: 'leave', reason: json ? 'switching networks' : "back to this page's network" });
      location.search = runSearch(location.search);
    },
  };
}

/** The page's query for run `runId` (none: the best run of its network): the peer's name kept, no other swarm named. */
export function runSearch(search: string, runId?: string): string {
  const name = new URLSearchParams(search).get('name');
  const q = new URLSearchParams(runId ? { run: runId } : {});
  if (name !== null) q.set('name', name);
  return `?${q}`;
}
