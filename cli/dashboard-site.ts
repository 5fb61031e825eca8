// The dashboard as a web page on 127.0.0.1 (a secure origin, as WebGPU requires): the built bundle
// (dist/renderer, `npm run build:renderer`), at /config.json the swarm's coordinates or the network
// the page finds its run on (shared/app/join-run.ts), the training text at /data.txt, and at
// /machine what a page cannot see for itself: the machine's processes and GPU sensors, so the
// tab's policies pause for a game as the desktop app's do. The last two (local dev keys and the
// RPC URL; the processes) are handed only to the dashboard's own pages.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readProcessesAndGpus } from '../node/sensors.js';
import type { SiteConfig } from '../shared/app/bridge.js';
import { type StaticFile, serveStatic } from './static-site.js';

export const DASHBOARD_DIR = fileURLToPath(new URL('../dist/renderer', import.meta.url));

/**
 * Build the dashboard (vite), after a command has read its flags: a bad flag answers at once rather
 * than after the build. A failed build ends the command, named as `command`.
 */
export function buildDashboard(command: string): void {
  const r = spawnSync('npx', ['vite', 'build', '--logLevel', 'error'], { stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`${command}: building the dashboard failed (vite build exited ${r.status ?? r.signal})\n`);
    process.exit(1);
  }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
}

/** Every file of the built dashboard by URL path ('/' is index.html). */
function builtDashboard(dir = DASHBOARD_DIR): Record<string, StaticFile> {
  if (!existsSync(join(dir, 'index.html'))) throw new Error(`the dashboard is not built (${dir} has no index.html): run \`npm run build:renderer\``);
  const out: Record<string, StaticFile> = {};
  for (const f of files(dir)) out[`/${relative(dir, f).split('\\').join('/')}`] = { type: TYPES[extname(f)] ?? 'application/octet-stream', body: readFileSync(f) };
  out['/'] = out['/index.html'];
  return out;
}

/** What only the dashboard's own pages may read. */
export const SAME_ORIGIN_ONLY = ['/config.json', '/machine'];

/** `dir`: the built dashboard (DASHBOARD_DIR unless a test serves its own). */
export async function serveDashboard(config: SiteConfig, o: { dataFile: string; port?: number; dir?: string }) {
  const json = (v: unknown): StaticFile => ({ type: 'application/json', body: JSON.stringify(v) });
  return serveStatic(
    {
      ...builtDashboard(o.dir),
      // A page gets the local node's test accounts, never a key (those are the desktop app's).
      '/config.json': json({ dataUrl: '/data.txt', ...config, localKeys: undefined }),
      '/data.txt': { type: 'text/plain; charset=utf-8', body: readFileSync(o.dataFile) },
      '/machine': async () => json(await readProcessesAndGpus()),
    },
    o.port ?? 0,
    { sameOriginOnly: SAME_ORIGIN_ONLY },
  );
}
