// The browser tab's side of the shared policy loop (shared/policy/loop.ts): what a page can know of
// the machine (its battery, and the processes and GPU sensors the local server that served it
// reports at /machine), and the user's settings and pause kept in localStorage.
import { DEFAULT_SETTINGS, type MachineReading, PolicyLoop, type PolicyOutputs, parseSavedSettings } from '../../shared/policy/index.js';
import type { GpuSensor, PolicySettings } from '../../shared/policy/types.js';

const SETTINGS_KEY = 'swarm.settings';
const PAUSED_KEY = 'swarm.pausedUntil';

function loadSettings(): PolicySettings {
  const raw = localStorage.getItem(SETTINGS_KEY);
  if (!raw) return DEFAULT_SETTINGS;
  try {
    return parseSavedSettings(JSON.parse(raw));
  } catch (e) {
    console.warn(`saved settings ignored: ${(e as Error).message}`);
    return DEFAULT_SETTINGS;
  }
}

/** The latest time a Date can hold: a pause saved beyond it is one until resumed. */
const MAX_DATE_MS = 8.64e15;

/**
 * Epoch ms, or Infinity (saved as "Infinity": paused until resumed); nothing saved or unreadable:
 * not paused. Earlier versions saved "until resumed" as Number.MAX_SAFE_INTEGER, past any date.
 */
function loadPausedUntil(): number | undefined {
  const until = Number(localStorage.getItem(PAUSED_KEY) ?? 0) || undefined;
  return until !== undefined && until > MAX_DATE_MS ? Number.POSITIVE_INFINITY : until;
}

function savePausedUntil(until: number | undefined): void {
  if (until) localStorage.setItem(PAUSED_KEY, String(until));
  else localStorage.removeItem(PAUSED_KEY);
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

async function battery(): Promise<MachineReading['battery']> {
  const nav = navigator as Navigator & { getBattery?(): Promise<{ charging: boolean; level: number }> };
  const b = await nav.getBattery?.().catch(() => undefined);
  // Chromium reports a desktop as a full, charging battery: that is "no battery".
  if (!b || (b.charging && b.level === 1)) return undefined;
  return { onBattery: !b.charging, percent: Math.round(b.level * 100) };
}

function tabReader(): () => Promise<MachineReading> {
  let sensed = NO_SENSORS;
  return async () => {
    sensed = await machine(sensed);
    // A page cannot see keyboard and mouse use outside itself: the tab was opened to train.
    return { idleSeconds: Number.POSITIVE_INFINITY, processes: sensed.processes, gpus: sensed.gpus, battery: await battery() };
  };
}

/** The loop on the tab's saved settings and pause, started. */
export function startTabPolicy(outputs: PolicyOutputs): PolicyLoop {
  const loop = new PolicyLoop({
    settings: loadSettings(),
    pausedUntil: loadPausedUntil(),
    read: tabReader(),
    outputs,
    store: { saveSettings: (settings) => localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings)), savePausedUntil },
  });
  loop.start();
  return loop;
}
