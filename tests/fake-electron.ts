// Fake Electron modules for running the desktop app's main process (electron/app.ts) for real in
// tests: just enough behaviour, and a record of every call. Shared by the main-process tests.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { type AppHandle, type ElectronModules, type StartOptions, startApp } from '../electron/app.js';
import type { PolicySensors } from '../electron/desktop-policy.js';
import { EVENTS } from '../electron/ipc-contract.js';
import type { KeystoreSafeStorage } from '../electron/keystore.js';
import type { TrayItem } from '../electron/tray.js';
import type { AppConfig } from '../shared/app/bridge.js';
import type { PolicyClock } from '../shared/policy/index.js';
import type { TrainerCommand } from '../shared/policy/types.js';

/** The config most tests start with: the loopback coordinator, no chain. */
export const LOOPBACK_CONFIG: AppConfig = { coordinator: 'ws://127.0.0.1:8787' };

export type Listener = (...args: unknown[]) => unknown;

export class FakeEmitter {
  readonly listeners = new Map<string, Listener[]>();
  on(event: string, fn: Listener): this {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), fn]);
    return this;
  }
  once(event: string, fn: Listener): this {
    const wrapped: Listener = (...args) => {
      this.listeners.set(
        event,
        (this.listeners.get(event) ?? []).filter((f) => f !== wrapped),
      );
      return fn(...args);
    };
    return this.on(event, wrapped);
  }
  emit(event: string, ...args: unknown[]): void {
    for (const fn of this.listeners.get(event) ?? []) fn(...args);
  }
}

/** An Electron-style event whose preventDefault is recorded. */
export function fakeEvent<T extends object = object>(extra?: T) {
  const event = {
    defaultPrevented: false,
    preventDefault() {
      event.defaultPrevented = true;
    },
  };
  return Object.assign(event, extra);
}

let nextId = 1;
export class FakeWebContents extends FakeEmitter {
  readonly id = nextId++;
  readonly sent: { channel: string; value: unknown }[] = [];
  windowOpenHandler?: (details: { url: string }) => unknown;
  send(channel: string, value: unknown): void {
    this.sent.push({ channel, value });
  }
  setWindowOpenHandler(handler: (details: { url: string }) => unknown): void {
    this.windowOpenHandler = handler;
  }
  commands(): TrainerCommand[] {
    return this.sent.filter((s) => s.channel === EVENTS.trainerCommand).map((s) => s.value as TrainerCommand);
  }
}

export class FakeBrowserWindow extends FakeEmitter {
  static instances: FakeBrowserWindow[] = [];
  readonly webContents = new FakeWebContents();
  url?: string;
  visible = false;
  focused = false;
  destroyed = false;
  constructor(readonly options: Electron.BrowserWindowConstructorOptions) {
    super();
    FakeBrowserWindow.instances.push(this);
  }
  /** Every URL loaded, in order (a reload loads the same one again). */
  readonly loads: string[] = [];
  async loadURL(url: string): Promise<void> {
    this.url = url;
    this.loads.push(url);
  }
  show(): void {
    this.visible = true;
  }
  hide(): void {
    this.visible = false;
  }
  focus(): void {
    this.focused = true;
  }
  isMinimized(): boolean {
    return false;
  }
  restore(): void {}
  isDestroyed(): boolean {
    return this.destroyed;
  }
  /** What a click on the window's close button does: 'close', then destroyed unless prevented. */
  close(): ReturnType<typeof fakeEvent> {
    const event = fakeEvent();
    this.emit('close', event);
    if (!event.defaultPrevented) this.destroyed = true;
    return event;
  }
}

export class FakeTray {
  static instances: FakeTray[] = [];
  tooltip = '';
  menu: TrayItem[] = [];
  images = 0;
  constructor(readonly image: unknown) {
    FakeTray.instances.push(this);
  }
  setToolTip(text: string): void {
    this.tooltip = text;
  }
  setContextMenu(menu: TrayItem[]): void {
    this.menu = menu;
  }
  setImage(): void {
    this.images++;
  }
  on(): this {
    return this;
  }
  destroy(): void {}
}

export class FakeApp extends FakeEmitter {
  loginItem?: Electron.Settings;
  constructor(
    readonly calls: string[],
    readonly userData: string,
    readonly gotLock: boolean,
    readonly isPackaged: boolean,
  ) {
    super();
  }
  requestSingleInstanceLock(): boolean {
    this.calls.push('requestSingleInstanceLock');
    return this.gotLock;
  }
  quit(): void {
    this.calls.push('quit');
  }
  exit(): void {
    this.calls.push('exit');
  }
  enableSandbox(): void {
    this.calls.push('enableSandbox');
  }
  async whenReady(): Promise<void> {
    this.calls.push('ready');
  }
  getPath(name: string): string {
    return name === 'userData' ? this.userData : join(this.userData, name);
  }
  setLoginItemSettings(settings: Electron.Settings): void {
    this.loginItem = settings;
  }
}

export interface Fakes {
  calls: string[];
  app: FakeApp;
  ipcMain: { handlers: Map<string, Listener>; listeners: Map<string, Listener> };
  protocol: { schemes: Electron.CustomScheme[]; handlers: Map<string, (request: Request) => Promise<Response>> };
  session: { headersListener?: Listener; requestHandler?: Listener; checkHandler?: Listener; deviceHandler?: Listener };
  idleSeconds: number;
  onBattery: boolean;
  modules: ElectronModules;
}

