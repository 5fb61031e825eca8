// The desktop app's main process, wired from injected Electron modules so the tests run this very
// code against fakes. Two windows: the dashboard (what the user sees) and a hidden trainer that
// runs the peer session, so training never runs on the dashboard's UI thread. Both are sandboxed,
// load only app://swarm/, and reach the main process only through the checked IPC contract.
import { join } from 'node:path';
import type { BrowserWindow as BrowserWindowType, BrowserWindowConstructorOptions, IpcMainEvent, IpcMainInvokeEvent, WebContents } from 'electron';
import type { z } from 'zod';
import { readProcessesAndGpus } from '../node/sensors.js';
import type { AppConfig, DesktopWallet } from '../shared/app/bridge.js';
import { coordinatorHttpUrl } from '../shared/swarm/coordinator-url.js';
import type { PolicyClock, PolicyLoop, PolicySettings, PolicyView, SnoozeHours, TrainerCommand } from '../shared/policy/index.js';
import { openDesktopPolicy, type PolicySensors } from './desktop-policy.js';
import {
  ALLOWED,
  AppConfigSchema,
  CHANNELS,
  CONTRACT,
  describeIssues,
  EVENTS,
  type InvokeName,
  type InvokeReply,
  type TrainerEventEnvelope,
  TrainerEventSchema,
  type WindowRole,
} from './ipc-contract.js';
import { type ConfigExtras, JoinedRun } from './joined-run.js';
import { openKeystore } from './keystore.js';
import { registerAppScheme, serveApp } from './protocol.js';
import { APP_ORIGIN, contentSecurityPolicy, hardenContents, hardenSession, isTrustedSender, secureWebPreferences } from './security.js';
import { DEFAULT_NETWORK, initialChoice } from './run-choice.js';
import { type TrainerLeaver, trainerLeaver } from './trainer-leave.js';
import { createTray, type SwarmTray } from './tray.js';

/** The parts of Electron the app uses: `import * as electron from 'electron'` satisfies it, and so do the tests' fakes. */
export type ElectronModules = Pick<
  typeof import('electron'),
  'app' | 'BrowserWindow' | 'ipcMain' | 'protocol' | 'session' | 'Tray' | 'Menu' | 'nativeImage' | 'powerMonitor' | 'safeStorage'
>;

export interface Updater {
  checkForUpdatesAndNotify(): Promise<unknown>;
}

export interface StartOptions {
  /** The built pages (dist/renderer). */
  rendererDir: string;
  /** Where preload.cjs and trainer-preload.cjs are (dist/electron). */
  preloadDir: string;
  env?: Record<string, string | undefined>;
  /** The app's command line after the executable (`--network NAME|FILE`, `--run ID`; the rest is Electron's). */
  argv?: readonly string[];
  /** electron-updater's autoUpdater, loaded only in a packaged app. */
  loadUpdater?: () => Promise<Updater>;
  sensors?: Partial<PolicySensors>;
  clock?: PolicyClock;
  log?: (line: string) => void;
}

export const DASHBOARD_URL = `${APP_ORIGIN}/index.html`;
export const TRAINER_URL = `${APP_ORIGIN}/trainer.html`;

/** SWARM_APP_CONFIG (JSON) checked, if set (a developer's whole config); a bad one stops the app with the reason. */
export function readConfig(env: Record<string, string | undefined>): AppConfig | undefined {
  const raw = env.SWARM_APP_CONFIG;
  if (!raw) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    throw new Error(`SWARM_APP_CONFIG is not JSON: ${(error as Error).message}`);
  }
  const r = AppConfigSchema.safeParse(json);
  if (!r.success) throw new Error(`SWARM_APP_CONFIG is invalid: ${describeIssues(r.error)}`);
  if (!r.data.coordinator) throw new Error('SWARM_APP_CONFIG is invalid: coordinator: required (the ws:// or wss:// URL to join)');
  return r.data;
}

/** Test keys of a local dev chain (SWARM_DEV_KEYS, comma-separated): the app pays its gas there from the first. */
export function devKeys(env: Record<string, string | undefined>): ConfigExtras {
  const keys = env.SWARM_DEV_KEYS?.split(',').filter(Boolean);
  if (!keys?.length) return {};
  const r = AppConfigSchema.shape.localKeys.safeParse(keys);
  if (!r.success) throw new Error(`SWARM_DEV_KEYS is invalid: ${describeIssues(r.error)}`);
  return { localKeys: r.data };
}

