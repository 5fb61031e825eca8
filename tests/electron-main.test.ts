// The desktop app's main process, run for real (startApp, security, IPC, keystore, tray, policy
// loop) against fake Electron modules that record what is asked of them: Electron's binary is not
// needed, and every item of the security checklist is asserted on what the code actually did.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FuseV1Options } from '@electron/fuses';
import { FusesPlugin } from '@electron-forge/plugin-fuses';
import { parseTransaction, recoverMessageAddress, recoverTransactionAddress, recoverTypedDataAddress } from 'viem';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import forgeConfig, { ignoreOutsideApp } from '../forge.config.js';
import { type StartOptions, startApp } from '../electron/app.js';
import { CHANNELS, EVENTS } from '../electron/ipc-contract.js';
import { openKeystore, parseTypedData, WALLET_FILE } from '../electron/keystore.js';
import { loadSettings, openDesktopPolicy } from '../electron/desktop-policy.js';
import { appProtocolHandler, resolveAppPath } from '../electron/protocol.js';
import { contentSecurityPolicy, isTrustedSender, originOf } from '../electron/security.js';
import { type TrayActions, trayIconBitmap, trayTemplate } from '../electron/tray.js';
import {
  fakeEvent,
  FakeWebContents,
  FakeBrowserWindow,
  FakeTray,
  reversibleSafeStorage,
  fakeElectron,
  manualClock,
  sensorsWith,
  tmp,
  start,
  windowsOf,
  invoke,
} from './fake-electron.js';
import type { DesktopBridge, TrainerBridge } from '../shared/app/bridge.js';
import { DEFAULT_SETTINGS, trainerCommands } from '../shared/policy/index.js';
import type { Decision, PolicySettings, PolicyView, TrainerCommand } from '../shared/policy/types.js';

beforeEach(() => {
  FakeBrowserWindow.instances = [];
  FakeTray.instances = [];
});

// ---------------------------------------------------------------------------------------------

