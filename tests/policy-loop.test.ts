// The policy loop every host runs (shared/policy/loop.ts), driven tick by tick with fake sensors,
// store and clock: the trainer hears only changes of decision, the UI only changes of what it shows,
// user actions queue behind a reading and are saved before they act. Then the browser tab's side of
// it (renderer/hosts/tab-policy.ts) with localStorage, fetch and the battery API stubbed.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startTabPolicy } from '../renderer/hosts/tab-policy.js';
import { DEFAULT_SETTINGS, type MachineReading, type PolicyClock, PolicyLoop, type PolicyLoopOptions } from '../shared/policy/index.js';
import type { PolicySettings, PolicyView, TrainerCommand } from '../shared/policy/types.js';

/** A clock the test moves; `fire` runs the interval's callback as the timer would. */
function manualClock(start = Date.UTC(2026, 0, 5, 12)) {
  const clock = {
    t: start,
    fire: undefined as (() => void) | undefined,
    ms: 0,
    now: () => clock.t,
    setInterval: (fn: () => void, ms: number) => {
      clock.fire = fn;
      clock.ms = ms;
      return 1;
    },
    clearInterval: () => {
      clock.fire = undefined;
    },
  };
  return clock satisfies PolicyClock;
}

function harness(over: Partial<PolicyLoopOptions> = {}) {
  const machine: MachineReading = { idleSeconds: 3600, processes: [], gpus: [] };
  const commands: TrainerCommand[] = [];
  const views: PolicyView[] = [];
  const saved: { settings: PolicySettings[]; paused: (number | undefined)[] } = { settings: [], paused: [] };
  const lines: string[] = [];
  const clock = manualClock();
  /** How many readings began; while `gate` is set, a reading waits for it (a slow sensor). */
  const sensor: { reads: number; gate?: Promise<void> } = { reads: 0 };
  const loop = new PolicyLoop({
    settings: DEFAULT_SETTINGS,
    read: async () => {
      sensor.reads++;
      await sensor.gate;
      return structuredClone(machine);
    },
    outputs: { command: (c) => commands.push(c), view: (v) => views.push(v) },
    store: { saveSettings: (s) => void saved.settings.push(s), savePausedUntil: (u) => void saved.paused.push(u) },
    clock,
    log: (l) => lines.push(l),
    ...over,
  });
  return { loop, machine, commands, views, saved, lines, clock, sensor };
}

