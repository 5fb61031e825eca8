// Which chain a process talks to, from configuration (environment or flags), never from code:
// the same client runs against the local EVM, a testnet or mainnet.
import { type Address, type Hex, defineChain, isAddress } from 'viem';
import { z } from 'zod';
import { formatIssues } from '../base/issues.js';

const address = z.string().refine((a) => isAddress(a, { strict: false }), 'must be a 0x-prefixed 20-byte hex address');

export const ChainEnvSchema = z.object({
  SWARM_RPC_URL: z.url({ protocol: /^(https?|wss?)$/ }),
  SWARM_CHAIN_ID: z.coerce.number().int().positive(),
  SWARM_REGISTRY: address,
  SWARM_TOKENS: address,
  SWARM_RUN_ID: z.string().regex(/^[1-9]\d*$/, 'must be a positive integer'),
  /** The signing key of this process (coordinator role, a worker's payout account, a buyer). */
  SWARM_KEY: z
    .string()
    .regex(/^0x[0-9a-fA-F]{64}$/, 'must be a 0x-prefixed 32-byte hex private key')
    .optional(),
});

export interface ChainConfig {
  rpcUrl: string;
  chainId: number;
  registry: Address;
  tokens: Address;
  runId: bigint;
  key?: Hex;
}

/** The chain settings in `env`, undefined if none is set, or a clear error naming each bad one. */
export function chainConfigFromEnv(env: Record<string, string | undefined>): ChainConfig | undefined {
  const keys = Object.keys(ChainEnvSchema.shape);
  if (!keys.some((k) => env[k] !== undefined && env[k] !== '')) return undefined;
  const r = ChainEnvSchema.safeParse(Object.fromEntries(keys.map((k) => [k, env[k] || undefined])));
  if (!r.success) throw new Error(`chain configuration: ${formatIssues('env', r.error)}`);
  const e = r.data;
  return {
    rpcUrl: e.SWARM_RPC_URL,
    chainId: e.SWARM_CHAIN_ID,
    registry: e.SWARM_REGISTRY as Address,
    tokens: e.SWARM_TOKENS as Address,
    runId: BigInt(e.SWARM_RUN_ID),
    key: e.SWARM_KEY as Hex | undefined,
  };
}

/** The same settings as environment variables, for child processes. */
export function chainEnv(c: ChainConfig): Record<string, string> {
  return {
    SWARM_RPC_URL: c.rpcUrl,
    SWARM_CHAIN_ID: String(c.chainId),
    SWARM_REGISTRY: c.registry,
    SWARM_TOKENS: c.tokens,
    SWARM_RUN_ID: c.runId.toString(),
    ...(c.key && { SWARM_KEY: c.key }),
  };
}

/** A shell block that sets `c` for the commands that read it (`npm run wallet`, `npm run buy`, a worker), under a comment saying whose it is. */
export function exportBlock(who: string, c: ChainConfig): string {
  const vars = Object.entries(chainEnv(c)).map(([k, v]) => `${k}=${v}`);
  return `# ${who}\nexport ${vars.join(' ')}\n`;
}

/** A viem chain description for a configured RPC endpoint. */
export function chainOf(c: Pick<ChainConfig, 'rpcUrl' | 'chainId'>) {
  return defineChain({ id: c.chainId, name: `chain ${c.chainId}`, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [c.rpcUrl] } } });
}
