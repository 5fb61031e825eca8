// Bundles the desktop app's main process and preloads with esbuild into dist/electron/:
//   main.cjs             Node (Electron's main process), everything bundled but 'electron'
//   preload.cjs          the dashboard's sandboxed preload
//   trainer-preload.cjs  the trainer's sandboxed preload
// Sandboxed preloads may require nothing but 'electron' (and a few polyfilled builtins), so they are
// bundled for the browser and the build fails if any other require is left in them.
// The app's pages (the dashboard, and the trainer window whose code is electron/pages/) are Vite's.
// Usage: npm run build:electron   (the pages: npm run build:renderer)
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'dist/electron');
const production = process.env.NODE_ENV === 'production';

const common: BuildOptions = {
  bundle: true,
  format: 'cjs',
  external: ['electron'],
  sourcemap: production ? false : 'linked',
  minify: production,
  legalComments: 'linked',
  logLevel: 'warning',
  absWorkingDir: root,
};

async function buildMain(): Promise<void> {
  await build({
    ...common,
    entryPoints: { main: 'electron/main.ts' },
    outdir: outDir,
    outExtension: { '.js': '.cjs' },
    platform: 'node',
    // Electron 45 runs Node 22.
    target: 'node22',
  });
}

async function buildPreloads(): Promise<void> {
  await build({
    ...common,
    entryPoints: { preload: 'electron/preload.ts', 'trainer-preload': 'electron/trainer-preload.ts' },
    outdir: outDir,
    outExtension: { '.js': '.cjs' },
    // Not 'node': a sandboxed preload has no Node; a bundled node builtin would fail at load.
    platform: 'browser',
    // Always minified: the contract's zod schemas come along (unused here) and every page load parses the preload.
    minify: true,
    target: 'chrome140',
  });
}

/** Every module a bundle still requires at run time. */
export function requiredModules(code: string): string[] {
  return [...new Set([...code.matchAll(/\brequire\(\s*["'`]([^"'`]+)["'`]\s*\)/g)].map((m) => m[1]))];
}

function checkPreload(file: string): void {
  const extra = requiredModules(readFileSync(file, 'utf8')).filter((m) => m !== 'electron');
  if (extra.length > 0) throw new Error(`${file} requires ${extra.join(', ')}: a sandboxed preload may require only 'electron'`);
}

await Promise.all([buildMain(), buildPreloads()]);
for (const name of ['preload.cjs', 'trainer-preload.cjs']) checkPreload(join(outDir, name));
console.log(`built ${outDir}/{main,preload,trainer-preload}.cjs`);
