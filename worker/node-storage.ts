// The Node host's storage: each key a file under one folder (the peer's state directory). Writes
// go to a temporary file renamed over the old one, so a crash mid-write keeps the previous value.
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { PeerStorage } from '../shared/peer/host.js';

export function fileStorage(root: string): PeerStorage {
  const base = resolve(root);
  const path = (key: string) => {
    const p = resolve(base, key);
    if (!p.startsWith(base + sep) || key.includes('\\')) throw new Error(`storage key ${JSON.stringify(key)} leaves ${base}`);
    return p;
  };
  return {
    async get(key) {
      try {
        return new Uint8Array(await readFile(path(key)));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw e;
      }
    },
    async put(key, bytes) {
      const p = path(key);
      await mkdir(dirname(p), { recursive: true });
      await writeFile(`${p}.tmp`, bytes);
      await rename(`${p}.tmp`, p);
    },
    async delete(key) {
      await rm(path(key), { force: true });
    },
    async list(prefix) {
      const files = await readdir(base, { recursive: true }).catch(() => [] as string[]);
      return files.map((f) => relative(base, join(base, f)).split(sep).join('/')).filter((k) => k.startsWith(prefix) && !k.endsWith('.tmp'));
    },
  };
}
