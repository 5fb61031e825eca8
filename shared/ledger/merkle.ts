// One epoch's Merkle tree in OpenZeppelin's standard format: leaves are (account, cumulative units)
// ABI-encoded and double-hashed, pairs hashed sorted, so the contract side is plain
// MerkleProof.verify and the dump is what OpenZeppelin's own tooling reads.
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { type Address, type Hex, encodeAbiParameters, keccak256 } from 'viem';
import { z } from 'zod';
import { type EpochSnapshot, normalizeAccount } from './ledger.js';
import { formatIssues } from '../base/issues.js';

export const LEAF_ENCODING = ['address', 'uint256'] as const;
const MAX_UINT256 = (1n << 256n) - 1n;

// Units are kept as decimal strings inside the tree so its dump is plain JSON (no bigint).
type Leaf = [Address, string];

export interface EpochTreeDump {
  format: 'standard-v1';
  leafEncoding: string[];
  tree: string[];
  values: Array<{ value: [string, string]; treeIndex: number }>;
}

export interface EpochTree {
  root: Hex;
  total: bigint;
  proof(account: string): Hex[];
  units(account: string): bigint | undefined;
  dump(): EpochTreeDump;
}

function checkUnits(units: bigint, where: string): void {
  if (typeof units !== 'bigint' || units < 0n || units > MAX_UINT256) {
    throw new RangeError(`${where}: units must be a uint256 bigint, got ${String(units)}`);
  }
}

/** The leaf the contract recomputes: keccak256(bytes.concat(keccak256(abi.encode(account, cumulative)))). */
export function leafHash(account: string, cumulative: bigint): Hex {
  checkUnits(cumulative, 'leafHash');
  const encoded = encodeAbiParameters([{ type: 'address' }, { type: 'uint256' }], [normalizeAccount(account), cumulative]);
  return keccak256(keccak256(encoded));
}

function wrap(tree: StandardMerkleTree<Leaf>): EpochTree {
  const index = new Map<Address, number>();
  let total = 0n;
  for (const [i, [account, units]] of tree.entries()) {
    const a = normalizeAccount(account);
    // Two leaves for one account would let it claim under either amount.
    if (index.has(a)) throw new Error(`epoch tree: account ${a} has more than one leaf`);
    index.set(a, i);
    total += BigInt(units);
  }
  return {
    root: tree.root as Hex,
    total,
    proof(account) {
      const a = normalizeAccount(account);
      const i = index.get(a);
      if (i === undefined) throw new Error(`epoch tree: no leaf for account ${a}; it has no units in this epoch`);
      return tree.getProof(i) as Hex[];
    },
    units(account) {
      const i = index.get(normalizeAccount(account));
      return i === undefined ? undefined : BigInt(tree.at(i)![1]);
    },
    dump: () => tree.dump() as EpochTreeDump,
  };
}

export function epochTree(snapshot: EpochSnapshot): EpochTree {
  if (snapshot.cumulative.length === 0) {
    throw new Error(`epoch tree: epoch ${snapshot.epoch} has no contributors, and a Merkle tree needs at least one leaf`);
  }
  const leaves: Leaf[] = snapshot.cumulative.map(({ account, units }) => {
    checkUnits(units, `epoch tree: account ${account}`);
    return [normalizeAccount(account), units.toString()];
  });
  const t = wrap(StandardMerkleTree.of(leaves, [...LEAF_ENCODING]));
  // The snapshot's total is what gets published beside the root; it must be the leaves' sum.
  if (t.total !== snapshot.total) {
    throw new Error(`epoch tree: snapshot total ${snapshot.total} is not the sum of its units ${t.total}`);
  }
  return t;
}

const hex32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'expected a 32-byte hex string');
const DumpSchema = z.strictObject({
  format: z.literal('standard-v1'),
  leafEncoding: z.tuple([z.literal('address'), z.literal('uint256')]),
  tree: z.array(hex32).min(1),
  values: z
    .array(
      z.strictObject({
        value: z.tuple([z.string(), z.string().regex(/^(0|[1-9]\d*)$/, 'expected a decimal integer string')]),
        treeIndex: z.int().nonnegative(),
      }),
    )
    .min(1),
});

/** Rebuilds a tree from `dump()` output, checking every hash so a tampered file cannot load. */
export function loadEpochTree(dump: unknown): EpochTree {
  const r = DumpSchema.safeParse(dump);
  if (!r.success) throw new Error(`corrupt epoch tree dump: ${formatIssues('dump', r.error)}`);
  try {
    for (const { value } of r.data.values) checkUnits(BigInt(value[1]), `account ${value[0]}`);
    return wrap(StandardMerkleTree.load(r.data as Parameters<typeof StandardMerkleTree.load<Leaf>>[0]));
  } catch (e) {
    throw new Error(`corrupt epoch tree dump: ${(e as Error).message}`);
  }
}