describe('startApp: windows, sandbox and session', () => {
  it('loads the pages only once every IPC channel has its handler', async () => {
    const fakes = fakeElectron(tmp());
    const handlersAtLoad: number[] = [];
    const loadURL = FakeBrowserWindow.prototype.loadURL;
    FakeBrowserWindow.prototype.loadURL = async function (this: FakeBrowserWindow, url: string) {
      handlersAtLoad.push(fakes.ipcMain.handlers.size + fakes.ipcMain.listeners.size);
      return loadURL.call(this, url);
    };
    try {
      await startApp(fakes.modules, { rendererDir: tmp(), preloadDir: '/x', env: {}, sensors: sensorsWith({ processes: [] }), clock: manualClock() });
    } finally {
      FakeBrowserWindow.prototype.loadURL = loadURL;
    }
    expect(handlersAtLoad).toEqual([Object.keys(CHANNELS).length, Object.keys(CHANNELS).length]);
  });

  it('creates the dashboard and a hidden trainer, both isolated, sandboxed and without Node', async () => {
    const s = await start();
    const { trainer, dashboard } = windowsOf(s);
    for (const win of [trainer, dashboard]) {
      const prefs = win.options.webPreferences ?? {};
      expect(prefs).toMatchObject({ contextIsolation: true, sandbox: true, nodeIntegration: false, nodeIntegrationInWorker: false, webSecurity: true });
      expect(prefs).toMatchObject({ allowRunningInsecureContent: false, webviewTag: false, experimentalFeatures: false });
    }
    expect(dashboard.options.webPreferences?.preload).toBe(join('/app/dist/electron', 'preload.cjs'));
    expect(trainer.options.webPreferences?.preload).toBe(join('/app/dist/electron', 'trainer-preload.cjs'));
    // Training runs in its own hidden renderer, not throttled when nobody looks at it.
    expect(trainer.options.show).toBe(false);
    expect(trainer.options.webPreferences?.backgroundThrottling).toBe(false);
  });

  it('enables the sandbox and registers the secure app:// scheme before ready', async () => {
    const s = await start();
    const { calls } = s.fakes;
    expect(calls.indexOf('enableSandbox')).toBeGreaterThanOrEqual(0);
    expect(calls.indexOf('enableSandbox')).toBeLessThan(calls.indexOf('ready'));
    expect(calls.indexOf('registerSchemesAsPrivileged')).toBeLessThan(calls.indexOf('ready'));
    expect(s.fakes.protocol.schemes).toEqual([
      expect.objectContaining({ scheme: 'app', privileges: expect.objectContaining({ standard: true, secure: true, supportFetchAPI: true }) }),
    ]);
    expect(s.fakes.protocol.handlers.has('app')).toBe(true);
  });

  it('sets a strict CSP on every response, replacing any the server sent', async () => {
    const s = await start();
    const listener = s.fakes.session.headersListener;
    expect(listener).toBeDefined();
    let headers: Record<string, string[]> = {};
    listener?.({ responseHeaders: { 'content-security-policy': ["script-src 'unsafe-eval'"], 'X-Other': ['1'] } }, (r: { responseHeaders: Record<string, string[]> }) => {
      headers = r.responseHeaders;
    });
    expect(Object.keys(headers).filter((k) => k.toLowerCase() === 'content-security-policy')).toEqual(['Content-Security-Policy']);
    expect(headers['X-Other']).toEqual(['1']);
    const csp = headers['Content-Security-Policy'][0];
    const directives = Object.fromEntries(csp.split('; ').map((d) => [d.split(' ')[0], d.split(' ').slice(1)]));
    expect(directives['script-src']).toEqual(["'self'"]);
    expect(directives['default-src']).toEqual(["'self'"]);
    expect(directives['object-src']).toEqual(["'none'"]);
    expect(directives['frame-ancestors']).toEqual(["'none'"]);
    expect(directives['connect-src']).toContain('ws://127.0.0.1:8787');
    expect(csp).not.toContain('unsafe-eval');
  });

  it('puts the configured coordinator and RPC origins (only) into connect-src', async () => {
    const config = {
      coordinator: 'wss://coord.example.org/ws',
      chain: { rpcUrl: 'https://rpc.example.org/v1', chainId: 8453, registry: `0x${'1'.repeat(40)}`, tokens: `0x${'2'.repeat(40)}`, runId: 'r1' },
    };
    const s = await start({ env: { SWARM_APP_CONFIG: JSON.stringify(config) } });
    let csp = '';
    s.fakes.session.headersListener?.({ responseHeaders: {} }, (r: { responseHeaders: Record<string, string[]> }) => (csp = r.responseHeaders['Content-Security-Policy'][0]));
    expect(csp).toContain('wss://coord.example.org');
    expect(csp).toContain('https://rpc.example.org');
    expect(csp).not.toContain('/v1');
    expect(s.handle.joined.config.coordinator).toBe('wss://coord.example.org/ws');
  });

  it('refuses to start on an invalid SWARM_APP_CONFIG, naming the field', async () => {
    const fakes = fakeElectron(tmp());
    const options: StartOptions = {
      rendererDir: tmp(),
      preloadDir: '/x',
      env: { SWARM_APP_CONFIG: '{"coordinator":"http://x"}' },
      sensors: sensorsWith({ processes: [] }),
      clock: manualClock(),
    };
    await expect(startApp(fakes.modules, options)).rejects.toThrow(/SWARM_APP_CONFIG is invalid: coordinator: must be a URL with protocol ws:\/\/ or wss:\/\//);
  });

  it('prevents navigation and redirects to another origin, denies window.open and webviews', async () => {
    const { dashboard, trainer } = windowsOf(await start());
    for (const contents of [dashboard.webContents, trainer.webContents]) {
      for (const event of ['will-navigate', 'will-redirect']) {
        const away = fakeEvent({ url: 'https://evil.example/phish' });
        contents.emit(event, away, away.url);
        expect(away.defaultPrevented).toBe(true);
        const home = fakeEvent({ url: 'app://swarm/index.html#settings' });
        contents.emit(event, home, home.url);
        expect(home.defaultPrevented).toBe(false);
      }
      expect(contents.windowOpenHandler?.({ url: 'https://evil.example' })).toEqual({ action: 'deny' });
      const webview = fakeEvent();
      contents.emit('will-attach-webview', webview, {}, {});
      expect(webview.defaultPrevented).toBe(true);
    }
  });

  it('hardens web contents created later too (e.g. devtools)', async () => {
    const s = await start();
    const other = new FakeWebContents();
    s.fakes.app.emit('web-contents-created', fakeEvent(), other);
    const away = fakeEvent({ url: 'https://evil.example' });
    other.emit('will-navigate', away);
    expect(away.defaultPrevented).toBe(true);
    expect(other.windowOpenHandler?.({ url: 'x' })).toEqual({ action: 'deny' });
  });

  it('denies every permission request, permission check and device', async () => {
    const s = await start();
    const { requestHandler, checkHandler, deviceHandler } = s.fakes.session;
    for (const permission of ['media', 'geolocation', 'notifications', 'clipboard-read', 'openExternal', 'hid']) {
      let granted: boolean | undefined;
      requestHandler?.(new FakeWebContents(), permission, (ok: boolean) => (granted = ok), {});
      expect(granted).toBe(false);
      expect(checkHandler?.(null, permission, 'app://swarm', {})).toBe(false);
    }
    expect(deviceHandler?.({ deviceType: 'usb', origin: 'app://swarm' })).toBe(false);
  });
});

describe('startApp: IPC', () => {
  it('answers the pages on every channel of the contract', async () => {
    const s = await start();
    const { dashboard } = windowsOf(s);
    const channels = [...s.fakes.ipcMain.handlers.keys()].sort();
    expect(channels).toEqual(
      Object.entries(CHANNELS)
        .filter(([k]) => k !== 'report')
        .map(([, c]) => c)
        .sort(),
    );
    expect(s.fakes.ipcMain.listeners.has(CHANNELS.report)).toBe(true);
    expect(await invoke(s.fakes, CHANNELS.config, { contents: dashboard.webContents })).toEqual({ coordinator: 'ws://127.0.0.1:8787' });
  });

  it('refuses a sender frame of another origin, a gone frame and a window that is not ours, and changes nothing', async () => {
    const s = await start();
    const { dashboard } = windowsOf(s);
    const before = s.handle.policy.view();
    await expect(invoke(s.fakes, CHANNELS.pause, { contents: dashboard.webContents, url: 'https://evil.example/' })).rejects.toThrow(/swarm:pause: refused/);
    await expect(invoke(s.fakes, CHANNELS.pause, { contents: dashboard.webContents, url: null })).rejects.toThrow(/refused/);
    await expect(invoke(s.fakes, CHANNELS.pause, { contents: new FakeWebContents() })).rejects.toThrow(/refused/);
    await expect(invoke(s.fakes, CHANNELS.config, { contents: dashboard.webContents, url: 'file:///etc/passwd' })).rejects.toThrow(/refused/);
    expect(s.handle.policy.view()).toEqual(before);
    expect(before.pausedUntil).toBeUndefined();
  });

  it('keeps the policy controls to the dashboard (the trainer may not pause or snooze)', async () => {
    const s = await start();
    const { trainer } = windowsOf(s);
    await expect(invoke(s.fakes, CHANNELS.pause, { contents: trainer.webContents, url: 'app://swarm/trainer.html' })).rejects.toThrow(/refused/);
    expect(await invoke(s.fakes, CHANNELS.config, { contents: trainer.webContents, url: 'app://swarm/trainer.html' })).toMatchObject({ coordinator: expect.any(String) });
  });

  it('rejects a malformed payload with a clear error and leaves the state as it was', async () => {
    const s = await start();
    const { dashboard } = windowsOf(s);
    const from = { contents: dashboard.webContents };
    const before = s.handle.policy.view();
    await expect(invoke(s.fakes, CHANNELS.snooze, from, 5)).rejects.toThrow('swarm:snooze: invalid payload: payload: must be 1, 3, 6 or 12 hours');
    await expect(invoke(s.fakes, CHANNELS.snooze, from, '3')).rejects.toThrow(/invalid payload/);
    await expect(invoke(s.fakes, CHANNELS.saveSettings, from, { ...DEFAULT_SETTINGS, gpuUsage: 7 })).rejects.toThrow(
      /swarm:save-settings: invalid payload: gpuUsage: must be between 0.1 and 1/,
    );
    await expect(invoke(s.fakes, CHANNELS.pause, from, { sneaky: true })).rejects.toThrow(/swarm:pause: invalid payload: payload: takes no payload/);
    const tx = { chainId: 1, to: `0x${'a'.repeat(40)}`, nonce: 0, gas: '-1', maxFeePerGas: '1', maxPriorityFeePerGas: '1' };
    await expect(invoke(s.fakes, CHANNELS.signTransaction, from, tx)).rejects.toThrow(/gas: must be a decimal string/);
    await expect(invoke(s.fakes, CHANNELS.signTransaction, from, { ...tx, gas: '21000', to: '0x1234' })).rejects.toThrow(/to: must be a 20-byte address/);
    expect(s.handle.policy.view()).toEqual(before);
    expect(existsSync(join(s.fakes.app.userData, 'settings.json'))).toBe(false);
    expect(existsSync(join(s.fakes.app.userData, WALLET_FILE))).toBe(false);
  });

  it('snoozes, pauses and resumes from the dashboard, pushing each new view to it', async () => {
    const s = await start();
    const { dashboard } = windowsOf(s);
    const from = { contents: dashboard.webContents };
    const snoozed = (await invoke(s.fakes, CHANNELS.snooze, from, 3)) as PolicyView;
    expect(snoozed.pausedUntil).toBe(s.clock.t + 3 * 3_600_000);
    expect(snoozed.decision).toMatchObject({ action: 'pause', reason: expect.stringMatching(/^snoozed until/) });
    const resumed = (await invoke(s.fakes, CHANNELS.resume, from)) as PolicyView;
    expect(resumed.pausedUntil).toBeUndefined();
    expect(resumed.decision.action).toBe('run');
    const pushed = dashboard.webContents.sent.filter((m) => m.channel === EVENTS.policy).map((m) => (m.value as PolicyView).decision.action);
    expect(pushed.slice(-2)).toEqual(['pause', 'run']);
  });

  it('saves settings to userData/settings.json and applies them at once', async () => {
    const s = await start();
    const { dashboard, trainer } = windowsOf(s);
    const view = (await invoke(s.fakes, CHANNELS.saveSettings, { contents: dashboard.webContents }, { ...DEFAULT_SETTINGS, gpuUsage: 0.5 })) as PolicyView;
    expect(view.decision).toMatchObject({ action: 'throttle', duty: 0.5 });
    expect(trainer.webContents.commands().at(-1)).toEqual({ type: 'duty', duty: 0.5 });
    const saved = JSON.parse(readFileSync(join(s.fakes.app.userData, 'settings.json'), 'utf8'));
    expect(saved.gpuUsage).toBe(0.5);
  });

  it('relays the trainer’s session events to the dashboard and drops a bad or foreign one', async () => {
    const s = await start();
    const { dashboard, trainer } = windowsOf(s);
    const report = s.fakes.ipcMain.listeners.get(CHANNELS.report);
    const fromTrainer = { sender: trainer.webContents, senderFrame: { url: 'app://swarm/trainer.html' } };
    report?.(fromTrainer, { type: 'log', data: { line: 'hello' } });
    report?.(fromTrainer, { type: 'exec', data: { cmd: 'rm -rf /' } });
    report?.(fromTrainer, { type: 'log', data: 'not an object' });
    report?.(fromTrainer, { type: 'log', data: { line: 'x'.repeat(1_100_000) } });
    report?.({ sender: dashboard.webContents, senderFrame: { url: 'app://swarm/index.html' } }, { type: 'log', data: { line: 'forged' } });
    const relayed = dashboard.webContents.sent.filter((m) => m.channel === EVENTS.trainerEvent).map((m) => m.value);
    expect(relayed).toEqual([{ type: 'log', data: { line: 'hello' } }]);
    expect(s.logs.filter((l) => l.includes('dropped an invalid event'))).toHaveLength(3);
    expect(s.logs.some((l) => l.includes('must be at most 1000000 bytes'))).toBe(true);
  });

  it('signs with the local wallet in the main process (created on first use)', async () => {
    const s = await start();
    const { dashboard } = windowsOf(s);
    const from = { contents: dashboard.webContents };
    const address = (await invoke(s.fakes, CHANNELS.walletAddress, from)) as `0x${string}`;
    const signature = (await invoke(s.fakes, CHANNELS.signMessage, from, 'hello')) as `0x${string}`;
    expect(await recoverMessageAddress({ message: 'hello', signature })).toBe(address);
    expect(existsSync(join(s.fakes.app.userData, WALLET_FILE))).toBe(true);
  });
});

describe('startApp: lifecycle', () => {
  it('quits at once when another instance holds the lock, and creates nothing', async () => {
    const fakes = fakeElectron(tmp(), { gotLock: false });
    const handle = await startApp(fakes.modules, { rendererDir: tmp(), preloadDir: '/x', env: {}, sensors: sensorsWith({ processes: [] }), clock: manualClock() });
    expect(handle).toBeUndefined();
    expect(fakes.calls).toEqual(['requestSingleInstanceLock', 'quit']);
    expect(FakeBrowserWindow.instances).toHaveLength(0);
  });

  it('brings the dashboard to the front when a second instance starts', async () => {
    const s = await start();
    const { dashboard } = windowsOf(s);
    dashboard.hide();
    s.fakes.app.emit('second-instance', fakeEvent(), [], '/');
    expect(dashboard.visible).toBe(true);
    expect(dashboard.focused).toBe(true);
  });

  it('hides the dashboard on close (the app stays in the tray) and closes it only when quitting', async () => {
    const s = await start();
    const { dashboard } = windowsOf(s);
    dashboard.show();
    expect(dashboard.close().defaultPrevented).toBe(true);
    expect(dashboard.visible).toBe(false);
    expect(dashboard.isDestroyed()).toBe(false);
    expect(s.fakes.app.listeners.get('window-all-closed')).toHaveLength(1);
    s.fakes.app.emit('before-quit', fakeEvent());
    expect(dashboard.close().defaultPrevented).toBe(false);
  });

  it('checks for updates only when packaged', async () => {
    const dev = await start();
    expect(dev.updater.loaded).toBe(0);
    const packaged = await start({ isPackaged: true });
    await vi.waitFor(() => expect(packaged.updater.checks).toBe(1));
  });
});

describe('policy loop through the app', () => {
  it('makes the trainer leave within one tick of a game starting, naming the game, and start when it ends', async () => {
    const s = await start();
    const { trainer, dashboard } = windowsOf(s);
    expect(trainer.webContents.commands()).toEqual([{ type: 'start' }, { type: 'duty', duty: 1 }]);
    s.machine.processes.push('eldenring.exe');
    await s.handle.policy.tick();
    const leave = trainer.webContents.commands().at(-1);
    expect(leave).toMatchObject({ type: 'leave', reason: expect.stringContaining('eldenring.exe') });
    const shown = dashboard.webContents.sent.filter((m) => m.channel === EVENTS.policy).at(-1)?.value as PolicyView;
    expect(shown.decision).toMatchObject({ action: 'pause', reason: expect.stringContaining('eldenring.exe') });
    expect(FakeTray.instances.at(-1)?.tooltip).toContain('eldenring.exe');
    s.machine.processes.pop();
    await s.handle.policy.tick();
    expect(trainer.webContents.commands().slice(-2)).toEqual([{ type: 'start' }, { type: 'duty', duty: 1 }]);
  });

  it('reloads a trainer whose renderer died, after a pause', async () => {
    vi.useFakeTimers();
    try {
      const s = await start();
      const { trainer } = windowsOf(s);
      trainer.url = undefined;
      trainer.webContents.emit('render-process-gone', fakeEvent(), { reason: 'crashed', exitCode: 139 });
      expect(s.logs.at(-1)).toMatch(/trainer: renderer gone \(crashed, exit code 139\)/);
      await vi.advanceTimersByTimeAsync(4999);
      expect(trainer.url).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1);
      expect(trainer.url).toBe('app://swarm/trainer.html');
    } finally {
      vi.useRealTimers();
    }
  });

  it('brings a trainer page that (re)loads to the current decision', async () => {
    const s = await start();
    const { trainer } = windowsOf(s);
    trainer.webContents.sent.length = 0;
    trainer.webContents.emit('did-finish-load');
    expect(trainer.webContents.commands()).toEqual([{ type: 'start' }, { type: 'duty', duty: 1 }]);
  });

  it('snoozes from the tray menu, and the tray shows the reason and offers Resume', async () => {
    const s = await start();
    const tray = FakeTray.instances.at(-1);
    expect(tray?.tooltip).toBe(s.handle.policy.view().decision.reason);
    const six = tray?.menu.find((i) => i.id === 'snooze')?.submenu?.find((i) => i.id === 'snooze-6');
    six?.click?.();
    await vi.waitFor(() => expect(s.handle.policy.view().pausedUntil).toBe(s.clock.t + 6 * 3_600_000));
    expect(tray?.menu[0]).toMatchObject({ id: 'status', enabled: false, label: expect.stringMatching(/^snoozed until/) });
    expect(tray?.menu.some((i) => i.id === 'resume')).toBe(true);
    expect(windowsOf(s).trainer.webContents.commands().at(-1)).toMatchObject({ type: 'leave', reason: expect.stringMatching(/^snoozed/) });
  });

  it('registers start at login from the tray only when packaged, and saves the choice', async () => {
    for (const isPackaged of [false, true]) {
      const s = await start({ isPackaged });
      FakeTray.instances
        .at(-1)
        ?.menu.find((i) => i.id === 'start-at-login')
        ?.click?.();
      await vi.waitFor(() => expect(s.handle.policy.settings.startAtLogin).toBe(true));
      expect(s.fakes.app.loginItem).toEqual(isPackaged ? { openAtLogin: true } : undefined);
      expect(FakeTray.instances.at(-1)?.menu.find((i) => i.id === 'start-at-login')?.checked).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('security helpers', () => {
  it('takes the origin of app:// URLs from their parts (Node calls it "null")', () => {
    expect(originOf('app://swarm/index.html')).toBe('app://swarm');
    expect(originOf('APP://SWARM/x')).toBe('app://swarm');
    expect(originOf('https://a.example:8443/x?y')).toBe('https://a.example:8443');
    expect(originOf('about:blank')).toBeUndefined();
    expect(originOf('not a url')).toBeUndefined();
  });

  it('trusts only our origin in our windows', () => {
    const contents = new FakeWebContents() as unknown as Electron.WebContents;
    const event = (url: string | null) => ({ sender: contents, senderFrame: url === null ? null : ({ url } as Electron.WebFrameMain) });
    expect(isTrustedSender(event('app://swarm/index.html'))).toBe(true);
    expect(isTrustedSender(event('app://swarm.evil/index.html'))).toBe(false);
    expect(isTrustedSender(event('https://swarm/index.html'))).toBe(false);
    expect(isTrustedSender(event(null))).toBe(false);
    expect(isTrustedSender(event('app://swarm/index.html'), 'app://swarm', () => false)).toBe(false);
  });

  it('keeps malformed origins out of the CSP', () => {
    const csp = contentSecurityPolicy(['https://ok.example', "https://x; script-src 'unsafe-eval'", 'nonsense']);
    expect(csp).toContain('https://ok.example');
    expect(csp).not.toContain('unsafe-eval');
    expect(csp.split('; ')).toHaveLength(9);
  });
});

describe('app:// protocol', () => {
  it('maps URLs into the renderer folder and refuses to leave it', () => {
    const root = '/srv/renderer';
    expect(resolveAppPath(root, 'app://swarm/index.html')).toBe(join(root, 'index.html'));
    expect(resolveAppPath(root, 'app://swarm/')).toBe(join(root, 'index.html'));
    expect(resolveAppPath(root, 'app://swarm/assets/a%20b.js')).toBe(join(root, 'assets/a b.js'));
    expect(resolveAppPath(root, 'app://swarm/..%2f..%2fetc%2fpasswd')).toBeUndefined();
    expect(resolveAppPath(root, 'app://swarm/%2e%2e/%2e%2e/etc/passwd')).toBe(join(root, 'etc/passwd')); // the URL parser already removed the dots
    expect(resolveAppPath(root, 'app://swarm/..%5c..%5cwindows')).toBeUndefined();
    expect(resolveAppPath(root, 'app://swarm/a%00.html')).toBeUndefined();
    expect(resolveAppPath(root, 'app://other/index.html')).toBeUndefined();
    expect(resolveAppPath(root, 'file:///srv/renderer/index.html')).toBeUndefined();
  });

  it('serves files with their type and the CSP, 403 outside, 404 when missing', async () => {
    const root = tmp();
    await mkdir(join(root, 'assets'));
    await writeFile(join(root, 'index.html'), '<!doctype html><title>x</title>');
    await writeFile(join(root, 'assets', 'app.js'), 'console.log(1)');
    writeFileSync(join(root, '..', 'secret.txt'), 'no');
    const handler = appProtocolHandler(root);
    const index = await handler(new Request('app://swarm/index.html'));
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await index.text()).toContain('<title>x</title>');
    expect((await handler(new Request('app://swarm/assets/app.js'))).headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await handler(new Request('app://swarm/..%2fsecret.txt'))).status).toBe(403);
    expect((await handler(new Request('app://swarm/missing.js'))).status).toBe(404);
    expect((await handler(new Request('app://swarm/assets'))).status).toBe(404);
  });
});

// ---------------------------------------------------------------------------------------------

const fakeIpc = vi.hoisted(() => {
  const exposed = new Map<string, unknown>();
  const ipcRenderer = {
    invocations: [] as { channel: string; args: unknown[] }[],
    sends: [] as { channel: string; args: unknown[] }[],
    listeners: new Map<string, ((event: unknown, ...args: unknown[]) => void)[]>(),
    async invoke(channel: string, ...args: unknown[]) {
      this.invocations.push({ channel, args });
      return `reply:${channel}`;
    },
    send(channel: string, ...args: unknown[]) {
      this.sends.push({ channel, args });
    },
    on(channel: string, fn: (event: unknown, ...args: unknown[]) => void) {
      this.listeners.set(channel, [...(this.listeners.get(channel) ?? []), fn]);
      return this;
    },
    removeListener(channel: string, fn: (event: unknown, ...args: unknown[]) => void) {
      this.listeners.set(
        channel,
        (this.listeners.get(channel) ?? []).filter((f) => f !== fn),
      );
      return this;
    },
    emit(channel: string, value: unknown) {
      for (const fn of this.listeners.get(channel) ?? []) fn({ sender: 'the IpcRendererEvent', ports: [] }, value);
    },
  };
  const contextBridge = { exposeInMainWorld: (key: string, api: unknown) => exposed.set(key, api) };
  return { exposed, ipcRenderer, contextBridge };
});

// The preloads import 'electron' (only there: everything else takes Electron as a parameter).
vi.mock('electron', () => ({ contextBridge: fakeIpc.contextBridge, ipcRenderer: fakeIpc.ipcRenderer }));

/** Every value reachable from `api`, to check that no Electron object leaked into it. */
function reachable(api: unknown, seen = new Set<unknown>()): unknown[] {
  if ((typeof api !== 'object' && typeof api !== 'function') || api === null || seen.has(api)) return [];
  seen.add(api);
  return [api, ...Object.values(api).flatMap((v) => reachable(v, seen))];
}

describe('preloads', () => {
  afterEach(() => {
    fakeIpc.ipcRenderer.invocations.length = 0;
    fakeIpc.ipcRenderer.sends.length = 0;
  });

  it('the dashboard’s exposes exactly the DesktopBridge methods, each on its fixed channel, and not ipcRenderer', async () => {
    await import('../electron/preload.js');
    expect([...fakeIpc.exposed.keys()]).toContain('swarmDesktop');
    const api = fakeIpc.exposed.get('swarmDesktop') as DesktopBridge;
    const methods = [
      'config',
      'policy',
      'saveSettings',
      'snooze',
      'pause',
      'resume',
      'onPolicy',
      'onTrainerEvent',
      'switchRun',
      'switchNetwork',
      'wallet',
    ] satisfies (keyof DesktopBridge)[];
    expect(Object.keys(api).sort()).toEqual([...methods].sort());
    expect(Object.keys(api.wallet).sort()).toEqual(['address', 'signMessage', 'signTransaction', 'signTypedData']);
    expect(reachable(api)).not.toContain(fakeIpc.ipcRenderer);
    expect(reachable(api).filter((v) => typeof v === 'function')).toHaveLength(14);

    await api.config();
    await api.snooze(3);
    await api.saveSettings(DEFAULT_SETTINGS);
    await api.wallet.signMessage('hi');
    await api.switchRun('7');
    await api.switchNetwork(undefined);
    expect(fakeIpc.ipcRenderer.invocations).toEqual([
      { channel: 'swarm:config', args: [] },
      { channel: 'swarm:snooze', args: [3] },
      { channel: 'swarm:save-settings', args: [DEFAULT_SETTINGS] },
      { channel: 'swarm:wallet:sign-message', args: ['hi'] },
      { channel: 'swarm:switch-run', args: ['7'] },
      // IPC cannot send an explicit undefined: null means the app's own network.
      { channel: 'swarm:switch-network', args: [null] },
    ]);
  });

  it('hands listeners the value only (never the IpcRendererEvent) and unsubscribes', async () => {
    await import('../electron/preload.js');
    const api = fakeIpc.exposed.get('swarmDesktop') as DesktopBridge;
    const got: unknown[][] = [];
    const off = api.onPolicy((...args) => got.push(args));
    fakeIpc.ipcRenderer.emit(EVENTS.policy, { decision: 'd' });
    off();
    fakeIpc.ipcRenderer.emit(EVENTS.policy, { decision: 'after' });
    expect(got).toEqual([[{ decision: 'd' }]]);
    expect(fakeIpc.ipcRenderer.listeners.get(EVENTS.policy)).toEqual([]);
  });

  it('the trainer’s exposes config, report, onCommand and wallet only', async () => {
    await import('../electron/trainer-preload.js');
    const api = fakeIpc.exposed.get('swarmTrainer') as TrainerBridge;
    expect(Object.keys(api).sort()).toEqual(['config', 'onCommand', 'report', 'wallet'] satisfies (keyof TrainerBridge)[]);
    expect(reachable(api)).not.toContain(fakeIpc.ipcRenderer);
    api.report({ type: 'log', data: { line: 'x' } });
    expect(fakeIpc.ipcRenderer.sends).toEqual([{ channel: CHANNELS.report, args: [{ type: 'log', data: { line: 'x' } }] }]);
    const commands: TrainerCommand[] = [];
    const off = api.onCommand((c) => commands.push(c));
    fakeIpc.ipcRenderer.emit(EVENTS.trainerCommand, { type: 'leave', reason: 'game' });
    off();
    expect(commands).toEqual([{ type: 'leave', reason: 'game' }]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('packaging', () => {
  it('forge.config.ts sets the fuses: no run-as-node, no NODE_OPTIONS or --inspect, asar only and checked', () => {
    const fuses = forgeConfig.plugins?.find((p) => p instanceof FusesPlugin)?.fusesConfig;
    expect(fuses).toBeDefined();
    expect(fuses?.[FuseV1Options.RunAsNode]).toBe(false);
    expect(fuses?.[FuseV1Options.EnableNodeOptionsEnvironmentVariable]).toBe(false);
    expect(fuses?.[FuseV1Options.EnableNodeCliInspectArguments]).toBe(false);
    expect(fuses?.[FuseV1Options.GrantFileProtocolExtraPrivileges]).toBe(false);
    expect(fuses?.[FuseV1Options.EnableCookieEncryption]).toBe(true);
    expect(fuses?.[FuseV1Options.EnableEmbeddedAsarIntegrityValidation]).toBe(true);
    expect(fuses?.[FuseV1Options.OnlyLoadAppFromAsar]).toBe(true);
    expect(forgeConfig.packagerConfig?.asar).toBe(true);
  });

  it('forge packs dist/ and package.json only', () => {
    for (const kept of ['', '/package.json', '/dist', '/dist/electron/main.cjs', '/dist/renderer/index.html']) expect(ignoreOutsideApp(kept)).toBe(false);
    for (const left of ['/electron/app.ts', '/node_modules/viem/index.js', '/tests/x.ts', '/dist/other', '/.git', '/package-lock.json']) expect(ignoreOutsideApp(left)).toBe(true);
  });

  it('electron-builder.yml sets the same fuses', () => {
    const yml = readFileSync(join(import.meta.dirname, '..', 'electron-builder.yml'), 'utf8');
    for (const line of [
      'runAsNode: false',
      'enableNodeOptionsEnvironmentVariable: false',
      'enableNodeCliInspectArguments: false',
      'onlyLoadAppFromAsar: true',
      'grantFileProtocolExtraPrivileges: false',
    ]) {
      expect(yml).toContain(`  ${line}`);
    }
    expect(yml).toMatch(/productName: Swarm/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('keystore', () => {
  const tx = {
    chainId: 8453,
    to: `0x${'ab'.repeat(20)}` as const,
    data: '0x1234' as const,
    value: '1000000000000000000',
    nonce: 7,
    gas: '21000',
    maxFeePerGas: '3000000000',
    maxPriorityFeePerGas: '1000000',
  };

  it('creates an encrypted key file (mode 0600) on first run and loads the same key after', async () => {
    const dir = tmp();
    const wallet = await openKeystore({ safeStorage: reversibleSafeStorage(), dir, log: () => {} });
    const file = join(dir, WALLET_FILE);
    if (process.platform !== 'win32') expect(statSync(file).mode & 0o777).toBe(0o600);
    const stored = JSON.parse(readFileSync(file, 'utf8'));
    expect(stored).toMatchObject({ version: 1, address: await wallet.address() });
    expect(readFileSync(file, 'utf8')).not.toMatch(/0x[0-9a-f]{64}/i); // no key in clear
    const again = await openKeystore({ safeStorage: reversibleSafeStorage(), dir, log: () => {} });
    expect(await again.address()).toBe(await wallet.address());
  });

  it('signs an EIP-1559 transaction that recovers to its address', async () => {
    const wallet = await openKeystore({ safeStorage: reversibleSafeStorage(), dir: tmp(), log: () => {} });
    const signed = await wallet.signTransaction(tx);
    expect(await recoverTransactionAddress({ serializedTransaction: signed as `0x02${string}` })).toBe(await wallet.address());
    expect(parseTransaction(signed)).toMatchObject({ type: 'eip1559', chainId: 8453, nonce: 7, gas: 21000n, maxFeePerGas: 3_000_000_000n, value: 10n ** 18n, to: tx.to });
  });

  it('signs messages and EIP-712 data given as JSON with decimal-string bigints', async () => {
    const wallet = await openKeystore({ safeStorage: reversibleSafeStorage(), dir: tmp(), log: () => {} });
    const address = await wallet.address();
    expect(await recoverMessageAddress({ message: 'swarm', signature: await wallet.signMessage('swarm') })).toBe(address);
    const typed = {
      domain: { name: 'Swarm', version: '1', chainId: '8453', verifyingContract: `0x${'cd'.repeat(20)}` },
      types: {
        Claim: [
          { name: 'account', type: 'address' },
          { name: 'amounts', type: 'uint256[]' },
          { name: 'epoch', type: 'uint64' },
        ],
      },
      primaryType: 'Claim',
      message: { account: address, amounts: ['1', '340282366920938463463374607431768211456'], epoch: '12' },
    };
    const json = JSON.stringify(typed);
    const signature = await wallet.signTypedData(json);
    expect(await recoverTypedDataAddress({ ...parseTypedData(json), signature })).toBe(address);
    expect(parseTypedData(json).message.amounts).toEqual([1n, 2n ** 128n]);
    await expect(wallet.signTypedData('{"types":{}}')).rejects.toThrow(/typed data needs domain, types, primaryType and message/);
  });

  it('refuses to create or load a key when OS encryption is unavailable, writing nothing', async () => {
    const dir = tmp();
    await expect(openKeystore({ safeStorage: reversibleSafeStorage(false), dir })).rejects.toThrow(/OS encryption .* is not available/);
    expect(existsSync(join(dir, WALLET_FILE))).toBe(false);
  });

  it('warns on Linux when the keyring is the basic_text fallback', async () => {
    const lines: string[] = [];
    await openKeystore({ safeStorage: reversibleSafeStorage(true, 'basic_text'), dir: tmp(), platform: 'linux', log: (l) => lines.push(l) });
    expect(lines.some((l) => l.includes('basic_text'))).toBe(true);
  });

  it('never overwrites an unreadable key file', async () => {
    const dir = tmp();
    writeFileSync(join(dir, WALLET_FILE), 'garbage');
    await expect(openKeystore({ safeStorage: reversibleSafeStorage(), dir })).rejects.toThrow(/unreadable .* left untouched/);
    expect(readFileSync(join(dir, WALLET_FILE), 'utf8')).toBe('garbage');
  });
});

// ---------------------------------------------------------------------------------------------

describe('policy loop', () => {
  const run: Decision = { action: 'run', reason: 'training', duty: 1 };
  const paused: Decision = { action: 'pause', reason: 'paused: game running (x.exe)', duty: 0 };
  const throttled: Decision = { action: 'throttle', reason: 'throttled', duty: 0.5 };

  it('turns decision changes into trainer commands', () => {
    expect(trainerCommands(undefined, run)).toEqual([{ type: 'start' }, { type: 'duty', duty: 1 }]);
    expect(trainerCommands(undefined, paused)).toEqual([]);
    expect(trainerCommands(run, paused)).toEqual([{ type: 'leave', reason: paused.reason }]);
    expect(trainerCommands(paused, paused)).toEqual([]);
    expect(trainerCommands(paused, throttled)).toEqual([{ type: 'start' }, { type: 'duty', duty: 0.5 }]);
    expect(trainerCommands(run, throttled)).toEqual([{ type: 'duty', duty: 0.5 }]);
    expect(trainerCommands(run, { ...run, reason: 'training: idle for 6 min' })).toEqual([]);
  });

  it('keeps a corrupt settings.json aside as settings.json.bad and uses the defaults', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'settings.json'), '{"idleMinutes": -3');
    const lines: string[] = [];
    expect(await loadSettings(dir, (l) => lines.push(l))).toEqual(DEFAULT_SETTINGS);
    expect(readFileSync(join(dir, 'settings.json.bad'), 'utf8')).toBe('{"idleMinutes": -3');
    expect(existsSync(join(dir, 'settings.json'))).toBe(false);
    expect(lines.join('\n')).toMatch(/settings\.json is unusable .*kept as settings\.json\.bad/);
    writeFileSync(join(dir, 'settings.json'), JSON.stringify({ ...DEFAULT_SETTINGS, idleMinutes: -3 }));
    expect(await loadSettings(dir, (l) => lines.push(l))).toEqual(DEFAULT_SETTINGS);
    expect(lines.at(-1)).toMatch(/idleMinutes: must be between 0 and 1440/);
  });

  it('fills fields an older settings file lacks with their defaults, keeping the user’s choices', async () => {
    const dir = tmp();
    const { startAtLogin: _dropped, ...older } = { ...DEFAULT_SETTINGS, idleMinutes: 20 };
    writeFileSync(join(dir, 'settings.json'), JSON.stringify(older));
    expect(await loadSettings(dir, () => {})).toEqual({ ...DEFAULT_SETTINGS, idleMinutes: 20 });
    expect(existsSync(join(dir, 'settings.json.bad'))).toBe(false);
  });

  it('loads saved settings, decides without sensors that fail (logging once) and drives everything from the clock', async () => {
    const dir = tmp();
    const settings: PolicySettings = { ...DEFAULT_SETTINGS, idleMinutes: 1 };
    writeFileSync(join(dir, 'settings.json'), JSON.stringify(settings));
    const clock = manualClock();
    const commands: TrainerCommand[] = [];
    const views: PolicyView[] = [];
    const lines: string[] = [];
    let idle = 0;
    const loop = await openDesktopPolicy({
      dir,
      clock,
      log: (l) => lines.push(l),
      sensors: { idleSeconds: () => idle, onBattery: () => false, readProcessesAndGpus: () => Promise.reject(new Error('nvidia-smi hung')) },
      outputs: { command: (c) => commands.push(c), view: (v) => views.push(v) },
    });
    expect(loop.settings.idleMinutes).toBe(1);
    await loop.tick();
    expect(views.at(-1)?.decision.reason).toMatch(/^waiting: you were active just now/);
    expect(commands).toEqual([]);
    idle = 120;
    clock.t += 120_000;
    await loop.tick();
    expect(commands).toEqual([{ type: 'start' }, { type: 'duty', duty: 1 }]);
    expect(lines.filter((l) => l.includes('nvidia-smi hung'))).toHaveLength(1);
    // A snooze ends by itself when the clock passes it.
    await loop.snooze(1);
    expect(commands.at(-1)).toMatchObject({ type: 'leave' });
    clock.t += 3_600_001;
    idle += 3600;
    const view = await loop.tick();
    expect(view.pausedUntil).toBeUndefined();
    expect(commands.at(-1)).toEqual({ type: 'duty', duty: 1 });
  });

  it('refuses invalid settings without writing or changing anything', async () => {
    const dir = tmp();
    const loop = await openDesktopPolicy({
      dir,
      clock: manualClock(),
      sensors: { idleSeconds: () => 0, onBattery: () => false, readProcessesAndGpus: async () => ({ processes: [], gpus: [] }) },
      outputs: { command: () => {}, view: () => {} },
    });
    await expect(loop.saveSettings({ ...DEFAULT_SETTINGS, temperature: { pauseAtC: 80, resumeBelowC: 90 } })).rejects.toThrow(/temperature.resumeBelowC/);
    expect(loop.settings).toEqual(DEFAULT_SETTINGS);
    expect(existsSync(join(dir, 'settings.json'))).toBe(false);
  });
});

describe('tray', () => {
  const view = (over: Partial<PolicyView> = {}): PolicyView => ({ decision: { action: 'run', reason: 'training: idle for 6 min', duty: 1 }, settings: DEFAULT_SETTINGS, ...over });
  const recorder = () => {
    const calls: string[] = [];
    const actions: TrayActions = {
      pause: () => calls.push('pause'),
      resume: () => calls.push('resume'),
      snooze: (h) => calls.push(`snooze ${h}`),
      setStartAtLogin: (on) => calls.push(`login ${on}`),
      openDashboard: () => calls.push('open'),
      quit: () => calls.push('quit'),
    };
    return { calls, actions };
  };

  it('builds the menu: status, Pause or Resume, Snooze 1/3/6/12 h, Start at login, Open, Quit', () => {
    const { calls, actions } = recorder();
    const menu = trayTemplate(view(), actions);
    expect(menu.map((i) => i.id ?? i.type)).toEqual(['status', 'separator', 'pause', 'snooze', 'separator', 'start-at-login', 'open', 'separator', 'quit']);
    expect(menu[0]).toMatchObject({ label: 'training: idle for 6 min', enabled: false });
    expect(menu.find((i) => i.id === 'snooze')?.submenu?.map((i) => i.label)).toEqual(['1 hour', '3 hours', '6 hours', '12 hours']);
    for (const item of [...menu, ...(menu.find((i) => i.id === 'snooze')?.submenu ?? [])]) item.click?.();
    expect(calls).toEqual(['pause', 'login true', 'open', 'quit', 'snooze 1', 'snooze 3', 'snooze 6', 'snooze 12']);
    const pausedMenu = trayTemplate(view({ pausedUntil: Number.POSITIVE_INFINITY, settings: { ...DEFAULT_SETTINGS, startAtLogin: true } }), actions);
    expect(pausedMenu.map((i) => i.id)).toContain('resume');
    expect(pausedMenu.find((i) => i.id === 'start-at-login')).toMatchObject({ type: 'checkbox', checked: true });
  });

  it('draws its icon as a round dot', () => {
    const bitmap = trayIconBitmap('pause', 16);
    expect(bitmap.length).toBe(16 * 16 * 4);
    expect(bitmap[(8 * 16 + 8) * 4 + 3]).toBe(255); // centre opaque
    expect(bitmap[3]).toBe(0); // corner transparent
  });
});
