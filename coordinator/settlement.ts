// Epoch settlement (ARCHITECTURE §7): turns the swarm's verified work into cumulative
// risk-adjusted units per account, posts one Merkle root per epoch, ends training on chain once
// the last root is past its challenge window, and delivers ownership to every contributor.
// The ledger and every epoch's tree are kept in the run's store (run-store.ts) in the same
// transaction as the commit that changed them, and an epoch is recorded as posted with the index
// the chain gave it: a restarted coordinator picks the ledger up where it was, posts the roots it
// had closed but not posted, and never posts one twice.
import type { Address } from 'viem';
import { ChainRevert, type SwarmChain } from '../shared/chain/client.js';
import { ContributionLedger, type EpochSnapshot, type EpochTree, type RiskWeighting, epochTree, loadEpochTree, stepUnits, stepWorkFlops } from '../shared/ledger/index.js';
import { runStageConfigs } from '../shared/run/derive.js';
import type { CommitEvent } from './run-control.js';
import type { RunStore } from './run-store.js';
import type { Coordinator } from './server.js';
import type { RunConfig } from '../shared/run/config.js';

/**
 * Closes an epoch's credits are held, forfeitable, before they settle into a root: a cheat caught
 * within two epochs of its work (audits, disputes and the weights check at averaging all settle
 * well within that) loses all of it.
 */
export const HELD_EPOCHS = 2;

export interface SettlementOptions {
  run: RunConfig;
  /** Signed by the coordinator role. */
  chain: SwarmChain;
  runId: bigint;
  risk: RiskWeighting;
  /** Training steps per epoch (a root is posted at each boundary and at the end). */
  epochSteps: number;
  /** Closes an epoch's credits wait, forfeitable, before they settle into a root. Default HELD_EPOCHS. */
  heldEpochs?: number;
  /** Where the ledger and the epoch trees are kept (the coordinator's store: they change with its commits). */
  store: RunStore;
  log?: (line: string) => void;
}

export interface PostedEpoch {
  epoch: number;
  root: `0x${string}`;
  total: bigint;
  step: number;
}

export interface SettlementReport {
  epochs: PostedEpoch[];
  units: Array<{ account: Address; units: bigint; ownership: bigint }>;
  /** Contributors whose ownership could not be claimed for them (e.g. they never joined the run on chain). */
  unclaimed: Array<{ account: Address; units: bigint; reason: string }>;
  designerUnits: bigint;
  ownershipTotal: bigint;
}

export class Settlement {
  readonly ledger: ContributionLedger;
  readonly posted: PostedEpoch[] = [];
  private readonly stageFlops: number[];
  private readonly accounts = new Map<string, Address>();
  private readonly closed: Array<{ snap: EpochSnapshot; tree: EpochTree; step: number }> = [];
  private readonly unpaid = new Set<string>();
  private posting: Promise<void> = Promise.resolve();
  private postError?: Error;
  private readonly log: (line: string) => void;
  private coordinator?: Coordinator;
  private completed = 0;
  private started = false;

  constructor(private readonly o: SettlementOptions) {
    if (!Number.isInteger(o.epochSteps) || o.epochSteps < 1) throw new Error(`epochSteps must be a positive integer, got ${o.epochSteps}`);
    this.stageFlops = runStageConfigs(o.run).map((c) => stepWorkFlops(c, 1));
    this.log = o.log ?? (() => {});
    const saved = o.store.ledger();
    const held = o.heldEpochs ?? HELD_EPOCHS;
    this.ledger = saved ? ContributionLedger.fromJSON(saved, held) : new ContributionLedger(held);
    for (const e of o.store.epochs()) {
      const tree = loadEpochTree(e.tree);
      if (tree.root !== e.root) throw new Error(`${o.store.path}: epoch ${e.epoch}'s tree does not match its root`);
      const cumulative = e.tree.values.map(({ value: [account, units] }) => ({ account: account as Address, units: BigInt(units) }));
      this.closed.push({ snap: { epoch: e.epoch, cumulative, total: e.total }, tree, step: e.step });
      this.completed = e.step;
      if (e.posted !== undefined) this.posted.push({ epoch: e.posted, root: e.root, total: e.total, step: e.step });
      else this.post(e.epoch);
    }
    if (saved) this.log(`settlement: resumed the ledger at epoch ${this.ledger.epoch} (${this.posted.length} root(s) posted)`);
  }

