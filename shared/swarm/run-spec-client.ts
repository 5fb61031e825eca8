// Reading a run's model spec from its coordinator (shared/run/spec.ts), for a page that wants to
// know what the run trains before joining it. The coordinator's address comes from the chain, so
// its answer is bounded in size and time and kept only if it hashes to the run's modelHash.
// It lives here rather than beside the spec because the address rules are the coordinator's.
import type { Hex } from 'viem';
import { readAtMost } from '../base/bounded-read.js';
import type { RunConfig } from '../run/config.js';
import { RUN_SPEC_PATH, parseRunSpec } from '../run/spec.js';
import { coordinatorHttpUrl } from './coordinator-url.js';

/** A run config is a few hundred bytes; anything near this is not one. */
export const MAX_RUN_SPEC_BYTES = 64 * 1024;
export const RUN_SPEC_TIMEOUT_MS = 10_000;

/** The spec's URL: RUN_SPEC_PATH under the http(s) twin of the coordinator's ws(s) address (a proxy's path prefix kept). */
export function runSpecUrl(coordinatorUrl: string): string {
  const shown = coordinatorUrl.slice(0, 200);
  let u: URL;
  try {
    u = new URL(coordinatorUrl);
  } catch {
    throw new Error(`"${shown}" is not a coordinator address`);
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`${shown} is not a coordinator address: it must start with wss://`);
  const twin = new URL(coordinatorHttpUrl(u.href));
  return `${twin.origin}${twin.pathname.replace(/\/$/, '')}${RUN_SPEC_PATH}`;
}

/** The run config the coordinator at `coordinatorUrl` serves, checked against `modelHash`; throws a sentence otherwise. */
export async function fetchRunSpec(coordinatorUrl: string, modelHash: Hex, fetchImpl: typeof fetch = fetch): Promise<RunConfig> {
  const url = runSpecUrl(coordinatorUrl);
  const signal = AbortSignal.timeout(RUN_SPEC_TIMEOUT_MS);
  const failed = (e: unknown): never => {
    if (signal.aborted) throw new Error(`the coordinator did not send its model spec within ${RUN_SPEC_TIMEOUT_MS / 1000} s`);
    throw new Error(`cannot reach the coordinator for its model spec (${e instanceof Error ? e.message : String(e)})`);
  };
  const res = await fetchImpl(url, { cache: 'no-store', credentials: 'omit', signal }).catch(failed);
  // An older coordinator answers every plain request with 426.
  if (!res.ok) throw new Error(`the coordinator does not serve its model spec (HTTP ${res.status})`);
  const bytes = res.body ? await readAtMost(res.body, MAX_RUN_SPEC_BYTES).catch(failed) : new Uint8Array();
  if (!bytes) throw new Error(`the coordinator's model spec is over ${MAX_RUN_SPEC_BYTES / 1024} KiB: refused`);
  return parseRunSpec(new TextDecoder().decode(bytes), modelHash);
}
