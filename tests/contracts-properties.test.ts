// Properties of ownership and credentials on a real EVM, over random holders, ownership transfers,
// credential transfers, spends and claims, checked against an exact model kept in the test.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { credentialId, ownershipId } from '../shared/chain/client.js';
import { modelTokensAbi } from '../shared/chain/generated/ModelTokens.js';
import { type ChainFixture, type Name, chainFixture, settleAndFinish, trainingRun, treeOf } from './chain-fixture.js';

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