/** The origins the pages may connect to besides the loopback and TLS: the coordinator (ws and its http twin), RPCs, data. */
export function connectOrigins(config: AppConfig): string[] {
  const twin = config.coordinator && coordinatorHttpUrl(config.coordinator);
  return [config.coordinator, twin, config.chain?.rpcUrl, ...(config.network?.rpcUrls ?? []), config.dataUrl].filter((o): o is string => o !== undefined);
}

export interface AppHandle {
  dashboard: BrowserWindowType;
  trainer: BrowserWindowType;
  policy: PolicyLoop;
  tray: SwarmTray;
  /** The run the pages join now (it changes when the user switches). */
  joined: JoinedRun;
}

/** Starts the app; undefined when another instance already runs (this one quits and that one comes to front). */
export async function startApp(electron: ElectronModules, options: StartOptions): Promise<AppHandle | undefined> {
  const { app } = electron;
  const log = options.log ?? console.log;
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return undefined;
  }
  const env = options.env ?? process.env;
  const fixed = readConfig(env);
  // Before 'ready', as Electron requires for both.
  app.enableSandbox();
  registerAppScheme(electron.protocol);
  const hardened = new WeakSet<WebContents>();
  app.on('web-contents-created', (_event, contents) => {
    if (!hardened.has(contents)) hardenContents(contents);
  });
  await app.whenReady();

  const windows = createWindows(electron, options, hardened);
  const trainer = trainerLeaver((reason) => send(windows.trainer, EVENTS.trainerCommand, { type: 'leave', reason } satisfies TrainerCommand), log);
  const joined = await openJoinedRun({ fixed, argv: options.argv ?? [], env, dir: app.getPath('userData'), windows, trainer, log });
  const csp = () => contentSecurityPolicy(connectOrigins(joined.config));
  serveApp(electron.protocol, options.rendererDir, csp);
  hardenSession(electron.session.defaultSession, csp);
  const state = { quitting: false };
  let tray: SwarmTray | undefined;
  const policy = await startPolicy(electron, options, windows, log, (view) => tray?.update(view));
  tray = createTray(electron, trayActions(electron, windows, policy, state, log), policy.view());
  registerIpc(electron, { joined, trainer, policy, windows, log, wallet: walletOpener(electron, app.getPath('userData'), log) });
  keepInTray(electron, windows, state);
  reviveTrainer(windows, state, log);
  // Only now that every IPC handler is in place (a page's first call must not find none). The
  // trainer first: it has the longer start (GPU, model, coordinator).
  load(windows.trainer, TRAINER_URL, log);
  load(windows.dashboard, DASHBOARD_URL, log);
  policy.start();
  if (app.isPackaged && options.loadUpdater) {
    options
      .loadUpdater()
      .then((updater) => updater.checkForUpdatesAndNotify())
      .catch((error: Error) => log(`update check failed: ${error.message}`));
  }
  return { dashboard: windows.dashboard, trainer: windows.trainer, policy, tray, joined };
}

/** The run of SWARM_APP_CONFIG if set, else of the command line, the user's last choice or the default network. */
async function openJoinedRun(o: {
  fixed: AppConfig | undefined;
  argv: readonly string[];
  env: Record<string, string | undefined>;
  dir: string;
  windows: Windows;
  trainer: TrainerLeaver;
  log: (line: string) => void;
}): Promise<JoinedRun> {
  const extras = devKeys(o.env);
  const reload = () => {
    for (const [win, url] of [
      [o.windows.trainer, TRAINER_URL],
      [o.windows.dashboard, DASHBOARD_URL],
    ] as const)
      if (!win.isDestroyed()) load(win, url, o.log);
  };
  const launch = o.fixed ? { network: DEFAULT_NETWORK } : await initialChoice(o.argv, o.dir, o.log);
  const options = { dir: o.dir, launch, extras, leave: (reason: string) => o.trainer.leave(reason), reload, log: o.log };
  return o.fixed ? JoinedRun.fixed(o.fixed, options) : JoinedRun.open(options);
}

interface Windows {
  dashboard: BrowserWindowType;
  trainer: BrowserWindowType;
}

function createWindows(electron: ElectronModules, options: StartOptions, hardened: WeakSet<WebContents>): Windows {
  const create = (preload: string, extra: BrowserWindowConstructorOptions) => {
    const win = new electron.BrowserWindow({ ...extra, webPreferences: { ...extra.webPreferences, ...secureWebPreferences(join(options.preloadDir, preload)) } });
    hardened.add(win.webContents);
    hardenContents(win.webContents);
    return win;
  };
  const trainer = create('trainer-preload.cjs', { show: false, webPreferences: { backgroundThrottling: false } });
  const dashboard = create('preload.cjs', { width: 1100, height: 760, minWidth: 720, minHeight: 520, title: 'Swarm', show: false });
  dashboard.once('ready-to-show', () => dashboard.show());
  return { trainer, dashboard };
}