describe('the policy loop', () => {
  it('tells the trainer only when the decision changes, and the UI only when what it shows changes', async () => {
    const h = harness();
    await h.loop.tick();
    await h.loop.tick();
    expect(h.commands).toEqual([{ type: 'start' }, { type: 'duty', duty: 1 }]);
    expect(h.views).toHaveLength(1);
    h.machine.idleSeconds += 60; // another reason ("idle for 61 min"), the same decision
    await h.loop.tick();
    expect(h.commands).toHaveLength(2);
    expect(h.views).toHaveLength(2);
    h.machine.processes = ['eldenring.exe'];
    await h.loop.tick();
    await h.loop.tick();
    expect(h.commands.slice(2)).toEqual([{ type: 'leave', reason: 'paused: game running (eldenring.exe)' }]);
    expect(h.views).toHaveLength(3);
    h.machine.processes = [];
    await h.loop.tick();
    expect(h.commands.slice(3)).toEqual([{ type: 'start' }, { type: 'duty', duty: 1 }]);
  });

  it('shows "starting" and commands nothing before the first reading; brings a fresh trainer to the current decision', async () => {
    const h = harness();
    expect(h.loop.view().decision).toMatchObject({ action: 'pause', reason: 'starting: reading the machine' });
    expect(h.loop.currentCommands()).toEqual([]);
    await h.loop.tick();
    expect(h.loop.currentCommands()).toEqual([{ type: 'start' }, { type: 'duty', duty: 1 }]);
  });

  it('decides at once on start, then every 2 s, skipping a beat while a slow reading is in flight', async () => {
    const h = harness();
    let release: () => void = () => {};
    h.sensor.gate = new Promise((resolve) => (release = resolve));
    h.loop.start();
    h.loop.start(); // a second start changes nothing
    expect(h.clock.ms).toBe(2000);
    await vi.waitFor(() => expect(h.sensor.reads).toBe(1));
    h.clock.fire?.();
    await Promise.resolve();
    expect(h.sensor.reads).toBe(1);
    release();
    await vi.waitFor(() => expect(h.commands).toHaveLength(2));
    h.clock.fire?.();
    await vi.waitFor(() => expect(h.sensor.reads).toBe(2));
    h.loop.stop();
    expect(h.clock.fire).toBeUndefined();
  });

  it('queues a user action behind the reading in flight, and saves the pause before acting on it', async () => {
    const h = harness();
    await h.loop.tick();
    let release: () => void = () => {};
    h.sensor.gate = new Promise((resolve) => (release = resolve));
    const slow = h.loop.tick();
    const paused = h.loop.pause();
    await Promise.resolve();
    expect(h.saved.paused).toEqual([]);
    release();
    expect((await slow).pausedUntil).toBeUndefined();
    const view = await paused;
    expect(h.saved.paused).toEqual([Number.POSITIVE_INFINITY]);
    expect(view).toMatchObject({ pausedUntil: Number.POSITIVE_INFINITY, decision: { action: 'pause', reason: 'paused by you' } });
    expect(h.commands.at(-1)).toEqual({ type: 'leave', reason: 'paused by you' });
    await h.loop.resume();
    expect(h.saved.paused.at(-1)).toBeUndefined();
    expect(h.commands.slice(-2)).toEqual([{ type: 'start' }, { type: 'duty', duty: 1 }]);
  });

  it('ends a snooze by itself when the clock passes it, and forgets it in the store', async () => {
    const h = harness();
    const view = await h.loop.snooze(3);
    expect(view.pausedUntil).toBe(h.clock.t + 3 * 3_600_000);
    expect(view.decision.reason).toMatch(/^snoozed until/);
    h.clock.t += 3 * 3_600_000;
    expect((await h.loop.tick()).pausedUntil).toBeUndefined();
    expect(h.saved.paused).toEqual([view.pausedUntil, undefined]);
    expect(h.commands).toEqual([{ type: 'start' }, { type: 'duty', duty: 1 }]);
  });

  it('starts paused from a pause the host kept, telling the trainer nothing', async () => {
    const h = harness({ pausedUntil: Number.POSITIVE_INFINITY });
    expect((await h.loop.tick()).decision.reason).toBe('paused by you');
    expect(h.commands).toEqual([]);
  });

  it('saves checked settings before deciding with them; refuses invalid ones and changes nothing', async () => {
    const h = harness();
    await h.loop.tick();
    await expect(h.loop.saveSettings({ ...DEFAULT_SETTINGS, gpuUsage: 7 })).rejects.toThrow(/gpuUsage: must be between 0.1 and 1/);
    expect(h.saved.settings).toEqual([]);
    expect(h.loop.settings).toEqual(DEFAULT_SETTINGS);
    const view = await h.loop.saveSettings({ ...DEFAULT_SETTINGS, gpuUsage: 0.5 });
    expect(h.saved.settings).toEqual([{ ...DEFAULT_SETTINGS, gpuUsage: 0.5 }]);
    expect(view.decision).toMatchObject({ action: 'throttle', duty: 0.5 });
    expect(h.commands.at(-1)).toEqual({ type: 'duty', duty: 0.5 });
  });

  it('logs a tick whose reading fails and keeps going', async () => {
    let fail = true;
    const h = harness({ read: async () => (fail ? Promise.reject(new Error('sensor gone')) : { idleSeconds: 3600, processes: [], gpus: [] }) });
    h.loop.start();
    await vi.waitFor(() => expect(h.lines).toEqual(['policy: a tick failed: sensor gone']));
    fail = false;
    h.clock.fire?.();
    await vi.waitFor(() => expect(h.commands).toHaveLength(2));
    h.loop.stop();
  });
});

