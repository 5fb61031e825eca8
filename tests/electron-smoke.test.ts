// The built desktop app: the bundles scripts/build-electron.ts writes, checked without Electron
// (main.cjs evaluates and starts wiring; the preloads run with nothing but require('electron')),
// and, where Electron's binary is installed, launched for real with Playwright to see the
// dashboard open with window.swarmDesktop.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { beforeAll, describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const root = join(import.meta.dirname, '..');
const out = join(root, 'dist/electron');

/**
 * Electron's binary, or why it is missing. Found the way electron/index.js finds it, without
 * calling it first: in electron 45 `require('electron')` tries to download a missing binary.
 */
function electronBinary(): { path: string } | { reason: string } {
  const dir = dirname(require.resolve('electron/package.json'));
  const pathFile = join(dir, 'path.txt');
  const missing = (what: string) => ({ reason: `Electron's binary is not installed here (${what}): npm's electron package could not download it` });
  if (!existsSync(pathFile)) return missing(`${pathFile} does not exist`);
  const relative = readFileSync(pathFile, 'utf8');
  const override = process.env.ELECTRON_OVERRIDE_DIST_PATH;
  const binary = override ? join(override, relative) : join(dir, 'dist', relative);
  if (!existsSync(binary)) return missing(`${binary} does not exist`);
  return { path: require('electron') as string };
}

function build(): void {
  execFileSync(process.execPath, [join(root, 'node_modules/tsx/dist/cli.mjs'), join(root, 'scripts/build-electron.ts')], { cwd: root, stdio: 'pipe' });
}

/** Evaluate a CommonJS bundle with our own `require`. */
function runBundle(file: string, requireFn: (id: string) => unknown, globals: Record<string, unknown> = {}): void {
  const module = { exports: {} };
  runInNewContext(readFileSync(file, 'utf8'), { require: requireFn, module, exports: module.exports, __dirname: dirname(file), __filename: file, ...globals }, { filename: file });
}

describe('built bundles (no Electron binary needed)', () => {
  beforeAll(build, 60_000);

  it('main.cjs evaluates, takes the single-instance lock and quits when another instance has it', async () => {
    const calls: string[] = [];
    const app = {
      requestSingleInstanceLock: () => {
        calls.push('lock');
        return false;
      },
      quit: () => calls.push('quit'),
      exit: () => calls.push('exit'),
    };
    const fake = { app, dialog: { showErrorBox: (_t: string, m: string) => calls.push(`error: ${m}`) } };
    const nodeRequire = createRequire(join(out, 'main.cjs'));
    // Everything but 'electron' must be bundled or a Node builtin: nothing from node_modules at run time.
    const requireFn = (id: string) => {
      if (id === 'electron') return fake;
      if (!isBuiltin(id)) throw new Error(`main.cjs requires ${id}, which the packaged app does not have`);
      return nodeRequire(id);
    };
    runBundle(join(out, 'main.cjs'), requireFn, { process, console, setTimeout, clearTimeout, setInterval, clearInterval, Buffer, URL, TextEncoder, TextDecoder });
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toEqual(['lock', 'quit']);
  });

  for (const [file, key] of [
    ['preload.cjs', 'swarmDesktop'],
    ['trainer-preload.cjs', 'swarmTrainer'],
  ] as const) {
    it(`${file} runs with nothing but require('electron') (a sandboxed preload) and exposes ${key}`, () => {
      const exposed = new Map<string, unknown>();
      const electron = {
        contextBridge: { exposeInMainWorld: (k: string, api: unknown) => exposed.set(k, api) },
        ipcRenderer: { invoke: async () => undefined, send: () => {}, on: () => {}, removeListener: () => {} },
      };
      const requireFn = (id: string) => {
        if (id === 'electron') return electron;
        throw new Error(`a sandboxed preload cannot require ${id}`);
      };
      runBundle(join(out, file), requireFn, { console, TextEncoder, URL });
      expect([...exposed.keys()]).toEqual([key]);
    });
  }
});

const found = electronBinary();
const renderer = join(root, 'dist/renderer/index.html');
const skip = 'reason' in found ? found.reason : existsSync(renderer) ? undefined : `the dashboard is not built (${renderer} is missing: npm run build:renderer)`;
if (skip) console.log(`electron-smoke: launching the app skipped: ${skip}`);

describe('the packaged-like app, launched', () => {
  it.skipIf(skip !== undefined)('opens the dashboard with window.swarmDesktop and no Node in the page', async () => {
    if (!('path' in found)) return;
    build();
    const { _electron } = await import('playwright-core');
    const userData = mkdtempSync(join(tmpdir(), 'swarm-smoke-'));
    const app = await _electron.launch({ executablePath: found.path, args: [join(out, 'main.cjs'), `--user-data-dir=${userData}`] });
    try {
      const isDashboard = (url: string) => url.startsWith('app://swarm/index.html');
      const dashboard = app.windows().find((w) => isDashboard(w.url())) ?? (await app.waitForEvent('window', { predicate: (w) => isDashboard(w.url()), timeout: 30_000 }));
      await dashboard.waitForLoadState('domcontentloaded');
      const probe = await dashboard.evaluate(() => {
        const page = globalThis as { swarmDesktop?: Record<string, unknown>; require?: unknown; process?: unknown };
        return { bridge: page.swarmDesktop ? Object.keys(page.swarmDesktop).sort() : undefined, require: typeof page.require, process: typeof page.process };
      });
      expect(probe.bridge).toEqual(['config', 'onPolicy', 'onTrainerEvent', 'pause', 'policy', 'resume', 'saveSettings', 'snooze', 'wallet']);
      expect(probe).toMatchObject({ require: 'undefined', process: 'undefined' });
    } finally {
      await app.close();
    }
  });
});
