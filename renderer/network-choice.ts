// The network a tab's user chose in Settings, kept in this browser: a network file's JSON, checked
// on the way in and again on the way out (a stored value that no longer parses is ignored, and says so).
import { type Network, parseNetwork } from '../shared/chain/network.js';

const KEY = 'swarm.network';

/** The chosen network, if one is stored and still valid. */
export function chosenNetwork(): Network | undefined {
  const json = localStorage.getItem(KEY);
  if (json === null) return undefined;
  try {
    return parseNetwork(json, 'the network chosen in Settings');
  } catch (e) {
    console.warn(`${(e as Error).message}: using this page's network instead`);
    return undefined;
  }
}

/** Keep `json` as the chosen network (it must be a network file), or forget the choice. */
export function chooseNetwork(json: string | undefined): void {
  if (json === undefined) return localStorage.removeItem(KEY);
  const network = parseNetwork(json, 'the network file');
  localStorage.setItem(KEY, JSON.stringify(network));
}
