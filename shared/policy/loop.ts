// The policy loop, one for every host (the desktop app's main process, a browser tab): every 2 s it
// reads the machine through the host's sensors, runs decide(), tells the trainer (start, leave,
// duty) only when the decision changes, and whoever shows the policies only when what they show
// does. Sensors, storage, clock and outputs are the host's, so tests drive it tick by tick.
import { decide, INITIAL_MEMORY } from './decide.js';
import { parseSettings } from './settings.js';
import { type SnoozeHours, snoozeUntil } from './snooze.js';
import type { Decision, MachineSnapshot, PolicyMemory, PolicySettings, PolicyView, TrainerCommand } from './types.js';

export const TICK_MS = 2000;

/** What the host's sensors read: a snapshot but for the time and the user's pause, which the loop knows. */
export type MachineReading = Omit<MachineSnapshot, 'now' | 'pausedUntil'>;

export interface PolicyClock {
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export interface PolicyOutputs {
  /** To the trainer. */
  command(command: TrainerCommand): void;
  /** To whoever shows the policies (the dashboard, the tray). */
  view(view: PolicyView): void;
}

/** Where the host keeps what the user chose: written before the loop acts on a choice. */
export interface PolicyStore {
  saveSettings(settings: PolicySettings): Promise<void> | void;
  /** Absent: a pause lasts as long as the loop (the desktop app's main process). */
  savePausedUntil?(until: number | undefined): void;
}

export interface PolicyLoopOptions {
  /** What the user chose, as the host loaded it. */
  settings: PolicySettings;
  pausedUntil?: number;
  read(): Promise<MachineReading>;
  outputs: PolicyOutputs;
  store: PolicyStore;
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

/** A view as text, to tell a changed one from the last (Infinity, a pause until resumed, survives). */
function viewKey(view: PolicyView): string {
  return JSON.stringify(view, (_k, v) => (v === Number.POSITIVE_INFINITY ? 'Infinity' : v));
}

export class PolicyLoop {
  private decision: Decision = STARTING;
  private memory: PolicyMemory = INITIAL_MEMORY;
  private settings_: PolicySettings;
  private pausedUntil?: number;
  private lastShown = '';
  private timer?: unknown;
  private queue: Promise<unknown> = Promise.resolve();
  private ticking = false;
  private readonly clock: PolicyClock;
  private readonly log: (line: string) => void;

  constructor(private readonly options: PolicyLoopOptions) {
    this.settings_ = options.settings;
    this.pausedUntil = options.pausedUntil;
    this.clock = options.clock ?? SYSTEM_CLOCK;
    this.log = options.log ?? console.warn;
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

  /** Decide now, then every interval. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = this.clock.setInterval(() => {
      // A slow sensor must not pile up readings: skip a beat while one is in flight.
      if (!this.ticking) this.tickLogged();
    }, this.options.intervalMs ?? TICK_MS);
    this.tickLogged();
  }

  stop(): void {
    if (this.timer !== undefined) this.clock.clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Read the machine, decide, and tell whoever must know. Serialized: user actions queue behind a reading. */
  tick(): Promise<PolicyView> {
    return this.change(() => {});
  }

  pause(): Promise<PolicyView> {
    return this.change(() => this.setPausedUntil(Number.POSITIVE_INFINITY));
  }

  resume(): Promise<PolicyView> {
    return this.change(() => this.setPausedUntil(undefined));
  }

  snooze(hours: SnoozeHours): Promise<PolicyView> {
    return this.change(() => this.setPausedUntil(snoozeUntil(this.clock.now(), hours)));
  }

  /** Checked, then saved by the host; the loop decides again with them at once. Invalid: refused, nothing changes. */
  async saveSettings(settings: PolicySettings): Promise<PolicyView> {
    const checked = parseSettings(settings);
    await this.options.store.saveSettings(checked);
    return this.change(() => {
      this.settings_ = checked;
    });
  }

  private tickLogged(): void {
    this.tick().catch((error: Error) => this.log(`policy: a tick failed: ${error.message}`));
  }

  private setPausedUntil(until: number | undefined): void {
    this.pausedUntil = until;
    this.options.store.savePausedUntil?.(until);
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
      const now = this.clock.now();
      if (this.pausedUntil !== undefined && this.pausedUntil <= now) this.setPausedUntil(undefined); // the snooze ended
      const reading = await this.options.read();
      const snapshot: MachineSnapshot = { ...reading, now, ...(this.pausedUntil !== undefined && { pausedUntil: this.pausedUntil }) };
      const { decision, memory } = decide(this.settings_, snapshot, this.memory);
      this.memory = memory;
      this.apply(decision);
      return this.view();
    } finally {
      this.ticking = false;
    }
  }

  private apply(decision: Decision): void {
    const commands = trainerCommands(this.decision, decision);
    this.decision = decision;
    for (const command of commands) this.options.outputs.command(command);
    const view = this.view();
    const key = viewKey(view);
    if (key === this.lastShown) return;
    this.lastShown = key;
    this.options.outputs.view(view);
  }
}
