// shared/ and kernels/ must run unchanged in a browser tab (ARCHITECTURE §2): every module bundles
// for the browser platform, where a Node-only import (node:fs, ws, …) fails the build.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const modules = (dir: string): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? modules(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(root, dir, e.name)] : []));

it('every module of shared/ and kernels/ bundles for the browser', async () => {
  const entryPoints = [...modules('shared'), ...modules('kernels')];
  expect(entryPoints.length).toBeGreaterThan(30);
  const r = await build({ entryPoints, bundle: true, platform: 'browser', format: 'esm', target: 'es2022', write: false, outdir: 'out', logLevel: 'silent' }).catch(
    (e: { errors?: { text: string; location?: { file: string } }[] }) => e,
  );
  const errors = 'errors' in r ? (r.errors ?? []).map((x) => `${x.location?.file ?? '?'}: ${x.text}`) : [];
  expect(errors).toEqual([]);
}, 60_000);
