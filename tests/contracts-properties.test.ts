// Properties of ownership and credentials on a real EVM, over random holders, ownership transfers,
// credential transfers, spends and claims, checked against an exact model kept in the test; and of
// the registry's ETH over random run lifecycles (roots, vetoes, time, abandonment, stake claims,
// refunds, withdrawals): what it holds always covers what it owes.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ChainRevert, credentialId, ownershipId } from '../shared/chain/client.js';
import { modelTokensAbi } from '../shared/chain/generated/ModelTokens.js';
import type { EpochTree } from '../shared/ledger/merkle.js';
import { type ChainFixture, type Name, WINDOW, chainFixture, settleAndFinish, trainingRun, treeOf } from './chain-fixture.js';

let f: ChainFixture;
beforeAll(async () => {
  f = await chainFixture();
  await f.saveState();
});
afterAll(async () => f?.stop());

const HOLDERS = ['alice', 'bob', 'carol', 'dave', 'designer'] as const satisfies readonly Name[];
type Holder = (typeof HOLDERS)[number];
const holder = fc.constantFrom(...HOLDERS);

type Op =
  | { kind: 'moveOwnership'; from: Holder; to: Holder; percent: number }
  | { kind: 'moveCredentials'; from: Holder; to: Holder; percent: number }
  | { kind: 'spend'; who: Holder; percent: number }
  | { kind: 'claim'; who: Holder };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('moveOwnership' as const), from: holder, to: holder, percent: fc.integer({ min: 1, max: 100 }) }),
  fc.record({ kind: fc.constant('moveCredentials' as const), from: holder, to: holder, percent: fc.integer({ min: 1, max: 100 }) }),
  fc.record({ kind: fc.constant('spend' as const), who: holder, percent: fc.integer({ min: 1, max: 100 }) }),
  fc.record({ kind: fc.constant('claim' as const), who: holder }),
);

it('supply is invariant, re-issue never exceeds what was consumed, and nobody loses a unit they did not spend', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.bigInt({ min: 1n, max: 10_000n }), { minLength: 4, maxLength: 4 }),
      fc.integer({ min: 0, max: 2000 }),
      fc.bigInt({ min: 1n, max: 500n }),
      fc.array(op, { minLength: 4, maxLength: 14 }),
      async (units, designerBps, supply, ops) => {
        await f.restoreState();
        const contributors = HOLDERS.slice(0, 4);
        const runId = await trainingRun(f, [...contributors], { computeTarget: 1n, designerBps, credentialSupply: supply });
        const tree = treeOf(f, 0, Object.fromEntries(contributors.map((h, i) => [h, units[i]])));
        await settleAndFinish(f, runId, tree);
        for (const h of contributors) await f.as(h).claim(runId, 0n, f.address(h), tree.units(f.address(h))!, tree.proof(f.address(h)));
        const designerUnits = (tree.total * BigInt(designerBps)) / (10_000n - BigInt(designerBps));
        if (designerUnits > 0n) await f.as('designer').claimDesignerShare(runId);
        const total = tree.total + designerUnits;

        // The model: ownership held now, credentials held, and each holder's exact entitlement to
        // re-issued credentials as a numerator over `total` (Σ units held × credentials re-issued).
        const own = new Map<Holder, bigint>(HOLDERS.map((h, i) => [h, i < 4 ? units[i] : designerUnits]));
        const creds = new Map<Holder, bigint>(HOLDERS.map((h) => [h, 0n]));
        const entitled = new Map<Holder, bigint>(HOLDERS.map((h) => [h, own.get(h)! * supply]));
        const pulled = new Map<Holder, bigint>(HOLDERS.map((h) => [h, 0n]));
        let reissued = supply;

        const transfer = async (from: Holder, to: Holder, id: bigint, amount: bigint) => {
          const hash = await f
            .wallet(from)
            .writeContract({ address: f.addresses.tokens, abi: modelTokensAbi, functionName: 'safeTransferFrom', args: [f.address(from), f.address(to), id, amount, '0x'] });
          expect((await f.publicClient.waitForTransactionReceipt({ hash })).status).toBe('success');
        };
        const claim = async (h: Holder) => {
          const pending = await f.as(h).pendingCredentials(runId, f.address(h));
          if (pending === 0n) return;
          const { result } = await f.as(h).claimCredentials(runId);
          expect(result).toBe(pending);
          creds.set(h, creds.get(h)! + result);
          pulled.set(h, pulled.get(h)! + result);
        };

        for (const h of HOLDERS) await claim(h);
        for (const o of ops) {
          if (o.kind === 'claim') await claim(o.who);
          else if (o.kind === 'spend') {
            const amount = (creds.get(o.who)! * BigInt(o.percent)) / 100n;
            if (amount === 0n) continue;
            await f.as(o.who).spendCredentials(runId, amount, `prompt ${reissued}`);
            creds.set(o.who, creds.get(o.who)! - amount);
            reissued += amount;
            for (const h of HOLDERS) entitled.set(h, entitled.get(h)! + own.get(h)! * amount);
          } else {
            const book = o.kind === 'moveOwnership' ? own : creds;
            const amount = (book.get(o.from)! * BigInt(o.percent)) / 100n;
            if (amount === 0n) continue;
            await transfer(o.from, o.to, o.kind === 'moveOwnership' ? ownershipId(runId) : credentialId(runId), amount);
            book.set(o.from, book.get(o.from)! - amount);
            book.set(o.to, book.get(o.to)! + amount);
          }
        }

        const c = f.as('alice');
        const tokensHeld = await c.credentialsOf(runId, f.addresses.tokens);
        let sumCreds = tokensHeld;
        let sumOwn = 0n;
        for (const h of HOLDERS) {
          const bal = await c.credentialsOf(runId, f.address(h));
          // No holder gains or loses a credential the model does not explain.
          expect(bal, `${h} credentials`).toBe(creds.get(h));
          const held = await c.ownershipOf(runId, f.address(h));
          expect(held, `${h} ownership`).toBe(own.get(h));
          sumCreds += bal;
          sumOwn += held;
          // Pulled + still pending is the exact pro-rata share, rounded down, never more.
          const got = pulled.get(h)! + (await c.pendingCredentials(runId, f.address(h)));
          const exact = entitled.get(h)! / total;
          expect(got <= exact, `${h} got ${got} > exact ${exact}`).toBe(true);
          expect(got >= exact - 1n, `${h} got ${got} < exact ${exact} − 1`).toBe(true);
        }
        expect(sumCreds).toBe(supply);
        expect(await c.supply(credentialId(runId))).toBe(supply);
        expect(sumOwn).toBe(total);
        expect(await c.supply(ownershipId(runId))).toBe(total);
        const pool = await c.pool(runId);
        expect(pool.reissued).toBe(reissued);
        expect(pool.paidOut <= pool.reissued).toBe(true);
        // What the contract holds is exactly what was re-issued and not yet pulled.
        expect(tokensHeld).toBe(pool.reissued - pool.paidOut);
      },
    ),
    { numRuns: 30 },
  );
});