function load(win: BrowserWindowType, url: string, log: (line: string) => void): void {
  win.loadURL(url).catch((error: Error) => log(`could not load ${url}: ${error.message} (is dist/renderer built? npm run build:renderer)`));
}

function send(win: BrowserWindowType, channel: string, value: unknown): void {
  if (!win.isDestroyed()) win.webContents.send(channel, value);
}

async function startPolicy(
  electron: ElectronModules,
  options: StartOptions,
  windows: Windows,
  log: (line: string) => void,
  onView: (view: PolicyView) => void,
): Promise<PolicyLoop> {
  const { powerMonitor, app } = electron;
  const sensors: PolicySensors = {
    idleSeconds: () => powerMonitor.getSystemIdleTime(),
    onBattery: () => powerMonitor.isOnBatteryPower(),
    readProcessesAndGpus,
    ...options.sensors,
  };
  const loop = await openDesktopPolicy({
    dir: app.getPath('userData'),
    sensors,
    clock: options.clock,
    log,
    outputs: {
      command: (command: TrainerCommand) => send(windows.trainer, EVENTS.trainerCommand, command),
      view: (view) => {
        send(windows.dashboard, EVENTS.policy, view);
        onView(view);
      },
    },
  });
  // A trainer page that (re)loads knows nothing: bring it to the current decision.
  windows.trainer.webContents.on('did-finish-load', () => {
    for (const command of loop.currentCommands()) send(windows.trainer, EVENTS.trainerCommand, command);
  });
  return loop;
}

function applyStartAtLogin(electron: ElectronModules, enabled: boolean, log: (line: string) => void): void {
  // An unpackaged app would register the bare Electron binary to start at login.
  if (!electron.app.isPackaged) return log(`start at login ${enabled ? 'on' : 'off'}: saved; registered only by the packaged app`);
  electron.app.setLoginItemSettings({ openAtLogin: enabled });
}

async function saveSettings(electron: ElectronModules, loop: PolicyLoop, settings: PolicySettings, log: (line: string) => void): Promise<PolicyView> {
  const before = loop.settings.startAtLogin;
  const view = await loop.saveSettings(settings);
  if (view.settings.startAtLogin !== before) applyStartAtLogin(electron, view.settings.startAtLogin, log);
  return view;
}

function showDashboard(windows: Windows): void {
  const { dashboard } = windows;
  if (dashboard.isDestroyed()) return;
  if (dashboard.isMinimized()) dashboard.restore();
  dashboard.show();
  dashboard.focus();
}

function trayActions(electron: ElectronModules, windows: Windows, loop: PolicyLoop, state: { quitting: boolean }, log: (line: string) => void) {
  const report = (p: Promise<unknown>) => void p.catch((error: Error) => log(`tray: ${error.message}`));
  return {
    pause: () => report(loop.pause()),
    resume: () => report(loop.resume()),
    snooze: (hours: SnoozeHours) => report(loop.snooze(hours)),
    setStartAtLogin: (enabled: boolean) => report(saveSettings(electron, loop, { ...loop.settings, startAtLogin: enabled }, log)),
    openDashboard: () => showDashboard(windows),
    quit: () => {
      state.quitting = true;
      electron.app.quit();
    },
  };
}

/** Closing the dashboard hides it: the app keeps training from the tray until the user quits there. */
function keepInTray(electron: ElectronModules, windows: Windows, state: { quitting: boolean }): void {
  const { app } = electron;
  app.on('before-quit', () => {
    state.quitting = true;
  });
  windows.dashboard.on('close', (event) => {
    if (state.quitting) return;
    event.preventDefault();
    windows.dashboard.hide();
  });
  // With a listener, Electron does not quit when the last window closes (the tray stays).
  app.on('window-all-closed', () => {});
  app.on('second-instance', () => showDashboard(windows));
  app.on('activate', () => showDashboard(windows));
}

export const TRAINER_RELOAD_MS = 5000;

/** A trainer renderer that dies (a GPU driver reset, out of memory) is reloaded after a pause; it then gets the current decision. */
function reviveTrainer(windows: Windows, state: { quitting: boolean }, log: (line: string) => void): void {
  windows.trainer.webContents.on('render-process-gone', (_event, details) => {
    log(`trainer: renderer gone (${details.reason}, exit code ${details.exitCode}); reloading in ${TRAINER_RELOAD_MS / 1000} s`);
    setTimeout(() => {
      if (!state.quitting && !windows.trainer.isDestroyed()) load(windows.trainer, TRAINER_URL, log);
    }, TRAINER_RELOAD_MS);
  });
}

