// The training policy: one snapshot of the machine in, what to do and why out. A pure function of
// its inputs (the clock is `snap.now`, local time is `new Date(snap.now)`), so the host may call it
// as often as it likes and every rule is testable without a machine. The rules pause in priority
// order, the first that applies names itself in the reason; a sensor that cannot be read never pauses.
import { formatUntil, formatWeekTime, inSchedule, nextScheduleChange } from './schedule.js';
import type { Decision, GpuSensor, MachineSnapshot, PolicyMemory, PolicySettings } from './types.js';

export const INITIAL_MEMORY: PolicyMemory = Object.freeze({ hot: false, powerCapped: false });

/** At most this duty while over the power limit: half the time resting halves the average draw. */
export const POWER_CAPPED_DUTY = 0.5;

interface GameSeen {
  name: string;
  /** Indexes of the GPUs whose sensors list it (empty: the OS does not say). */
  gpus: number[];
  /** Seen only on GPUs other than the one that trains. */
  elsewhere: boolean;
}

interface Context {
  settings: PolicySettings;
  snap: MachineSnapshot;
  date: Date;
  memory: PolicyMemory;
  temperatureC?: number;
  powerW?: number;
  games: GameSeen[];
}

export function decide(settings: PolicySettings, snap: MachineSnapshot, memory: PolicyMemory): { decision: Decision; memory: PolicyMemory } {
  const gpus = trainingGpus(settings, snap.gpus);
  const temperatureC = highest(gpus.map((g) => g.temperatureC));
  const powerW = highest(gpus.map((g) => g.powerW));
  const next = nextMemory(settings, temperatureC, powerW, memory);
  const ctx: Context = { settings, snap, date: new Date(snap.now), memory: next, temperatureC, powerW, games: gamesSeen(settings, snap) };
  const decision = userPause(ctx) ?? gameRule(ctx) ?? fullscreenRule(ctx) ?? batteryRule(ctx) ?? scheduled(ctx);
  return { decision: { ...decision, duty: clampDuty(decision.duty) }, memory: next };
}

// ---------------------------------------------------------------------------------------------
// Readings and hysteresis

// The chosen GPU when it reports; otherwise every GPU, so the hottest and hungriest one counts.
function trainingGpus(settings: PolicySettings, gpus: readonly GpuSensor[]): readonly GpuSensor[] {
  const chosen = gpus.filter((g) => g.index === settings.gpuIndex);
  return chosen.length > 0 ? chosen : gpus;
}

function highest(values: (number | undefined)[]): number | undefined {
  const known = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return known.length > 0 ? Math.max(...known) : undefined;
}

// Updated on every snapshot, whatever rule wins: a GPU a game heated up must still cool down
// below the resume threshold before training heats it again.
function nextMemory(settings: PolicySettings, temperatureC: number | undefined, powerW: number | undefined, memory: PolicyMemory): PolicyMemory {
  const { pauseAtC, resumeBelowC } = settings.temperature;
  const { throttleAtW, resumeBelowW } = settings.power;
  const hot = pauseAtC > 0 && temperatureC !== undefined && (memory.hot ? temperatureC >= resumeBelowC : temperatureC >= pauseAtC);
  const powerCapped = throttleAtW > 0 && powerW !== undefined && (memory.powerCapped ? powerW >= resumeBelowW : powerW > throttleAtW);
  return { hot, powerCapped };
}

// ---------------------------------------------------------------------------------------------
// Games

// Linux cuts a process name (comm) to 15 characters: "Cyberpunk2077.exe" runs as "Cyberpunk2077.e".
const COMM_LENGTH = 15;

function processKey(name: string): string {
  return (name.trim().split(/[\\/]/).pop() ?? '').toLowerCase();
}

function matcher(processes: readonly string[]): (game: string) => boolean {
  const names = new Set(processes.map(processKey));
  const cut = [...names].filter((n) => n.length === COMM_LENGTH);
  return (game) => {
    const exe = `${processKey(game).replace(/\.exe$/, '')}.exe`;
    return names.has(exe) || names.has(exe.slice(0, -4)) || cut.some((c) => exe.startsWith(c));
  };
}

function gamesSeen(settings: PolicySettings, snap: MachineSnapshot): GameSeen[] {
  const everywhere = matcher([...snap.processes, ...snap.gpus.flatMap((g) => g.processes ?? [])]);
  const perGpu = snap.gpus.map((g) => ({ index: g.index, has: matcher(g.processes ?? []) }));
  const keys = new Set<string>();
  const seen: GameSeen[] = [];
  for (const name of settings.games) {
    const key = processKey(name).replace(/\.exe$/, '');
    if (keys.has(key) || !everywhere(name)) continue;
    keys.add(key);
    const gpus = perGpu.filter((g) => g.has(name)).map((g) => g.index);
    const elsewhere = settings.gpuIndex !== undefined && gpus.length > 0 && !gpus.includes(settings.gpuIndex);
    seen.push({ name, gpus, elsewhere });
  }
  return seen;
}

// ---------------------------------------------------------------------------------------------
// The rules, in priority order

function pause(reason: string, until?: number): Decision {
  return withUntil({ action: 'pause', reason, duty: 0 }, until);
}

