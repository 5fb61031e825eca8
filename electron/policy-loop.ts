// The main process's policy loop: every 2 s it reads the machine, runs the shared decide(), and
// when the decision changes tells the trainer window (leave / start / duty), the dashboard (a new
// PolicyView) and the tray. Sensors, clock and outputs are injected so tests drive it tick by tick.
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { PolicyView, SnoozeHours, TrainerCommand } from '../shared/app/bridge.js';
import { DEFAULT_SETTINGS, decide, INITIAL_MEMORY, parseSettings, snoozeUntil } from '../shared/policy/index.js';
import type { Decision, GpuSensor, MachineSnapshot, PolicyMemory, PolicySettings } from '../shared/policy/types.js';
import { writeFileAtomic } from './keystore.js';

export const TICK_MS = 2000;
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

export interface PolicyClock {
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export interface PolicyOutputs {
  /** To the trainer window. */
  command(command: TrainerCommand): void;
  /** To the dashboard and the tray. */
  view(view: PolicyView): void;
}

export interface PolicyLoopOptions {
  /** The folder settings.json lives in (the app's userData). */
  dir: string;
  sensors: PolicySensors;
  outputs: PolicyOutputs;
  clock?: PolicyClock;
  log?: (line: string) => void;
  intervalMs?: number;
}

const SYSTEM_CLOCK: PolicyClock = {
  now: () => Date.now(),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (handle) => clearInterval(handle as ReturnType<typeof setInterval>),
};

/** Before the first reading: nothing runs until the machine has been looked at. */
const STARTING: Decision = { action: 'pause', reason: 'starting: reading the machine', duty: 0 };

/**
 * What the trainer must be told when the decision goes from `prev` to `next` (prev undefined: a
 * trainer that knows nothing yet, e.g. one that just loaded). Pausing makes it leave the swarm
 * (handing its stage to an heir) with the reason; resuming starts it again at the decided duty.
 */
export function trainerCommands(prev: Decision | undefined, next: Decision): TrainerCommand[] {
  const wasTraining = prev !== undefined && prev.action !== 'pause';
  if (next.action === 'pause') return wasTraining ? [{ type: 'leave', reason: next.reason }] : [];
  if (!wasTraining) return [{ type: 'start' }, { type: 'duty', duty: next.duty }];
  return prev.duty === next.duty ? [] : [{ type: 'duty', duty: next.duty }];
}

/** settings.json, checked; missing: defaults; corrupt: kept aside as settings.json.bad and defaults used. */
export async function loadSettings(dir: string, log: (line: string) => void = console.warn): Promise<PolicySettings> {
  const file = join(dir, SETTINGS_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return structuredClone(DEFAULT_SETTINGS);
    throw error;
  }
  try {
    const saved: unknown = JSON.parse(text);
    // A file from an older version lacks newer fields: those take their defaults, the user's choices stay.
    return parseSettings(typeof saved === 'object' && saved !== null && !Array.isArray(saved) ? { ...DEFAULT_SETTINGS, ...saved } : saved);
  } catch (error) {
    // Kept for the user (or a bug report) to look at; the next save writes a fresh file.
    await rename(file, `${file}.bad`).catch((e: Error) => log(`settings: could not keep ${file} aside: ${e.message}`));
    log(`settings: ${file} is unusable (${(error as Error).message}); kept as ${SETTINGS_FILE}.bad, using the defaults`);
    return structuredClone(DEFAULT_SETTINGS);
  }
}

export class PolicyLoop {
  private decision: Decision = STARTING;
  private memory: PolicyMemory = INITIAL_MEMORY;
  private pausedUntil?: number;
  private lastPushed = '';
  private timer?: unknown;
  private queue: Promise<unknown> = Promise.resolve();
  private ticking = false;
  private sensorFailing = false;
  private readonly clock: PolicyClock;
  private readonly log: (line: string) => void;

  private constructor(
    private readonly options: PolicyLoopOptions,
    private settings_: PolicySettings,
  ) {
    this.clock = options.clock ?? SYSTEM_CLOCK;
    this.log = options.log ?? console.warn;
  }

  static async open(options: PolicyLoopOptions): Promise<PolicyLoop> {
    return new PolicyLoop(options, await loadSettings(options.dir, options.log));
  }

