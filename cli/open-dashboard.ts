// How `npm start` shows the dashboard: in the desktop app where Electron's binary is installed;
// otherwise served on 127.0.0.1 for a browser tab, which joins the swarm as a worker once asked to.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { AppConfig } from '../shared/app/bridge.js';
import { listenError } from '../node/flags.js';
import { serveDashboard } from './dashboard-site.js';

/**
 * The Electron binary's path, or why there is none. Read from the package's path.txt rather than
 * by requiring `electron`, which tries to download a missing binary (impossible offline) first.
 */
export function electronBinary(): { path: string } | { missing: string } {
  const dir = dirname(createRequire(import.meta.url).resolve('electron/package.json'));
  const pathFile = join(dir, 'path.txt');
  if (!existsSync(pathFile)) return { missing: `Electron's binary is not installed (${pathFile} is missing: npm's electron package could not download it)` };
  const rel = readFileSync(pathFile, 'utf8').trim();
  const path = process.env.ELECTRON_OVERRIDE_DIST_PATH ? join(process.env.ELECTRON_OVERRIDE_DIST_PATH, rel) : join(dir, 'dist', rel);
  return existsSync(path) ? { path } : { missing: `Electron's binary is not at ${path}` };
}

function launchDesktop(binary: string, config: AppConfig): ChildProcess {
  const built = spawnSync('npx', ['tsx', 'scripts/build-electron.ts'], { stdio: 'inherit' });
  if (built.status !== 0) throw new Error('building the desktop app failed (npm run build:electron)');
  // The app finds the run on the local network's chain, as it would on any network; of the local
  // test keys it gets one, to pay its gas from (it is paid at its own key).
  const args = ['dist/electron/main.cjs'];
  if (config.network && config.chain) {
    const file = join(mkdtempSync(join(tmpdir(), 'swarm-network-')), `${config.network.name}.json`);
    writeFileSync(file, JSON.stringify(config.network));
    args.push('--network', file, '--run', config.chain.runId);
  }
  const env = { ...process.env, SWARM_DEV_KEYS: config.localKeys?.[0] ?? '' };
  return spawn(binary, args, { stdio: 'inherit', env });
}

export async function openDashboard(config: AppConfig, o: { dataFile: string; port?: number; say(line: string): void }): Promise<{ url: string; close(): Promise<void> }> {
  const site = await serveDashboard(config, o).catch((e: unknown) => {
    throw listenError(e, 'port');
  });
  const electron = electronBinary();
  let app: ChildProcess | undefined;
  if ('path' in electron) {
    app = launchDesktop(electron.path, { ...config, dataUrl: `${site.url}/data.txt` });
    o.say(`\nthe desktop app is open; the dashboard is also at ${site.url}\n`);
  } else {
    o.say(
      `\n${electron.missing}, so the dashboard is served instead:\n\n    open ${site.url}  in Chrome or Edge (Chromium on Linux: --enable-unsafe-webgpu)\n\npress "Train with this GPU" and the tab joins the swarm as a worker; connect its "Local dev account 1" wallet to be paid on this chain\n\n`,
    );
  }
  return {
    url: site.url,
    async close() {
      app?.kill();
      await site.close();
    },
  };
}
