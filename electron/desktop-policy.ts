// The desktop app's side of the shared policy loop (shared/policy/loop.ts): the main process's
// sensors (Electron's powerMonitor and node/sensors.ts, the OS's own tools) and settings.json in
// the app's userData. The loop tells the trainer window, the dashboard and the tray (electron/app.ts).
import { join } from 'node:path';
import { DEFAULT_SETTINGS, type MachineReading, type PolicyClock, PolicyLoop, type PolicyOutputs, parseSavedSettings } from '../shared/policy/index.js';
import type { GpuSensor, PolicySettings } from '../shared/policy/types.js';
import { keepAside, readIfExists, writeFileAtomic } from './user-files.js';

export const SETTINGS_FILE = 'settings.json';

export interface PolicySensors {
  /** Seconds since the last keyboard or mouse input (powerMonitor.getSystemIdleTime). */
  idleSeconds(): number;
  /** powerMonitor.isOnBatteryPower. */
  onBattery(): boolean;
  /** The charge in percent, where a sensor tells (Electron's main process does not). */
  batteryPercent?(): Promise<number | undefined>;
  readProcessesAndGpus(): Promise<{ processes: string[]; gpus: GpuSensor[] }>;
}

export interface DesktopPolicyOptions {
  /** The folder settings.json lives in (the app's userData). */
  dir: string;
  sensors: PolicySensors;
  outputs: PolicyOutputs;
  clock?: PolicyClock;
  log?: (line: string) => void;
  intervalMs?: number;
}

/** settings.json, checked; missing: defaults; corrupt: kept aside as settings.json.bad and defaults used. */
export async function loadSettings(dir: string, log: (line: string) => void = console.warn): Promise<PolicySettings> {
  const file = join(dir, SETTINGS_FILE);
  const text = await readIfExists(file);
  if (text === undefined) return structuredClone(DEFAULT_SETTINGS);
  try {
    return parseSavedSettings(JSON.parse(text));
  } catch (error) {
    await keepAside(file, 'settings', log);
    log(`settings: ${file} is unusable (${(error as Error).message}); kept as ${SETTINGS_FILE}.bad, using the defaults`);
    return structuredClone(DEFAULT_SETTINGS);
  }
}

/**
 * The machine as the main process sees it. Processes and GPUs that cannot be read (nvidia-smi hung)
 * are decided without, logged once per outage rather than every 2 s.
 */
function desktopReader(sensors: PolicySensors, log: (line: string) => void): () => Promise<MachineReading> {
  let failing = false;
  const readProcesses = async () => {
    try {
      const read = await sensors.readProcessesAndGpus();
      if (failing) log('sensors: reading processes and GPUs again');
      failing = false;
      return read;
    } catch (error) {
      if (!failing) log(`sensors: cannot read processes and GPUs (${(error as Error).message}); deciding without them`);
      failing = true;
      return { processes: [], gpus: [] };
    }
  };
  return async () => {
    const [{ processes, gpus }, percent] = await Promise.all([readProcesses(), sensors.batteryPercent?.().catch(() => undefined)]);
    const onBattery = sensors.onBattery();
    return {
      idleSeconds: sensors.idleSeconds(),
      processes,
      gpus,
      // Charge unknown: NaN compares below no threshold, so (as with every unreadable sensor in
      // decide) it never pauses by itself; "pause on battery" still does.
      ...(onBattery && { battery: { onBattery, percent: percent ?? Number.NaN } }),
    };
  };
}

/** The loop on the saved settings; a pause lasts until the app quits. Not started: the caller starts it once its outputs are wired. */
export async function openDesktopPolicy(options: DesktopPolicyOptions): Promise<PolicyLoop> {
  const log = options.log ?? console.warn;
  const file = join(options.dir, SETTINGS_FILE);
  return new PolicyLoop({
    settings: await loadSettings(options.dir, log),
    read: desktopReader(options.sensors, log),
    store: { saveSettings: (settings) => writeFileAtomic(file, `${JSON.stringify(settings, null, 2)}\n`, 0o644) },
    outputs: options.outputs,
    clock: options.clock,
    log,
    intervalMs: options.intervalMs,
  });
}