const RUN_DESIGNERS = ['designer', 'dave'] as const satisfies readonly Name[];
const WORKERS = ['alice', 'bob', 'mallory'] as const satisfies readonly Name[];
type Worker = (typeof WORKERS)[number];
const PAYEES = [...RUN_DESIGNERS, ...WORKERS] as const;
const run = fc.constantFrom(0, 1);

type StakeOp =
  | { kind: 'post'; run: number; units: bigint[] } // added to each worker's units in the run's last root
  | { kind: 'veto'; run: number }
  | { kind: 'advance'; seconds: number }
  | { kind: 'abandon'; run: number; by: 'designer' | 'coordinator' }
  | { kind: 'finish'; run: number }
  | { kind: 'claimStake'; run: number; who: Worker; back: number }
  | { kind: 'refund'; run: number }
  | { kind: 'withdraw'; who: (typeof PAYEES)[number] };

const post = fc.record({ kind: fc.constant('post' as const), run, units: fc.array(fc.bigInt({ min: 0n, max: 1000n }), { minLength: 3, maxLength: 3 }) });
const veto = fc.record({ kind: fc.constant('veto' as const), run });
const advance = fc.record({ kind: fc.constant('advance' as const), seconds: fc.constantFrom(1, WINDOW / 2, WINDOW) });
const windowPasses = fc.constant({ kind: 'advance' as const, seconds: WINDOW });
const abandon = fc.record({ kind: fc.constant('abandon' as const), run, by: fc.constantFrom('designer' as const, 'coordinator' as const) });
const finish = fc.record({ kind: fc.constant('finish' as const), run });
const claimStake = fc.record({ kind: fc.constant('claimStake' as const), run, who: fc.constantFrom(...WORKERS), back: fc.constantFrom(0, 0, 0, 1, 2) });
const refund = fc.record({ kind: fc.constant('refund' as const), run });
const withdraw = fc.record({ kind: fc.constant('withdraw' as const), who: fc.constantFrom(...PAYEES) });
// Training (roots, vetoes, time), then runs end (abandoned or trained), then the money moves;
// any op may still come at any time in the last part.
const stakeOps: fc.Arbitrary<StakeOp[]> = fc
  .tuple(
    fc.array(fc.oneof({ weight: 4, arbitrary: post }, veto, { weight: 2, arbitrary: advance }), { minLength: 3, maxLength: 10 }),
    fc.array(fc.oneof({ weight: 3, arbitrary: abandon }, finish), { minLength: 1, maxLength: 3 }),
    fc.option(windowPasses, { freq: 3 }),
    fc.array(fc.oneof({ weight: 8, arbitrary: claimStake }, advance, windowPasses, { weight: 2, arbitrary: withdraw }, refund, veto, post, abandon, finish), {
      minLength: 4,
      maxLength: 14,
    }),
  )
  .map(([training, ending, wait, after]) => [...training, ...ending, ...(wait ? [wait] : []), ...after]);

