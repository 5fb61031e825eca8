// The dashboard in a browser tab: the peer trains in this tab (browser/trainer.ts), following the
// shared policy loop, which runs here on what a page can know of the machine (hosts/tab-policy.ts).
import { browserStorage, memoryStorage } from '../../browser/storage.js';
import { Trainer } from '../../browser/trainer.js';
import type { AppConfig, TrainerEvent } from '../../shared/app/bridge.js';
import { Emitter } from '../../shared/base/emitter.js';
import type { PolicyView } from '../../shared/policy/types.js';
import type { AppHost } from '../app-host.js';
import { startTabPolicy } from './tab-policy.js';

export async function tabHost(config: AppConfig, name: string): Promise<AppHost> {
  const storage = await browserStorage().catch(() => memoryStorage());
  const events = new Emitter<{ trainer: TrainerEvent; policy: PolicyView }>();
  const trainer = new Trainer({ config, storage, name, runtime: 'browser', emit: (e) => events.emit('trainer', e) });
  const loop = startTabPolicy({ command: (c) => void trainer.follow(c), view: (v) => events.emit('policy', v) });
  void trainer.detect().catch((e: Error) => events.emit('trainer', { type: 'phase', data: { phase: 'failed', why: e.message } }));
  return {
    kind: 'tab',
    config,
    storage,
    policy: async () => loop.view(),
    saveSettings: (s) => loop.saveSettings(s),
    snooze: (hours) => loop.snooze(hours),
    pause: () => loop.pause(),
    resume: () => loop.resume(),
    onPolicy: (l) => events.on('policy', l),
    onTrainerEvent: (l) => events.on('trainer', l),
    setPayout: (w) => void trainer.setWallet(w),
  };
}