function withUntil(decision: Decision, until: number | undefined): Decision {
  return until !== undefined && Number.isFinite(until) ? { ...decision, until } : decision;
}

function userPause({ snap, date }: Context): Decision | undefined {
  const until = snap.pausedUntil;
  if (until === undefined || !(until > snap.now)) return undefined;
  if (!Number.isFinite(until)) return pause('paused by you');
  return pause(`snoozed until ${formatUntil(date, new Date(until))}`, until);
}

function gameRule({ games }: Context): Decision | undefined {
  const here = games.filter((g) => !g.elsewhere).map((g) => g.name);
  if (here.length === 0) return undefined;
  const more = here.length > 3 ? ` and ${here.length - 3} more` : '';
  return pause(`paused: game running (${here.slice(0, 3).join(', ')}${more})`);
}

function fullscreenRule({ settings, snap }: Context): Decision | undefined {
  return settings.pauseOnFullscreen && snap.fullscreen === true ? pause('paused: a fullscreen app is in front') : undefined;
}

function batteryRule({ settings, snap }: Context): Decision | undefined {
  const battery = snap.battery;
  if (!battery?.onBattery) return undefined;
  if (settings.battery.pauseOnBattery) return pause('paused: on battery power');
  const { minPercent } = settings.battery;
  if (battery.percent < minPercent) return pause(`paused: battery at ${Math.round(battery.percent)} %, below your ${minPercent} %`);
  return undefined;
}

// The schedule and the rules below it: each of their decisions may change when the schedule does.
function scheduled(ctx: Context): Decision {
  const windows = ctx.settings.schedule;
  const change = nextScheduleChange(windows, ctx.date)?.getTime();
  if (!inSchedule(windows, ctx.date)) {
    const resumes = change === undefined ? '' : ` (resumes ${formatWeekTime(new Date(change))})`;
    return pause(`paused: outside your schedule${resumes}`, change);
  }
  const decision = temperatureRule(ctx) ?? idleRule(ctx) ?? runOrThrottle(ctx);
  return withUntil(decision, earliest(decision.until, change));
}

function temperatureRule({ settings, memory, temperatureC }: Context): Decision | undefined {
  if (!memory.hot || temperatureC === undefined) return undefined;
  const { pauseAtC, resumeBelowC } = settings.temperature;
  const t = Math.round(temperatureC);
  if (temperatureC >= pauseAtC) return pause(`paused: GPU at ${t} °C, limit ${pauseAtC} °C; resumes below ${resumeBelowC} °C`);
  return pause(`paused: GPU cooling down (${t} °C, resumes below ${resumeBelowC} °C)`);
}

function idleRule({ settings, snap }: Context): Decision | undefined {
  const wait = settings.idleMinutes * 60;
  const idle = Math.max(0, snap.idleSeconds);
  if (!(idle < wait)) return undefined;
  const active = idle < 60 ? 'just now' : `${span(idle, Math.floor)} ago`;
  const minutes = settings.idleMinutes === 1 ? '1 idle minute' : `${settings.idleMinutes} idle minutes`;
  return pause(`waiting: you were active ${active}; training starts after ${minutes} (in ${span(wait - idle, Math.ceil)})`, snap.now + (wait - idle) * 1000);
}

function runOrThrottle(ctx: Context): Decision {
  const { settings, memory, powerW } = ctx;
  const note = elsewhereNote(ctx);
  if (memory.powerCapped && powerW !== undefined) {
    const { throttleAtW, resumeBelowW } = settings.power;
    const w = Math.round(powerW);
    const reason = powerW > throttleAtW ? `throttled: GPU at ${w} W, limit ${throttleAtW} W` : `throttled: GPU at ${w} W, full speed again below ${resumeBelowW} W`;
    return { action: 'throttle', reason: reason + note, duty: Math.min(settings.gpuUsage, POWER_CAPPED_DUTY) };
  }
  if (settings.gpuUsage < 1) return { action: 'throttle', reason: `throttled: GPU-usage limit ${Math.round(settings.gpuUsage * 100)} %${note}`, duty: settings.gpuUsage };
  const idleSeconds = ctx.snap.idleSeconds;
  const idle = settings.idleMinutes > 0 && Number.isFinite(idleSeconds) ? `training: idle for ${span(Math.max(0, idleSeconds), Math.floor)}` : 'training';
  return { action: 'run', reason: idle + note, duty: 1 };
}

function elsewhereNote({ games, settings }: Context): string {
  const away = games.filter((g) => g.elsewhere);
  if (away.length === 0) return '';
  const where = away.map((g) => `${g.name} runs on GPU ${g.gpus.join('/')}`).join(', ');
  return `; ${where}, not on training GPU ${settings.gpuIndex}`;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  return b === undefined ? a : Math.min(a, b);
}

function clampDuty(duty: number): number {
  return Number.isFinite(duty) ? Math.min(1, Math.max(0, duty)) : 0;
}

/** "45 s", "7 min", "2 h 5 min". */
function span(seconds: number, round: (x: number) => number): string {
  const s = round(seconds);
  if (s < 60) return `${s} s`;
  const minutes = round(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const h = Math.floor(minutes / 60);
  return minutes % 60 === 0 ? `${h} h` : `${h} h ${minutes % 60} min`;
}