export function reversibleSafeStorage(available = true, backend: ReturnType<KeystoreSafeStorage['getSelectedStorageBackend']> = 'gnome_libsecret'): KeystoreSafeStorage {
  // Encryption here is a byte flip: reversible, and the key never appears in the file as text.
  const flip = (b: Buffer) => Buffer.from(b.map((x) => x ^ 0x5a));
  return {
    isAsyncEncryptionAvailable: async () => available,
    encryptStringAsync: async (text) => flip(Buffer.from(text, 'utf8')),
    decryptStringAsync: async (data) => ({ result: flip(data).toString('utf8'), shouldReEncrypt: false }),
    getSelectedStorageBackend: () => backend,
  };
}

export function fakeElectron(userData: string, opts: { gotLock?: boolean; isPackaged?: boolean } = {}): Fakes {
  const calls: string[] = [];
  const app = new FakeApp(calls, userData, opts.gotLock ?? true, opts.isPackaged ?? false);
  const f = { calls, app, idleSeconds: 3600, onBattery: false } as Fakes;
  f.ipcMain = { handlers: new Map(), listeners: new Map() };
  f.protocol = { schemes: [], handlers: new Map() };
  f.session = {};
  const session = {
    webRequest: { onHeadersReceived: (fn: Listener) => (f.session.headersListener = fn) },
    setPermissionRequestHandler: (fn: Listener) => (f.session.requestHandler = fn),
    setPermissionCheckHandler: (fn: Listener) => (f.session.checkHandler = fn),
    setDevicePermissionHandler: (fn: Listener) => (f.session.deviceHandler = fn),
  };
  const fake = {
    app,
    BrowserWindow: FakeBrowserWindow,
    ipcMain: {
      handle: (channel: string, fn: Listener) => f.ipcMain.handlers.set(channel, fn),
      on: (channel: string, fn: Listener) => f.ipcMain.listeners.set(channel, fn),
    },
    protocol: {
      registerSchemesAsPrivileged: (schemes: Electron.CustomScheme[]) => {
        calls.push('registerSchemesAsPrivileged');
        f.protocol.schemes.push(...schemes);
      },
      handle: (scheme: string, fn: (request: Request) => Promise<Response>) => f.protocol.handlers.set(scheme, fn),
    },
    session: { defaultSession: session },
    Tray: FakeTray,
    Menu: { buildFromTemplate: (template: TrayItem[]) => template },
    nativeImage: { createFromBitmap: (bitmap: Buffer) => ({ bitmap }) },
    powerMonitor: { getSystemIdleTime: () => f.idleSeconds, isOnBatteryPower: () => f.onBattery },
    safeStorage: reversibleSafeStorage(),
  };
  f.modules = fake as unknown as ElectronModules;
  return f;
}

/** A clock the test moves; the loop's 2 s timer never fires by itself (ticks are driven). */
export function manualClock(start = Date.UTC(2026, 0, 5, 12)): PolicyClock & { t: number } {
  const clock = { t: start, now: () => clock.t, setInterval: () => 0, clearInterval: () => {} };
  return clock;
}

export function sensorsWith(state: { processes: string[] }): Partial<PolicySensors> {
  return { readProcessesAndGpus: async () => ({ processes: [...state.processes], gpus: [] }) };
}

export function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'swarm-electron-'));
}

export interface Started {
  fakes: Fakes;
  handle: AppHandle;
  machine: { processes: string[] };
  clock: PolicyClock & { t: number };
  updater: { checks: number; loaded: number };
  logs: string[];
}

export async function start(opts: { gotLock?: boolean; isPackaged?: boolean; env?: Record<string, string>; argv?: string[]; userData?: string } = {}): Promise<Started> {
  const fakes = fakeElectron(opts.userData ?? tmp(), opts);
  const machine = { processes: ['explorer.exe'] };
  const clock = manualClock();
  const updater = { checks: 0, loaded: 0 };
  const logs: string[] = [];
  const options: StartOptions = {
    rendererDir: tmp(),
    preloadDir: '/app/dist/electron',
    // A whole config, so a test joins the loopback coordinator without asking any chain (electron-run-choice.test.ts does).
    env: opts.env ?? { SWARM_APP_CONFIG: JSON.stringify(LOOPBACK_CONFIG) },
    argv: opts.argv,
    sensors: sensorsWith(machine),
    clock,
    log: (line) => logs.push(line),
    loadUpdater: async () => {
      updater.loaded++;
      return { checkForUpdatesAndNotify: async () => updater.checks++ };
    },
  };
  const handle = await startApp(fakes.modules, options);
  if (!handle) throw new Error('startApp returned no handle');
  await handle.policy.tick();
  return { fakes, handle, machine, clock, updater, logs };
}

export function windowsOf(s: Started) {
  const [trainer, dashboard] = FakeBrowserWindow.instances.slice(-2);
  expect(trainer.url).toBe('app://swarm/trainer.html');
  expect(dashboard.url).toBe('app://swarm/index.html');
  return { trainer, dashboard, s };
}

/** Invoke an IPC channel as a page would, from a sender and a frame URL of the test's choosing. */
export async function invoke(f: Fakes, channel: string, from: { contents: FakeWebContents; url?: string | null }, ...args: unknown[]): Promise<unknown> {
  const handler = f.ipcMain.handlers.get(channel);
  if (!handler) throw new Error(`no handler for ${channel}`);
  const senderFrame = from.url === null ? null : { url: from.url ?? 'app://swarm/index.html' };
  return handler({ sender: from.contents, senderFrame }, ...args);
}
