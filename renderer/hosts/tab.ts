// The dashboard in a browser tab: the peer trains in this tab (browser/trainer.ts), the policies
// run here on what a page can know (battery, and the machine's processes and GPU sensors when the
// local server that served the page reports them at /machine), and settings live in localStorage.
import { browserStorage, memoryStorage } from '../../browser/storage.js';
import { Trainer } from '../../browser/trainer.js';
import { Emitter } from '../../shared/base/emitter.js';
import { DEFAULT_SETTINGS, INITIAL_MEMORY, decide, parseSettings, snoozeUntil } from '../../shared/policy/index.js';
import type { GpuSensor, MachineSnapshot, PolicyMemory, PolicySettings } from '../../shared/policy/types.js';
import type { AppHost } from '../app-host.js';
import type { AppConfig, PolicyView, TrainerEvent } from '../../shared/app/bridge.js';

const SETTINGS_KEY = 'swarm.settings';
const PAUSED_KEY = 'swarm.pausedUntil';
const TICK_MS = 2000;

function loadSettings(): PolicySettings {
  const raw = localStorage.getItem(SETTINGS_KEY);
  if (!raw) return DEFAULT_SETTINGS;
  try {
    return parseSettings(JSON.parse(raw));
  } catch (e) {
    console.warn(`saved settings ignored: ${(e as Error).message}`);
    return DEFAULT_SETTINGS;
  }
}

type Machine = { processes: string[]; gpus: GpuSensor[] };
const NO_SENSORS: Machine = { processes: [], gpus: [] };

/**
 * The local server's view of the machine (processes, GPU sensors); nothing when it has none. A
 * reading that fails (the server busy) keeps the last one: a game seen must not vanish for it.
 */
async function machine(last: Machine): Promise<Machine> {
  try {
    const r = await fetch('/machine', { cache: 'no-store', signal: AbortSignal.timeout(10_000) });
    if (r.status === 404) return NO_SENSORS;
    if (r.ok) return (await r.json()) as Machine;
  } catch {}
  return last;
}

async function battery(): Promise<MachineSnapshot['battery']> {
  const nav = navigator as Navigator & { getBattery?(): Promise<{ charging: boolean; level: number }> };
  const b = await nav.getBattery?.().catch(() => undefined);
  // Chromium reports a desktop as a full, charging battery: that is "no battery".
  if (!b || (b.charging && b.level === 1)) return undefined;
  return { onBattery: !b.charging, percent: Math.round(b.level * 100) };
}

export async function tabHost(config: AppConfig, name: string): Promise<AppHost> {
  const storage = await browserStorage().catch(() => memoryStorage());
  const events = new Emitter<{ trainer: TrainerEvent; policy: PolicyView }>();
  const trainer = new Trainer({ config, storage, name, runtime: 'browser', emit: (e) => events.emit('trainer', e) });
  let settings = loadSettings();
  let pausedUntil = Number(localStorage.getItem(PAUSED_KEY) ?? 0) || undefined;
  let memory: PolicyMemory = INITIAL_MEMORY;
  let view: PolicyView | undefined;
  let sensed = NO_SENSORS;

  const evaluate = async (): Promise<PolicyView> => {
    const m = (sensed = await machine(sensed));
    // A page cannot see keyboard and mouse use outside itself: the tab was opened to train.
    const snap: MachineSnapshot = { now: Date.now(), idleSeconds: Number.POSITIVE_INFINITY, processes: m.processes, gpus: m.gpus, battery: await battery(), pausedUntil };
    const r = decide(settings, snap, memory);
    memory = r.memory;
    view = { decision: r.decision, settings, ...(pausedUntil && { pausedUntil }) };
    events.emit('policy', view);
    if (r.decision.action === 'pause') await trainer.leave(r.decision.reason);
    else {
      trainer.setDuty(r.decision.duty);
      trainer.start();
    }
    return view;
  };
  const setPaused = (until: number | undefined) => {
    pausedUntil = until;
    if (until) localStorage.setItem(PAUSED_KEY, String(until));
    else localStorage.removeItem(PAUSED_KEY);
    return evaluate();
  };
  let ticking = Promise.resolve();
  setInterval(() => (ticking = ticking.then(() => evaluate().then(() => {}))), TICK_MS);
  void trainer.detect().catch((e: Error) => events.emit('trainer', { type: 'phase', data: { phase: 'failed', why: e.message } }));

  return {
    kind: 'tab',
    config,
    storage,
    policy: async () => view ?? evaluate(),
    async saveSettings(s) {
      settings = parseSettings(s);
      localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
      return evaluate();
    },
    snooze: (hours) => setPaused(snoozeUntil(Date.now(), hours)),
    pause: () => setPaused(Number.MAX_SAFE_INTEGER),
    resume: () => setPaused(undefined),
    onPolicy: (l) => events.on('policy', l),
    onTrainerEvent: (l) => events.on('trainer', l),
    setPayout: (w) => void trainer.setWallet(w),
  };
}