// ---------------------------------------------------------------------------------------------

describe("the browser tab's policy loop", () => {
  const store = new Map<string, string>();
  const stubPage = (machine: { processes: string[] } | 'missing') => {
    store.clear();
    vi.stubGlobal('localStorage', {
      getItem: (k: string) => store.get(k) ?? null,
      setItem: (k: string, v: string) => void store.set(k, v),
      removeItem: (k: string) => void store.delete(k),
    });
    vi.stubGlobal('navigator', {});
    vi.stubGlobal('fetch', async (url: string) => {
      expect(url).toBe('/machine');
      if (machine === 'missing') return new Response('not found', { status: 404 });
      return Response.json({ processes: machine.processes, gpus: [] });
    });
  };
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  function started() {
    const commands: TrainerCommand[] = [];
    const views: PolicyView[] = [];
    const loop = startTabPolicy({ command: (c) => commands.push(c), view: (v) => views.push(v) });
    return { loop, commands, views };
  }

  it('pauses for a game the local server sees, and trains where it has no sensors', async () => {
    const machine = { processes: ['eldenring.exe'] };
    stubPage(machine);
    const t = started();
    try {
      await vi.waitFor(() => expect(t.views.at(-1)?.decision.reason).toBe('paused: game running (eldenring.exe)'));
      expect(t.commands).toEqual([]);
      machine.processes = [];
      await t.loop.tick();
      expect(t.commands).toEqual([{ type: 'start' }, { type: 'duty', duty: 1 }]);
    } finally {
      t.loop.stop();
    }
    stubPage('missing');
    const u = started();
    try {
      await vi.waitFor(() => expect(u.views.at(-1)?.decision).toMatchObject({ action: 'run', reason: 'training' }));
    } finally {
      u.loop.stop();
    }
  });

  it('keeps settings and the pause in localStorage, and starts from what it kept', async () => {
    stubPage({ processes: [] });
    const t = started();
    try {
      await t.loop.saveSettings({ ...DEFAULT_SETTINGS, gpuUsage: 0.6 });
      await t.loop.pause();
      expect(JSON.parse(store.get('swarm.settings') ?? '{}').gpuUsage).toBe(0.6);
      expect(store.get('swarm.pausedUntil')).toBe('Infinity');
    } finally {
      t.loop.stop();
    }
    const again = started();
    try {
      const view = await again.loop.tick();
      expect(view).toMatchObject({ pausedUntil: Number.POSITIVE_INFINITY, decision: { reason: 'paused by you' }, settings: { gpuUsage: 0.6 } });
      await again.loop.resume();
      expect(store.has('swarm.pausedUntil')).toBe(false);
    } finally {
      again.loop.stop();
    }
    // How earlier versions saved a pause until resumed.
    store.set('swarm.pausedUntil', String(Number.MAX_SAFE_INTEGER));
    const older = started();
    older.loop.stop();
    expect(await older.loop.tick()).toMatchObject({ pausedUntil: Number.POSITIVE_INFINITY, decision: { reason: 'paused by you' } });
  });

  it('fills what older saved settings lack with defaults, keeping the user’s choices', async () => {
    stubPage({ processes: [] });
    const { startAtLogin: _dropped, ...older } = { ...DEFAULT_SETTINGS, gpuUsage: 0.3 };
    store.set('swarm.settings', JSON.stringify(older));
    const t = started();
    t.loop.stop();
    expect((await t.loop.tick()).settings).toEqual({ ...DEFAULT_SETTINGS, gpuUsage: 0.3 });
  });

  it('ignores unreadable saved settings (the defaults apply)', async () => {
    stubPage({ processes: [] });
    store.set('swarm.settings', '{"gpuUsage": 7}');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const t = started();
    try {
      expect((await t.loop.tick()).settings).toEqual(DEFAULT_SETTINGS);
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/^saved settings ignored: invalid settings: gpuUsage/));
    } finally {
      t.loop.stop();
      warn.mockRestore();
    }
  });
});
