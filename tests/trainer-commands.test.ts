// How the policy loop's commands reach a trainer: the desktop trainer window's preload passes on
// only commands the IPC contract accepts (what arrives over IPC is untrusted), and the trainer
// (browser/trainer.ts, with the peer session faked) follows them in order, a start never racing
// the graceful leave before it.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { TrainerBridge } from '../shared/app/bridge.js';
import type { TrainerCommand } from '../shared/policy/types.js';

const fakes = vi.hoisted(() => {
  const listeners = new Map<string, ((event: unknown, value: unknown) => void)[]>();
  const ipcRenderer = {
    invoke: async () => undefined,
    send: () => {},
    on: (channel: string, fn: (event: unknown, value: unknown) => void) => listeners.set(channel, [...(listeners.get(channel) ?? []), fn]),
    removeListener: () => {},
    emit: (channel: string, value: unknown) => {
      for (const fn of listeners.get(channel) ?? []) fn({ sender: 'the IpcRendererEvent' }, value);
    },
  };
  const exposed = new Map<string, unknown>();
  /** What the fake sessions were asked, in order. */
  const calls: string[] = [];
  let sessions = 0;
  class FakeSession {
    private readonly id = ++sessions;
    private end: (reason: string) => void = () => {};
    on(): void {}
    setDuty(duty: number): void {
      calls.push(`session ${this.id} duty ${duty}`);
    }
    run(): Promise<string> {
      calls.push(`session ${this.id} runs`);
      return new Promise((resolve) => (this.end = resolve));
    }
    async leave(reason: string): Promise<void> {
      calls.push(`session ${this.id} leaving: ${reason}`);
      // Handing the stage to an heir takes a while.
      await new Promise((r) => setTimeout(r, 20));
      calls.push(`session ${this.id} left`);
      this.end(reason);
    }
  }
  return { ipcRenderer, exposed, calls, FakeSession };
});

vi.mock('electron', () => ({ contextBridge: { exposeInMainWorld: (k: string, api: unknown) => fakes.exposed.set(k, api) }, ipcRenderer: fakes.ipcRenderer }));
vi.mock('../shared/peer/session.js', () => ({ PeerSession: fakes.FakeSession, SESSION_EVENT_NAMES: [] }));

describe("the trainer window's preload", () => {
  afterEach(() => vi.restoreAllMocks());

  it('passes on the commands the contract accepts and drops the others with a warning', async () => {
    const { EVENTS } = await import('../electron/ipc-contract.js');
    await import('../electron/trainer-preload.js');
    const bridge = fakes.exposed.get('swarmTrainer') as TrainerBridge;
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const got: TrainerCommand[] = [];
    bridge.onCommand((c) => got.push(c));
    const sent: unknown[] = [
      { type: 'start' },
      { type: 'duty', duty: 0.5 },
      { type: 'duty', duty: 7 },
      { type: 'exec', cmd: 'rm -rf /' },
      { type: 'leave' },
      { type: 'start', extra: true },
      'start',
      { type: 'leave', reason: 'game' },
    ];
    for (const value of sent) fakes.ipcRenderer.emit(EVENTS.trainerCommand, value);
    expect(got).toEqual([{ type: 'start' }, { type: 'duty', duty: 0.5 }, { type: 'leave', reason: 'game' }]);
    expect(warn).toHaveBeenCalledTimes(5);
    expect(warn.mock.calls[0][0]).toMatch(/^swarm:trainer:command: dropped an invalid command: duty: /);
  });
});

describe('the trainer', () => {
  it('follows commands in order: a start after a leave waits until the stage is handed on', async () => {
    vi.stubGlobal('navigator', { userAgent: 'test' });
    vi.stubGlobal('WebSocket', class {}); // Node 20 has none; the fake session opens no socket
    try {
      const { Trainer } = await import('../browser/trainer.js');
      const { memoryStorage } = await import('../browser/storage.js');
      const noRtc = () => {
        throw new Error('the fake session opens no channel');
      };
      const trainer = new Trainer({ config: { coordinator: 'ws://127.0.0.1:1' }, storage: memoryStorage(), name: 't', runtime: 'browser', rtc: noRtc, emit: () => {} });
      const commands: TrainerCommand[] = [{ type: 'start' }, { type: 'duty', duty: 0.5 }, { type: 'leave', reason: 'game' }, { type: 'start' }, { type: 'duty', duty: 1 }];
      await Promise.all(commands.map((c) => trainer.follow(c)));
      expect(fakes.calls).toEqual([
        'session 1 duty 1',
        'session 1 runs',
        'session 1 duty 0.5',
        'session 1 leaving: game',
        'session 1 left',
        'session 2 duty 0.5',
        'session 2 runs',
        'session 2 duty 1',
      ]);
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
