// How `npm start` shows the dashboard: in the desktop app where Electron's binary is installed;
// otherwise served on 127.0.0.1 for a browser tab, which joins the swarm as a worker.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { AppConfig } from '../shared/app/bridge.js';
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
  // The desktop app is paid at its own key; of the local test keys it gets one, to pay its gas from.
  // It joins the run of its configuration and switches to none, so it is not handed the network.
  const { network: _, ...joined } = config;
  const desktop: AppConfig = { ...joined, localKeys: config.localKeys?.slice(0, 1) };
  return spawn(binary, ['dist/electron/main.cjs'], { stdio: 'inherit', env: { ...process.env, SWARM_APP_CONFIG: JSON.stringify(desktop) } });
}

export async function openDashboard(config: AppConfig, o: { dataFile: string; port?: number; say(line: string): void }): Promise<{ url: string; close(): Promise<void> }> {
  const site = await serveDashboard(config, o);
  const electron = electronBinary();
  let app: ChildProcess | undefined;
  if ('path' in electron) {
    app = launchDesktop(electron.path, { ...config, dataUrl: `${site.url}/data.txt` });
    o.say(`\nthe desktop app is open; the dashboard is also at ${site.url}\n`);
  } else {
    o.say(
      `\n${electron.missing}, so the dashboard is served instead:\n\n    open ${site.url}  in Chrome or Edge (Chromium on Linux: --enable-unsafe-webgpu)\n\na tab that opens it joins the swarm as a worker; connect its "Local dev key 1" wallet to be paid on this chain\n\n`,
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
