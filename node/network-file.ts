// --network NAME|FILE: a network the app ships (shared/chain/networks.ts) by name, or a network file.
import { readFileSync } from 'node:fs';
import { type Network, parseNetwork } from '../shared/chain/network.js';
import { SHIPPED_NETWORKS, shippedNetwork } from '../shared/chain/networks.js';
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