  get settings(): PolicySettings {
    return this.settings_;
  }

  view(): PolicyView {
    return { decision: this.decision, settings: this.settings_, ...(this.pausedUntil !== undefined && { pausedUntil: this.pausedUntil }) };
  }

  /** The commands that bring a trainer that knows nothing (it just loaded) to the current decision. */
  currentCommands(): TrainerCommand[] {
    return trainerCommands(undefined, this.decision);
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = this.clock.setInterval(() => {
      // A slow sensor must not pile up readings: skip a beat while one is in flight.
      if (!this.ticking) this.tickLogged();
    }, this.options.intervalMs ?? TICK_MS);
    this.tickLogged();
  }

  private tickLogged(): void {
    this.tick().catch((error: Error) => this.log(`policy: a tick failed: ${error.message}`));
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Read the machine, decide, and tell whoever must know. Serialized: user actions queue behind a reading. */
  tick(): Promise<PolicyView> {
    const run = this.queue.then(() => this.evaluate());
    this.queue = run.catch(() => undefined);
    return run;
  }

  pause(): Promise<PolicyView> {
    return this.change(() => {
      this.pausedUntil = Number.POSITIVE_INFINITY;
    });
  }

  resume(): Promise<PolicyView> {
    return this.change(() => {
      this.pausedUntil = undefined;
    });
  }

  snooze(hours: SnoozeHours): Promise<PolicyView> {
    return this.change(() => {
      this.pausedUntil = snoozeUntil(this.clock.now(), hours);
    });
  }

  /** Checked, then written atomically; the loop decides again with them at once. */
  async saveSettings(settings: PolicySettings): Promise<PolicyView> {
    const checked = parseSettings(settings);
    await writeFileAtomic(join(this.options.dir, SETTINGS_FILE), `${JSON.stringify(checked, null, 2)}\n`, 0o644);
    return this.change(() => {
      this.settings_ = checked;
    });
  }

  private change(apply: () => void): Promise<PolicyView> {
    const run = this.queue.then(() => {
      apply();
      return this.evaluate();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async evaluate(): Promise<PolicyView> {
    this.ticking = true;
    try {
      const snapshot = await this.snapshot();
      const { decision, memory } = decide(this.settings_, snapshot, this.memory);
      this.memory = memory;
      this.apply(decision);
      return this.view();
    } finally {
      this.ticking = false;
    }
  }

  private async snapshot(): Promise<MachineSnapshot> {
    const now = this.clock.now();
    if (this.pausedUntil !== undefined && this.pausedUntil <= now) this.pausedUntil = undefined; // the snooze ended
    const { sensors } = this.options;
    const [{ processes, gpus }, percent] = await Promise.all([this.readProcesses(), sensors.batteryPercent?.().catch(() => undefined)]);
    const onBattery = sensors.onBattery();
    return {
      now,
      idleSeconds: sensors.idleSeconds(),
      processes,
      gpus,
      // Charge unknown: NaN compares below no threshold, so (as with every unreadable sensor in
      // decide) it never pauses by itself; "pause on battery" still does.
      ...(onBattery && { battery: { onBattery, percent: percent ?? Number.NaN } }),
      ...(this.pausedUntil !== undefined && { pausedUntil: this.pausedUntil }),
    };
  }

  private async readProcesses(): Promise<{ processes: string[]; gpus: GpuSensor[] }> {
    try {
      const read = await this.options.sensors.readProcessesAndGpus();
      if (this.sensorFailing) this.log('sensors: reading processes and GPUs again');
      this.sensorFailing = false;
      return read;
    } catch (error) {
      // Logged once per outage, not every 2 s.
      if (!this.sensorFailing) this.log(`sensors: cannot read processes and GPUs (${(error as Error).message}); deciding without them`);
      this.sensorFailing = true;
      return { processes: [], gpus: [] };
    }
  }

  private apply(decision: Decision): void {
    const commands = trainerCommands(this.decision, decision);
    this.decision = decision;
    for (const command of commands) this.options.outputs.command(command);
    const view = this.view();
    const key = JSON.stringify(view, (_k, v) => (v === Number.POSITIVE_INFINITY ? 'Infinity' : v));
    if (key !== this.lastPushed) {
      this.lastPushed = key;
      this.options.outputs.view(view);
    }
  }
}
