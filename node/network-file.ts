// --network NAME|FILE: a network the app ships (shared/chain/networks.ts) by name, or a network file.
// Apart from the training text (corpus.ts), so the desktop app's main process bundles only this.
import { readFileSync } from 'node:fs';
import { type Network, parseNetwork } from '../shared/chain/network.js';
import { SHIPPED_NETWORKS, shippedNetwork } from '../shared/chain/networks.js';

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