/** The keystore opens on the first wallet call (not at start: a keychain prompt belongs to a wallet action). */
function walletOpener(electron: ElectronModules, dir: string, log: (line: string) => void): () => Promise<DesktopWallet> {
  let opening: Promise<DesktopWallet> | undefined;
  return () => {
    opening ??= openKeystore({ safeStorage: electron.safeStorage, dir, log }).catch((error: unknown) => {
      opening = undefined; // a keyring unlocked later may work
      throw error;
    });
    return opening;
  };
}

interface IpcContext {
  joined: JoinedRun;
  trainer: TrainerLeaver;
  policy: PolicyLoop;
  windows: Windows;
  wallet: () => Promise<DesktopWallet>;
  log: (line: string) => void;
}

type Handlers = { [N in InvokeName]: (payload: z.output<(typeof CONTRACT)[N]['request']>) => Promise<InvokeReply<N>> | InvokeReply<N> };

function handlers(electron: ElectronModules, { joined, policy, wallet, log }: IpcContext): Handlers {
  return {
    config: () => joined.config,
    switchRun: (runId) => joined.switchRun(runId),
    switchNetwork: (json) => joined.switchNetwork(json ?? undefined),
    policy: () => policy.view(),
    saveSettings: (settings) => saveSettings(electron, policy, settings, log),
    snooze: (hours) => policy.snooze(hours),
    pause: () => policy.pause(),
    resume: () => policy.resume(),
    walletAddress: async () => (await wallet()).address(),
    signTransaction: async (tx) => (await wallet()).signTransaction(tx),
    signMessage: async (message) => (await wallet()).signMessage(message),
    signTypedData: async (json) => (await wallet()).signTypedData(json),
  };
}

/** Which of our windows sent this, if the frame is ours and the window may use the channel. */
function senderRole(event: IpcMainInvokeEvent | IpcMainEvent, windows: Windows, channel: InvokeName | 'report'): WindowRole | undefined {
  const roleOf = (sender: WebContents): WindowRole | undefined =>
    sender.id === windows.dashboard.webContents.id ? 'dashboard' : sender.id === windows.trainer.webContents.id ? 'trainer' : undefined;
  if (!isTrustedSender(event, APP_ORIGIN, (sender) => roleOf(sender) !== undefined)) return undefined;
  const role = roleOf(event.sender);
  return role && ALLOWED[channel].includes(role) ? role : undefined;
}

function registerIpc(electron: ElectronModules, ctx: IpcContext): void {
  const { ipcMain } = electron;
  const table = handlers(electron, ctx);
  const register = <N extends InvokeName>(name: N) => {
    const channel = CHANNELS[name];
    ipcMain.handle(channel, async (event, ...args: unknown[]) => {
      if (!senderRole(event, ctx.windows, name)) throw new Error(`${channel}: refused: the sender is not an app://swarm page of this app allowed to use it`);
      if (args.length > 1) throw new Error(`${channel}: invalid payload: expected at most one argument, got ${args.length}`);
      const parsed = CONTRACT[name].request.safeParse(args[0]);
      if (!parsed.success) throw new Error(`${channel}: invalid payload: ${describeIssues(parsed.error)}`);
      return table[name](parsed.data as z.output<(typeof CONTRACT)[N]['request']>);
    });
  };
  for (const name of Object.keys(CONTRACT) as InvokeName[]) register(name);
  // The trainer's session events, relayed to the dashboard; a bad one is dropped with a log line.
  ipcMain.on(CHANNELS.report, (event, payload: unknown) => {
    if (!senderRole(event, ctx.windows, 'report')) return ctx.log(`${CHANNELS.report}: refused a report from a sender that is not the trainer window`);
    const parsed = TrainerEventSchema.safeParse(payload);
    if (!parsed.success) return ctx.log(`${CHANNELS.report}: dropped an invalid event: ${describeIssues(parsed.error)}`);
    ctx.trainer.observe(parsed.data);
    relayToDashboard(ctx.windows, parsed.data);
  });
}

/** Only an event whose envelope was checked reaches the dashboard (its payload is the trainer page's to fill). */
function relayToDashboard(windows: Windows, event: TrainerEventEnvelope): void {
  send(windows.dashboard, EVENTS.trainerEvent, event);
}