  /** Follow a coordinator: accounts at registration, credit at every committed step. */
  attach(c: Coordinator): void {
    this.coordinator = c;
    this.completed = Math.max(this.completed, c.control.step);
    c.on('register', (r) => r.account && this.accounts.set(r.peerId, r.account));
    // Roots can only be posted once the run is training on chain.
    c.on('phase', ({ phase }) => phase === 'training' && this.startOnChain());
    c.on('commit', (e) => this.credit(e));
    // A cheat's work not yet settled earns nothing (what was posted is on chain: the root stands).
    c.on('purged', ({ account, reason }) => {
      if (!account) return;
      const lost = this.ledger.forfeit(account);
      this.o.store.saveLedger(this.ledger.toJSON());
      this.log(`settlement: ${account} forfeits ${lost} unsettled units (purged: ${reason})`);
    });
  }

  private startOnChain(): void {
    if (this.started) return;
    this.started = true;
    this.posting = this.posting
      .then(async () => {
        if ((await this.o.chain.run(this.o.runId)).state === 'open') await this.o.chain.startTraining(this.o.runId);
      })
      .catch((e: Error) => {
        this.postError ??= e;
        this.log(`could not start training on chain: ${e.message}`);
      });
  }

  /**
   * A committed step: every peer that computed part of it earns its stage's spec FLOPs for each
   * microbatch it computed (the coordinator's routes say which; a peer's own word counts for nothing).
   */
  credit(e: CommitEvent): void {
    const work = e.work.flatMap((w) => {
      if (w.account) return [{ account: w.account, stage: w.stage, microbatches: w.microbatches }];
      if (!this.unpaid.has(w.peerId)) this.log(`settlement: ${w.peerId} gave no account; its work is not credited`);
      this.unpaid.add(w.peerId);
      return [];
    });
    for (const [account, units] of stepUnits(work, this.stageFlops, e.step, this.o.run.steps, this.o.risk)) this.ledger.credit(account, units);
    this.completed = Math.max(this.completed, e.step);
    if (e.step >= (this.ledger.epoch + 1) * this.o.epochSteps && e.step < this.o.run.steps) this.closeEpoch(e.step);
    this.o.store.saveLedger(this.ledger.toJSON());
  }

  /** Units credited to `account` so far, settled or not (what a run stopped early shows it earned). */
  units(account: string): bigint {
    return this.ledger.units(account);
  }

  /** Close the ledger's epoch and post its root, unless nothing has settled yet. */
  private closeEpoch(step: number, final = false): void {
    const closed = this.ledger.closeEpoch({ final });
    if (closed.cumulative.length === 0) return;
    // Roots are numbered as the chain numbers them; the first closes, all held, post none.
    const snap = { ...closed, epoch: this.closed.length };
    const tree = epochTree(snap);
    this.closed.push({ snap, tree, step });
    this.o.store.addEpoch({ epoch: snap.epoch, step, root: tree.root, total: tree.total, tree: tree.dump() });
    this.post(snap.epoch);
  }

  /**
   * Post closed epoch `epoch`'s root, once. The chain numbers every root it was sent (vetoed ones
   * too), and claims name that index. A coordinator killed after sending a root but before
   * recording it finds the root on chain when it restarts, and records it instead of posting again.
   */
  private post(epoch: number): void {
    const { snap, tree, step } = this.closed.find((c) => c.snap.epoch === epoch)!;
    this.posting = this.posting.then(async () => {
      try {
        const onChain = Number((await this.o.chain.run(this.o.runId)).epochs);
        const last = onChain > this.posted.length ? await this.o.chain.epoch(this.o.runId, BigInt(onChain - 1)) : undefined;
        const index = last?.root === tree.root ? onChain - 1 : Number((await this.o.chain.postEpoch(this.o.runId, tree.root, tree.total)).result);
        this.o.store.markPosted(snap.epoch, index);
        this.posted.push({ epoch: index, root: tree.root, total: tree.total, step });
        this.deliverProofs(index, tree);
        this.log(
          `epoch ${index} ${last ? 'found on chain (posted before a restart)' : 'posted'} at step ${step}: ${tree.total} units over ${snap.cumulative.length} accounts, root ${tree.root.slice(0, 10)}…`,
        );
      } catch (e) {
        this.postError ??= e as Error;
        this.log(`epoch ${snap.epoch} could not be posted: ${(e as Error).message}`);
      }
    });
  }

