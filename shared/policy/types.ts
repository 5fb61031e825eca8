// What the machine looks like right now, what the user allows, and what the client decides: the
// data of the training policies. Pure types: the sensors that fill a snapshot live with their host
// (node/sensors.ts for the desktop app and the local server, the page's own APIs in a tab), the
// decision in decide.ts, the loop that runs it in loop.ts.

/** A window of the week in which training is allowed. Days: 0 = Sunday … 6 = Saturday, local time. */
export interface ScheduleWindow {
  days: number[];
  /** "HH:MM", local time; `to` ≤ `from` wraps past midnight. */
  from: string;
  to: string;
}

export interface PolicySettings {
  /** Train only after the user has been idle this many minutes (0: also while they use the machine). */
  idleMinutes: number;
  /** Process names (case-insensitive, with or without ".exe") whose running pauses training. */
  games: string[];
  /** Pause while any application is fullscreen (where the OS tells). */
  pauseOnFullscreen: boolean;
  /** Pause on battery power, and below this charge even when allowed on battery. */
  battery: { pauseOnBattery: boolean; minPercent: number };
  /** Empty: any time. Otherwise training only inside one of these windows. */
  schedule: ScheduleWindow[];
  /** Pause at `pauseAtC`, resume only once below `resumeBelowC` (hysteresis); 0 disables. */
  temperature: { pauseAtC: number; resumeBelowC: number };
  /** Throttle above `throttleAtW` watts of GPU power draw, resume full speed below `resumeBelowW`; 0 disables. */
  power: { throttleAtW: number; resumeBelowW: number };
  /** Fraction of time the GPU may train, 0.1–1 (a duty cycle). */
  gpuUsage: number;
  /** Start the app when the user logs in (opt-in). */
  startAtLogin: boolean;
  /**
   * The GPU that trains (nvidia-smi's index). Set: a game the sensors see on another GPU does not
   * pause training, and temperature and power are read from this GPU. Unset: any GPU counts.
   */
  gpuIndex?: number;
}

export interface GpuSensor {
  index: number;
  name?: string;
  /** Degrees Celsius, where the OS exposes it (e.g. nvidia-smi). */
  temperatureC?: number;
  /** Watts, where the OS exposes it. */
  powerW?: number;
  /** Names of the processes using this GPU, where the OS tells (nvidia-smi does). */
  processes?: string[];
}

/** One reading of the machine, taken by the host's sensors. */
export interface MachineSnapshot {
  /** Epoch milliseconds. */
  now: number;
  /** Seconds since the last keyboard or mouse input. */
  idleSeconds: number;
  /** A fullscreen application is in front (undefined: the OS does not tell). */
  fullscreen?: boolean;
  /** Running process names. */
  processes: string[];
  /** Undefined: no battery (a desktop). */
  battery?: { onBattery: boolean; percent: number };
  gpus: GpuSensor[];
  /** The user's own pause, until resumed or until this time (epoch ms; Infinity: until resumed). */
  pausedUntil?: number;
}

export type PolicyAction = 'run' | 'throttle' | 'pause';

export interface Decision {
  action: PolicyAction;
  /** What a user reads: "paused: game running (eldenring.exe)". */
  reason: string;
  /** Fraction of time to train, 0 when paused. */
  duty: number;
  /** When known, the earliest time the decision may change by itself (a snooze or schedule end). */
  until?: number;
}

/** What the policies remember between snapshots (for hysteresis). */
export interface PolicyMemory {
  hot: boolean;
  powerCapped: boolean;
}

/** What the dashboard and the tray show of the policies: the decision and why, and what the user chose. */
export interface PolicyView {
  decision: Decision;
  settings: PolicySettings;
  /** The user's own pause or snooze (epoch ms; Infinity: until resumed). */
  pausedUntil?: number;
}

/** What the policy loop tells this machine's trainer when its decision changes. */
export type TrainerCommand = { type: 'start' } | { type: 'leave'; reason: string } | { type: 'duty'; duty: number };
