// The contribution ledger: cumulative risk-adjusted units per account, settled in epochs. It is
// cumulative (not per-epoch) because the chain stores one Merkle root of cumulative totals per
// epoch and contributors claim `cumulative − claimed`: a missed claim is never lost, and a
// replayed proof for an old epoch can never pay more than the account has earned.
//
// Units are held before they settle: a closed epoch's credits stay forfeitable for `heldEpochs`
// more closes, so a cheat caught late (at the next averaging, by a dispute that took a while)
// loses all the work it did meanwhile, not only the open epoch's. That is what makes cheating cost
// more than it can earn (shared/trust/audit-choice.ts).
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
  /** Closed epochs' credits not yet settled, oldest first. */
  held: z.array(balances).max(64).optional(),
  open: balances,
});
export type LedgerJson = z.infer<typeof LedgerJsonSchema>;

export class ContributionLedger {
  // Settled units, closed epochs' credits still held, and credits since the last close. Kept apart
  // so a restart from storage resumes exactly where it was.
  private readonly settled = new Map<Address, bigint>();
  private held: Array<Map<Address, bigint>> = [];
  private readonly open = new Map<Address, bigint>();
  private nextEpoch = 0;

  /** `heldEpochs`: closes an epoch's credits wait, forfeitable, before they settle (0: they settle at once). */
  constructor(readonly heldEpochs = 0) {
    if (!Number.isInteger(heldEpochs) || heldEpochs < 0) throw new RangeError(`heldEpochs must be an integer ≥ 0, got ${heldEpochs}`);
  }

  /** The epoch credits currently go to. */
  get epoch(): number {
    return this.nextEpoch;
  }

  /** Whether any credit is not settled yet (a final close would change the cumulative totals). */
  get hasUnsettledCredit(): boolean {
    return this.open.size > 0 || this.held.some((m) => m.size > 0);
  }

  /** Cumulative units of `account`, held and open credits included. */
  units(account: string): bigint {
    const a = normalizeAccount(account);
    return [this.settled, ...this.held, this.open].reduce((sum, m) => sum + (m.get(a) ?? 0n), 0n);
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

  /** A purged peer's account: every credit not settled (held or open) is dropped. Returns how many. */
  forfeit(account: string): bigint {
    const a = normalizeAccount(account);
    let lost = 0n;
    for (const m of [...this.held, this.open]) {
      lost += m.get(a) ?? 0n;
      m.delete(a);
    }
    return lost;
  }

  /** Close the open epoch: the epoch held longest settles. `final` (the run's end) settles everything. */
  closeEpoch({ final = false } = {}): EpochSnapshot {
    this.held.push(new Map(this.open));
    this.open.clear();
    while (this.held.length > (final ? 0 : this.heldEpochs)) {
      for (const [a, u] of this.held.shift()!) this.settled.set(a, (this.settled.get(a) ?? 0n) + u);
    }
    const cumulative = [...this.settled].map(([account, units]) => ({ account, units })).sort((x, y) => compareAccounts(x.account, y.account));
    const total = cumulative.reduce((s, e) => s + e.units, 0n);
    return { epoch: this.nextEpoch++, cumulative, total };
  }

  toJSON(): LedgerJson {
    return { version: 1, epoch: this.nextEpoch, settled: toRecord(this.settled), held: this.held.map(toRecord), open: toRecord(this.open) };
  }

  /** Accepts the parsed JSON value; throws one readable error naming every problem found. */
  static fromJSON(json: unknown, heldEpochs = 0): ContributionLedger {
    const r = LedgerJsonSchema.safeParse(json);
    if (!r.success) throw new Error(`corrupt ledger: ${formatIssues('ledger', r.error)}`);
    const ledger = new ContributionLedger(heldEpochs);
    ledger.nextEpoch = r.data.epoch;
    fromRecord(r.data.settled, ledger.settled, 'settled');
    ledger.held = (r.data.held ?? []).map((rec, i) => fromRecord(rec, new Map(), `held[${i}]`));
    fromRecord(r.data.open, ledger.open, 'open');
    return ledger;
  }
}

function toRecord(m: Map<Address, bigint>): Record<string, string> {
  const keys = [...m.keys()].sort(compareAccounts);
  return Object.fromEntries(keys.map((k) => [k, m.get(k)!.toString()]));
}

function fromRecord(rec: Record<string, string>, into: Map<Address, bigint>, field: string): Map<Address, bigint> {
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
  return into;
}
