// --network NAME|FILE: a network the app ships (shared/chain/networks.ts) by name, or a network file;
// and the training text a run lists on chain, checked against its hash (downloaded if need be).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Network, parseNetwork } from '../shared/chain/network.js';
import { SHIPPED_NETWORKS, shippedNetwork } from '../shared/chain/networks.js';
import { readAtMost } from '../shared/base/bounded-read.js';
import { loadText } from './corpus.js';

export function loadNetwork(nameOrFile: string): Network {
  const shipped = shippedNetwork(nameOrFile);
  if (shipped) return shipped;
  let json: string;
  try {
    json = readFileSync(nameOrFile, 'utf8');
  } catch (e) {
    const names = SHIPPED_NETWORKS.map((n) => n.name).join(', ');
    throw new Error(`--network ${nameOrFile}: not a network this app ships (${names}) and not a readable file (${(e as Error).message})`);
  }
  return parseNetwork(json, nameOrFile);
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
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (`0x${sha256}` !== listed.corpusHash.toLowerCase()) {
    throw new Error(`corpus hash mismatch: ${listed.corpusUrl} hashes to ${sha256.slice(0, 12)}…, the run lists ${listed.corpusHash.slice(2, 14)}…`);
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${path}.part`, bytes);
  renameSync(`${path}.part`, path);
  return path;
}
