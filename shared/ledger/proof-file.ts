// The proofs file a contributor keeps: after each epoch's root is posted, the coordinator sends the
// contributor its cumulative units and Merkle proof (the `settled` message), and the peer appends it
// here with the chain's coordinates. With this file alone, `npm run wallet -- claim-ownership FILE`
// and the dashboard's Earnings page claim and verify against the chain, coordinator or not.
import { z } from 'zod';
import { formatIssues } from '../base/issues.js';

const bytes32 = z.string().regex(/^0x[0-9a-f]{64}$/);
/** On-chain amounts travel as decimal strings: JSON has no bigint. */
const uintString = z.string().regex(/^(0|[1-9]\d{0,77})$/, 'must be a decimal integer string');
const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x-prefixed 20-byte hex address');

/** One settled epoch of one contributor: its leaf (account, cumulative units) and the proof to the root. */
export const SettledEpochSchema = z.strictObject({
  epoch: z.int().nonnegative(),
  root: bytes32,
  total: uintString,
  account: address,
  cumulative: uintString,
  proof: z.array(bytes32).max(64),
});
export type SavedEpoch = z.infer<typeof SettledEpochSchema>;

/** Where the run settles: what a claim needs besides the proof. */
export interface ChainCoordinates {
  chainId: number;
  registry: string;
  tokens: string;
  runId: string;
}

export const ProofFileSchema = z.object({
  chainId: z.int(),
  registry: z.string(),
  tokens: z.string(),
  runId: z.string(),
  epochs: z.array(SettledEpochSchema).min(1),
});
export type ProofFile = z.infer<typeof ProofFileSchema>;

/** The storage key of a contributor's proofs for one run on chain. */
export function proofsKey(account: string, chainRunId: string): string {
  return `proofs/${account}-run${chainRunId}.json`;
}

export function parseProofFile(json: unknown, where: string): ProofFile {
  const r = ProofFileSchema.safeParse(json);
  if (!r.success) throw new Error(`${where} is not a proofs file: ${formatIssues('proofs', r.error)}`);
  return r.data;
}

/** The file's bytes as written, read back; throws a sentence on anything that is not a proofs file. */
export function readProofFile(bytes: Uint8Array, where: string): ProofFile {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new Error(`${where} is not JSON: ${(e as Error).message}`);
  }
  return parseProofFile(json, where);
}

/** The file with one more settled epoch (a new file when there was none). */
export function withEpoch(old: ProofFile | undefined, chain: ChainCoordinates, epoch: SavedEpoch): ProofFile {
  return { ...chain, epochs: [...(old?.epochs ?? []), epoch] };
}

export function encodeProofFile(p: ProofFile): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(p, null, 2));
}

/** Proofs kept for another run or chain would claim nothing: say so before sending anything. */
export function checkProofsFor(p: ProofFile, where: string, run: { chainId: number; registry: string; runId: bigint }): void {
  if (p.chainId !== run.chainId || p.registry.toLowerCase() !== run.registry.toLowerCase() || BigInt(p.runId) !== run.runId) {
    throw new Error(`${where} holds proofs for run ${p.runId} on chain ${p.chainId} (${p.registry}), not for run ${run.runId} on chain ${run.chainId}`);
  }
}

/** The saved proof for one root: the contract takes each claim against one root only. */
export function savedEpoch(p: ProofFile, epoch: bigint): SavedEpoch | undefined {
  return p.epochs.find((e) => BigInt(e.epoch) === epoch);
}
