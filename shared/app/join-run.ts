// Which run a dashboard joins: the coordinator its server names, as it is; otherwise a run found on
// its network's chain (the one asked for, the one its server names, else the best one taking
// volunteers now), with its coordinator, its training text and the chain read through the RPC that
// answered. Every way of not finding one is a sentence.
import { bestRun, connectNetwork, findRunOn, listRuns } from '../chain/find-run.js';
import type { Network } from '../chain/network.js';
import type { AppConfig, SiteConfig } from './bridge.js';

/** A run id as the registry counts them (as worker.ts checks --run). */
export const RUN_ID = /^[1-9]\d{0,30}$/;

/** Where the page may fetch the text itself: a file:// URL is the run designer's disk, not the page's. */
const fetchable = (url: string): boolean => URL.canParse(url) && ['http:', 'https:'].includes(new URL(url).protocol);

export async function resolveAppConfig(site: SiteConfig, requestedRunId?: string): Promise<AppConfig> {
  const { runId: servedRunId, coordinator, ...rest } = site;
  if (coordinator && requestedRunId === undefined) return { ...rest, coordinator };
  const asked = requestedRunId ?? servedRunId;
  if (asked !== undefined && !RUN_ID.test(asked)) throw new Error(`run ${JSON.stringify(asked)}: a run id is a positive integer`);
  const { network } = site;
  if (!network) {
    throw new Error(
      `there is no network to find ${asked ? `run ${asked}` : 'a run'} on: open this page from \`npm start\` or \`npm run tab -- --network NAME|FILE\`, or add ?coordinator=ws://HOST:PORT to the address`,
    );
  }
  const { chain, rpcUrl } = await connectNetwork(network);
  const runId = asked !== undefined ? BigInt(asked) : bestRun(await listRuns(chain))?.run.runId;
  if (runId === undefined) throw new Error(`no run on ${network.name} takes volunteers now`);
  const { listing } = await findRunOn(chain, network.name, runId);
  const dataUrl = fetchable(listing.corpusUrl) ? listing.corpusUrl : rest.dataUrl;
  return {
    ...rest,
    coordinator: listing.coordinator,
    chain: { rpcUrl, chainId: network.chainId, registry: network.registry, tokens: network.tokens, runId: runId.toString() },
    ...(dataUrl !== undefined && { dataUrl }),
  };
}

/**
 * The page's config with the network its user chose in Settings: that network replaces the one the
 * server names, and when it is another one, so do the server's coordinator, run and chain (they are
 * of the server's network): the page then finds a run on the chosen one.
 */
export function withChosenNetwork(site: SiteConfig, chosen: Network | undefined): SiteConfig {
  if (!chosen || JSON.stringify(chosen) === JSON.stringify(site.network)) return site;
  const { coordinator: _c, runId: _r, chain: _chain, ...rest } = site;
  return { ...rest, network: chosen };
}
