// What a contributor does, for every front end (the worker, the `wallet` command, the dashboard):
// join a run to be paid, read its holdings, check its saved proofs against the roots on chain without
// trusting the coordinator, and claim ownership (or a share of an abandoned run's stake) from them.
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import type { Address, Hex } from 'viem';
import { LEAF_ENCODING } from '../ledger/merkle.js';
import { type ChainCoordinates, type ProofFile, type SavedEpoch, savedEpoch } from '../ledger/proof-file.js';
import { type SwarmChain, ownershipId } from './client.js';

/** A peer paid at `chain`'s account (the peer session's PeerWallet): it joins the run on chain once, when the coordinator names it. */
export function payoutWallet(chain: SwarmChain) {
  const account = chain.account!;
  return {
    account,
    signMessage: (message: string) => chain.signMessage(message),
    async joinRun(c: ChainCoordinates) {
      const runId = BigInt(c.runId);
      if (!(await chain.joined(runId, account))) await chain.join(runId);
    },
  };
}

export interface Holdings {
  ownership: bigint;
  totalOwnership: bigint;
  /** Percent of the run's ownership. */
  share: number;
  credentials: bigint;
  /** Re-issued credentials waiting to be pulled. */
  pending: bigint;
  /** The same with the fraction that does not make a whole credential yet, in 1e18ths. */
  accrued: bigint;
  proceeds: bigint;
  stake: bigint;
  /** Cumulative units already claimed as ownership. */
  claimed: bigint;
}

export async function holdings(chain: SwarmChain, runId: bigint, me: Address): Promise<Holdings> {
  const [ownership, totalOwnership, credentials, pending, accrued, proceeds, stake, claimed] = await Promise.all([
    chain.ownershipOf(runId, me),
    chain.supply(ownershipId(runId)),
    chain.credentialsOf(runId, me),
    chain.pendingCredentials(runId, me),
    chain.accruedCredentials(runId, me),
    chain.proceeds(me),
    chain.withdrawable(me),
    chain.claimed(runId, me),
  ]);
  const share = totalOwnership > 0n ? Number((ownership * 1_000_000n) / totalOwnership) / 10_000 : 0;
  return { ownership, totalOwnership, share, credentials, pending, accrued, proceeds, stake, claimed };
}

/** Ownership from the final root (cumulative units: it pays everything earlier roots did). */
export async function claimOwnership(chain: SwarmChain, runId: bigint, p: ProofFile): Promise<SavedEpoch> {
  const run = await chain.run(runId);
  if (run.state !== 'trained') throw new Error(`run ${runId} is ${run.state}: ownership is claimable once it is trained`);
  const e = savedEpoch(p, run.settledEpoch);
  if (!e) throw new Error(`none of the saved proofs is for run ${runId}'s final epoch ${run.settledEpoch}, the only one ownership is claimed from`);
  await chain.claim(runId, BigInt(e.epoch), e.account as Address, BigInt(e.cumulative), e.proof as Hex[]);
  return e;
}

/**
 * A share of an abandoned run's stake, from the root the contract pays it from — once every root
 * posted before the run was abandoned is past its window; before that, or when the stake went back
 * to the designer, it says so and sends nothing.
 */
export async function claimStakeShare(chain: SwarmChain, runId: bigint, p: ProofFile): Promise<SavedEpoch> {
  const run = await chain.run(runId);
  if (run.state !== 'abandoned') throw new Error(`run ${runId} is ${run.state}: the stake is shared out only when a run is abandoned`);
  const outcome = await chain.stakeOutcome(runId);
  if (outcome.to === 'undecided') {
    const when = outcome.decidedAt === undefined ? '' : ` (at ${new Date(Number(outcome.decidedAt) * 1000).toISOString()})`;
    throw new Error(`run ${runId}'s stake is decided when epoch ${outcome.epoch}'s challenge window ends${when}: try again then`);
  }
  if (outcome.to === 'designer') throw new Error(`no root of run ${runId} survived its challenge window: the stake went back to the designer`);
  const e = savedEpoch(p, outcome.epoch);
  if (!e) throw new Error(`none of the saved proofs is for epoch ${outcome.epoch}, the root run ${runId}'s stake is paid from`);
  await chain.claimStakeShare(runId, e.account as Address, BigInt(e.cumulative), e.proof as Hex[]);
  return e;
}

export interface EpochCheck {
  epoch: number;
  /** Units earned in this epoch (cumulative minus the previous saved epoch's). */
  units: bigint;
  cumulative: bigint;
  ok: boolean;
  /** What was checked, or what did not match. */
  detail: string;
}

/**
 * Recompute each saved epoch's leaf from (account, cumulative units), walk its proof, and compare
 * with the root posted on chain: what the contributor holds rests on the chain, not on the coordinator.
 */
export async function verifyProofs(chain: SwarmChain, runId: bigint, p: ProofFile): Promise<EpochCheck[]> {
  const epochs = [...p.epochs].sort((a, b) => a.epoch - b.epoch);
  let previous = 0n;
  const checks: EpochCheck[] = [];
  for (const e of epochs) {
    const cumulative = BigInt(e.cumulative);
    const onChain = await chain.epoch(runId, BigInt(e.epoch));
    const matches = StandardMerkleTree.verify(onChain.root, [...LEAF_ENCODING], [e.account, e.cumulative], e.proof);
    const ok = matches && !onChain.vetoed;
    const detail = !matches
      ? `the proof does not lead to the root on chain (${onChain.root.slice(0, 10)}…)`
      : onChain.vetoed
        ? 'the root on chain was vetoed'
        : `proof matches root ${onChain.root.slice(0, 10)}… on chain`;
    checks.push({ epoch: e.epoch, units: cumulative - previous, cumulative, ok, detail });
    previous = cumulative;
  }
  return checks;
}
