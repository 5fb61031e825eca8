// The desktop app's files in its user-data folder (settings, the saved run choice, the wallet key):
// written so a crash leaves the old file or the new one, read as "none yet" when missing, and a
// file that is not what it should be kept aside for the user (or a bug report) rather than lost.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';

/** Write `data` to `path` so that a crash leaves the old file or the new one, never half of one. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.chmod(mode); // open's mode passes through the umask
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}

/** The file's text, or undefined when there is no such file (any other failure throws). */
export async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Keep an unusable `file` as `file.bad` (the next save writes a fresh one); a failure to is logged, not thrown. */
export async function keepAside(file: string, what: string, log: (line: string) => void): Promise<void> {
  await rename(file, `${file}.bad`).catch((e: Error) => log(`${what}: could not keep ${file} aside: ${e.message}`));
}
