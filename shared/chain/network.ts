// A network: which chain, where to reach it, which contracts hold its runs, and the STUN servers its
// peers gather candidates through by default. A small checked JSON file: the app ships a list
// (networks.ts), a user adds one in Settings, the command line takes --network FILE|NAME. Nothing
// else is needed to find a run: its coordinator and corpus are listed on chain (find-run.ts).
import { type Address, isAddress } from 'viem';
import { z } from 'zod';
import { formatIssues } from '../base/issues.js';

const address = z.string().refine((a) => isAddress(a, { strict: false }), 'must be a 0x-prefixed 20-byte hex address');

export const NetworkSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be 1-32 lowercase letters, digits or dashes'),
  chainId: z.int().positive(),
  rpcUrls: z
    .array(z.url({ protocol: /^https?$/ }))
    .min(1)
    .max(4),
  registry: address,
  tokens: address,
  stun: z
    .array(z.string().regex(/^stun:[^\s]{1,250}$/, 'must be a stun: URL'))
    .max(4)
    .default([]),
});
export type Network = z.infer<typeof NetworkSchema> & { registry: Address; tokens: Address };

/** `json` (a network file's text, named `source` in errors) as a network, or a clear error. */
export function parseNetwork(json: string, source: string): Network {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    throw new Error(`${source} is not JSON: ${(e as Error).message}`);
  }
  const r = NetworkSchema.safeParse(value);
  if (!r.success) throw new Error(`${source} is not a network: ${formatIssues('network', r.error)}`);
  return r.data as Network;
}
