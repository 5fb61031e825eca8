// The contribution ledger: cumulative risk-adjusted units per account, settled in epochs. It is
// cumulative (not per-epoch) because the chain stores one Merkle root of cumulative totals per
// epoch and contributors claim `cumulative − claimed`: a missed claim is never lost, and a
// replayed proof for an old epoch can never pay more than the account has earned.
import { type Address, getAddress, isAddress } from 'viem';
import { z } from 'zod';
import { formatIssues } from '../base/issues.js';

export interface EpochSnapshot {
  epoch: number;
  /** Sorted by account (numerically), so the same ledger always yields the same tree. */
  cumulative: Array<{ account: Address; units: bigint }>;
  total: bigint;
}

/**
 * Checksummed form, so "0xab…" and its checksummed spelling are one account (a map keyed by raw
 * strings would split it). Mixed case with a wrong checksum is refused, not repaired: under EIP-55
 * it signals a mistyped address, and units credited to a typo are lost for good.
 */
export function normalizeAccount(account: string): Address {
  if (typeof account === 'string' && isAddress(account, { strict: true })) return getAddress(account);
  throw new Error(`invalid account address ${JSON.stringify(account)}: expected 0x + 40 hex digits, all lower-case or correctly checksummed`);
}

// Numeric order of 20-byte addresses = order of their lower-case hex; checksum casing would scramble it.
export const compareAccounts = (a: string, b: string) => {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
};

const positiveDecimal = z.string().regex(/^[1-9]\d*$/, 'expected a positive integer as a decimal string');
const balances = z.record(z.string(), positiveDecimal);
const LedgerJsonSchema = z.strictObject({
  version: z.literal(1),
  /** Index of the open epoch = number of epochs already closed. */
  epoch: z.int().nonnegative(),
  settled: balances,
  open: balances,
});
export type LedgerJson = z.infer<typeof LedgerJsonSchema>;

export class ContributionLedger {
  // Units as of the last closed epoch, and credits since then. Kept apart so a restart from
  // storage resumes the open epoch exactly where it was.
  private readonly settled = new Map<Address, bigint>();
  private readonly open = new Map<Address, bigint>();
  private nextEpoch = 0;

  /** The epoch credits currently go to. */
  get epoch(): number {
    return this.nextEpoch;
  }

  /** Whether the open epoch credits anyone (closing it would change the cumulative totals). */
  get hasOpenCredit(): boolean {
    return this.open.size > 0;
  }

  /** Cumulative units of `account` including the open epoch. */
  units(account: string): bigint {
    const a = normalizeAccount(account);
    return (this.settled.get(a) ?? 0n) + (this.open.get(a) ?? 0n);
  }

  credit(account: string, units: bigint): void {
    const a = normalizeAccount(account);
    if (typeof units !== 'bigint' || units < 0n) {
      throw new RangeError(`ledger credit: units must be a bigint ≥ 0, got ${String(units)}`);
    }
    // Floored work is often 0 units; it must not create a zero leaf for an account that earned nothing.
    if (units === 0n) return;
    this.open.set(a, (this.open.get(a) ?? 0n) + units);
  }

  /** A purged peer's account: its credits of the open epoch (not yet posted) are dropped. Returns how many. */
  forfeit(account: string): bigint {
    const a = normalizeAccount(account);
    const lost = this.open.get(a) ?? 0n;
    this.open.delete(a);
    return lost;
  }

  closeEpoch(): EpochSnapshot {
    for (const [a, u] of this.open) this.settled.set(a, (this.settled.get(a) ?? 0n) + u);
    this.open.clear();
    const cumulative = [...this.settled].map(([account, units]) => ({ account, units })).sort((x, y) => compareAccounts(x.account, y.account));
    const total = cumulative.reduce((s, e) => s + e.units, 0n);
    return { epoch: this.nextEpoch++, cumulative, total };
  }

  toJSON(): LedgerJson {
    return { version: 1, epoch: this.nextEpoch, settled: toRecord(this.settled), open: toRecord(this.open) };
  }

  /** Accepts the parsed JSON value; throws one readable error naming every problem found. */
  static fromJSON(json: unknown): ContributionLedger {
    const r = LedgerJsonSchema.safeParse(json);
    if (!r.success) throw new Error(`corrupt ledger: ${formatIssues('ledger', r.error)}`);
    const ledger = new ContributionLedger();
    ledger.nextEpoch = r.data.epoch;
    fromRecord(r.data.settled, ledger.settled, 'settled');
    fromRecord(r.data.open, ledger.open, 'open');
    return ledger;
  }
}

function toRecord(m: Map<Address, bigint>): Record<string, string> {
  const keys = [...m.keys()].sort(compareAccounts);
  return Object.fromEntries(keys.map((k) => [k, m.get(k)!.toString()]));
}

function fromRecord(rec: Record<string, string>, into: Map<Address, bigint>, field: string): void {
  for (const [key, value] of Object.entries(rec)) {
    let a: Address;
    try {
      a = normalizeAccount(key);
    } catch (e) {
      throw new Error(`corrupt ledger: ledger.${field}: ${(e as Error).message}`);
    }
    // Two spellings of one address would otherwise silently merge or overwrite balances.
    if (into.has(a)) throw new Error(`corrupt ledger: ledger.${field}: account ${a} appears twice`);
    into.set(a, BigInt(value));
  }
}