  /** Each contributor keeps its own proof, so what it earned survives the coordinator. */
  private deliverProofs(epoch: number, tree: EpochTree): void {
    for (const [peerId, account] of this.accounts) {
      const units = tree.units(account);
      if (units === undefined) continue;
      this.coordinator?.sendToPeer(peerId, {
        type: 'settled',
        epoch,
        root: tree.root,
        total: tree.total.toString(),
        account,
        cumulative: units.toString(),
        proof: tree.proof(account),
      });
    }
  }

  /**
   * After the last step: post the final root, wait out its challenge window, end training on chain
   * and claim every contributor's ownership (minted to their own accounts) and the designer share.
   */
  /** `selfClaim`: accounts that claim their ownership themselves (a dashboard's user), left to them. */
  async finish(opts: { pollMs?: number; timeoutMs?: number; selfClaim?: readonly Address[] } = {}): Promise<SettlementReport> {
    // After a restart the final epoch may already be closed (and posted).
    if (this.ledger.hasUnsettledCredit || this.closed.length === 0) {
      this.o.store.atomically(() => {
        this.closeEpoch(this.completed, true);
        this.o.store.saveLedger(this.ledger.toJSON());
      });
    }
    await this.posting;
    if (this.postError) throw new Error(`settlement: a root could not be posted (${this.postError.message}); the ledger is in ${this.o.store.path}`);
    const last = this.posted.at(-1);
    if (!last) throw new Error('settlement: no verified work to settle');
    const chain = this.o.chain;
    const runId = this.o.runId;
    const epochIndex = (await chain.run(runId)).epochs - 1n;
    const deadline = Date.now() + (opts.timeoutMs ?? 10 * 60_000);
    while (!(await chain.settled(runId, epochIndex))) {
      if (Date.now() > deadline) throw new Error(`settlement: epoch ${epochIndex} did not settle in time (vetoed, or the challenge window is longer than the wait)`);
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 1000));
    }
    // A coordinator restarted after this went through finds the run trained already.
    if ((await chain.run(runId)).state === 'training') await chain.finishTraining(runId);
    const { snap, tree } = this.closed.at(-1)!;
    const units: SettlementReport['units'] = [];
    const unclaimed: SettlementReport['unclaimed'] = [];
    const self = new Set((opts.selfClaim ?? []).map((a) => a.toLowerCase()));
    for (const { account, units: u } of snap.cumulative) {
      if (self.has(account.toLowerCase())) {
        unclaimed.push({ account, units: u, reason: 'left for its owner to claim' });
        continue;
      }
      try {
        await retryUnlessReverted(async () => {
          if ((await chain.claimed(runId, account)) < u) await chain.claim(runId, epochIndex, account, u, tree.proof(account));
        });
        units.push({ account, units: u, ownership: await chain.ownershipOf(runId, account) });
      } catch (e) {
        // One contributor's failure (it never joined on chain) must not withhold everyone else's.
        unclaimed.push({ account, units: u, reason: (e as Error).message });
        this.log(`could not claim for ${account}: ${(e as Error).message}`);
      }
    }
    const run = await chain.run(runId);
    if (!run.designerPaid) await chain.claimDesignerShare(runId).catch((e: Error) => this.log(`designer share: ${e.message}`));
    const pool = await chain.pool(runId);
    this.log(`trained on chain: ${units.length} contributors own ${last.total} units, the designer ${pool.ownershipTotal - last.total}`);
    return { epochs: this.posted, units, unclaimed, designerUnits: pool.ownershipTotal - last.total, ownershipTotal: pool.ownershipTotal };
  }
}

/** A busy RPC is worth two more tries; a revert is the chain's answer and is not. */
async function retryUnlessReverted<T>(send: () => Promise<T>, tries = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await send();
    } catch (e) {
      if (e instanceof ChainRevert || i >= tries) throw e;
      await new Promise((r) => setTimeout(r, 1000 * i));
    }
  }
}