it('the registry always holds what it owes: every withdrawable balance plus every stake not yet credited', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(fc.bigInt({ min: 1n, max: 10n ** 18n }), { minLength: 2, maxLength: 2 }), stakeOps, async (stakes, ops) => {
      await f.restoreState();
      const c = f.as('alice');
      const runIds: bigint[] = [];
      for (const [i, d] of RUN_DESIGNERS.entries()) {
        const { result } = await f
          .as(d)
          .openRun({ stake: stakes[i], computeTarget: 500n, designerBps: 1000, credentialSupply: 100n, challengeWindow: BigInt(WINDOW), modelHash: `0x${'ee'.repeat(32)}` });
        for (const w of WORKERS) await f.as(w).join(result);
        await f.as('coordinator').startTraining(result);
        runIds.push(result);
      }
      const trees: EpochTree[][] = [[], []];

      /** What the registry owes: Σ withdrawable, plus each open, training or abandoned run's stake not yet credited to anyone. */
      const owed = async () => {
        let sum = 0n;
        for (const a of PAYEES) sum += await c.withdrawable(f.address(a));
        for (const id of runIds) {
          const r = await c.run(id);
          expect(r.stakePaid <= r.stake, `run ${id} credited ${r.stakePaid} of a ${r.stake} stake`).toBe(true);
          if (r.state !== 'trained') sum += r.stake - r.stakePaid;
        }
        return sum;
      };
      const check = async (after: string) => {
        const held = await f.publicClient.getBalance({ address: f.addresses.registry });
        expect(held, `after ${after}`).toBe(await owed());
      };
      /** Send; a refusal is the contract's answer to an op that does not apply in this state. */
      const attempt = async (p: Promise<unknown>) => {
        try {
          await p;
          return true;
        } catch (e) {
          if (e instanceof ChainRevert) return false;
          throw e;
        }
      };

      await check('setup');
      for (const o of ops) {
        if (o.kind === 'post') {
          // Cumulative units: each root adds the op's units to the previous one's.
          const last = trees[o.run].at(-1);
          const t = treeOf(f, trees[o.run].length, Object.fromEntries(WORKERS.map((w, i) => [w, (last?.units(f.address(w)) ?? 0n) + o.units[i]])));
          if (t.total > 0n && (await attempt(f.as('coordinator').postEpoch(runIds[o.run], t.root, t.total)))) trees[o.run].push(t);
        } else if (o.kind === 'veto') {
          if (trees[o.run].length) await attempt(f.as('veto').veto(runIds[o.run], BigInt(trees[o.run].length - 1)));
        } else if (o.kind === 'advance') {
          await f.advance(o.seconds);
        } else if (o.kind === 'abandon') {
          await attempt(f.as(o.by === 'designer' ? RUN_DESIGNERS[o.run] : 'coordinator').abandon(runIds[o.run]));
        } else if (o.kind === 'finish') {
          await attempt(f.as('coordinator').finishTraining(runIds[o.run]));
        } else if (o.kind === 'claimStake') {
          const t = trees[o.run][trees[o.run].length - 1 - o.back];
          const a = f.address(o.who);
          if (t) await attempt(f.as('carol').claimStakeShare(runIds[o.run], a, t.units(a)!, t.proof(a)));
        } else if (o.kind === 'refund') {
          await attempt(f.as('carol').refundStake(runIds[o.run]));
        } else {
          // Whoever is owed something can always take it.
          const due = await c.withdrawable(f.address(o.who));
          if (due > 0n) await f.as(o.who).withdraw();
        }
        await check(JSON.stringify(o, (_, v) => (typeof v === 'bigint' ? v.toString() : v)));
      }

      // Each abandoned run's stake went one way only: back to its designer, or to contributors.
      const events = (await c.events()) as unknown as Array<{ eventName?: string; args: { runId?: bigint; amount?: bigint } }>;
      for (const id of runIds) {
        const of = (name: string) => events.filter((e) => e.eventName === name && e.args.runId === id);
        if (of('StakeRefunded').length) expect(of('StakeShareClaimed').filter((e) => e.args.amount! > 0n)).toEqual([]);
        expect(of('StakeRefunded').length).toBeLessThanOrEqual(1);
      }
      // Everyone withdraws all they are owed; what stays is exactly the stakes not yet credited.
      for (const a of PAYEES) if ((await c.withdrawable(f.address(a))) > 0n) await f.as(a).withdraw();
      await check('everyone withdrew');
    }),
    { numRuns: 20 },
  );
});
