// Training text from a file (Node): the bytes, described as the run config records them; and the
// text a run lists on chain, checked against its hash (downloaded if need be).
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readAtMost } from '../shared/base/bounded-read.js';
import { describeText } from '../shared/run/derive.js';

export const DEFAULT_DATA = new URL('../data/tinyshakespeare.txt', import.meta.url).pathname;

export async function loadText(path: string): Promise<{ text: string; sha256: string; chars: number }> {
  let raw: Uint8Array;
  try {
    raw = new Uint8Array(await readFile(path));
  } catch (e) {
    throw new Error(`cannot read the training text ${path}: ${(e as Error).message}`);
  }
  return describeText(raw, path);
}

/** Refuse training text that is not the run's: `path` must hash to the SHA-256 the run lists on chain. */
export async function checkListedCorpus(path: string, listed: { corpusUrl: string; corpusHash: string }): Promise<void> {
  const { sha256 } = await loadText(path);
  if (`0x${sha256}` !== listed.corpusHash.toLowerCase()) {
    throw new Error(
      `corpus hash mismatch: ${path} hashes to ${sha256.slice(0, 12)}…, the run lists ${listed.corpusHash.slice(2, 14)}… (${listed.corpusUrl}): train on that text (--data FILE)`,
    );
  }
}

/** Largest training text a run may list (tinyshakespeare is 1 MiB): a hostile URL must not fill the disk. */
export const MAX_CORPUS_BYTES = 256 * 2 ** 20;

/**
 * The run's listed training text as a local file: a file:// URL as it is, an http(s) one downloaded
 * once into `dir` (kept by its hash), refused unless it hashes to the SHA-256 the run lists.
 */
export async function fetchListedCorpus(listed: { corpusUrl: string; corpusHash: string }, dir: string, maxBytes = MAX_CORPUS_BYTES): Promise<string> {
  const url = new URL(listed.corpusUrl);
  if (url.protocol === 'file:') {
    await checkListedCorpus(fileURLToPath(url), listed);
    return fileURLToPath(url);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`the run lists its text at ${listed.corpusUrl}: not an http(s) or file URL`);
  const path = join(dir, `corpus-${listed.corpusHash.slice(2, 18)}.txt`);
  if (existsSync(path)) return path;
  const res = await fetch(url, { redirect: 'follow' }).catch((e: Error) => {
    throw new Error(`cannot download the run's text from ${listed.corpusUrl}: ${e.message}`);
  });
  if (!res.ok || !res.body) throw new Error(`cannot download the run's text from ${listed.corpusUrl}: HTTP ${res.status}`);
  const bytes = await readAtMost(res.body, maxBytes);
  if (!bytes) throw new Error(`the run's text at ${listed.corpusUrl} is over ${maxBytes} bytes: refused`);
  const { sha256 } = await describeText(bytes, listed.corpusUrl);
  if (`0x${sha256}` !== listed.corpusHash.toLowerCase()) {
    throw new Error(`corpus hash mismatch: ${listed.corpusUrl} hashes to ${sha256.slice(0, 12)}…, the run lists ${listed.corpusHash.slice(2, 14)}…`);
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${path}.part`, bytes);
  renameSync(`${path}.part`, path);
  return path;
}
