// The dashboard in a browser tab: the peer trains in a worker of this tab (browser/trainer-client.ts)
// once its user chose to (hosts/train-choice.ts), following the shared policy loop, which runs here on what a page
// can know of the machine (hosts/tab-policy.ts).
// Switching runs is a graceful leave and a reload of the page asking for the other run (tabConfig below).
import { browserStorage, memoryStorage } from '../../browser/storage.js';
import { TrainerClient } from '../../browser/trainer-client.js';
import type { AppConfig, SiteConfig, TrainerEvent } from '../../shared/app/bridge.js';
import { resolveAppConfig, withChosenNetwork } from '../../shared/app/join-run.js';
import { Emitter } from '../../shared/base/emitter.js';
import type { PolicyView } from '../../shared/policy/types.js';
import type { AppHost } from '../app-host.js';
import { chooseNetwork, chosenNetwork } from '../network-choice.js';
import { startTabPolicy } from './tab-policy.js';
import { trainChoice } from './train-choice.js';

/** The page's own server names the coordinator or network; the address bar may override either. */
async function tabConfig(): Promise<AppConfig> {
  const q = new URLSearchParams(location.search);
  const r = await fetch('/config.json', { cache: 'no-store' }).catch(() => undefined);
  const served = withChosenNetwork(r?.ok ? ((await r.json()) as SiteConfig) : {}, chosenNetwork());
  const coordinator = q.get('coordinator') ?? served.coordinator;
  return resolveAppConfig({ ...served, ...(coordinator ? { coordinator } : {}) }, q.get('run') ?? undefined);
}

export async function tabHost(name: string): Promise<AppHost> {
  const config = await tabConfig();
  const storage = await browserStorage().catch(() => memoryStorage());
  const events = new Emitter<{ trainer: TrainerEvent; policy: PolicyView }>();
  const trainer = new TrainerClient({ config, name, emit: (e) => events.emit('trainer', e) });
  const choice = trainChoice(trainer);
  const loop = startTabPolicy({ command: (c) => choice.follow(c), view: (v) => events.emit('policy', v) });
  return {
    kind: 'tab',
    config,
    storage,
    trainChoice: choice,
    detectGpu: () => void trainer.detect().catch((e: Error) => events.emit('trainer', { type: 'phase', data: { phase: 'failed', why: e.message } })),
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
