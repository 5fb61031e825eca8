import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import fc from 'fast-check';
import { type Hex, bytesToHex, concat, getAddress, keccak256, numberToHex, pad } from 'viem';
import { describe, expect, it } from 'vitest';
import {
  ContributionLedger,
  type EpochSnapshot,
  FLOPS_PER_UNIT,
  epochTree,
  exponentialRisk,
  runUnitsFloor,
  stepUnits,
  unitsByAccount,
  leafHash,
  linearRisk,
  loadEpochTree,
  parseRisk,
  riskUnits,
  runProgress,
  stepWorkFlops,
} from '../shared/ledger/index.js';
import type { BlockConfig } from '../shared/engine/model.js';

const MAX_UINT256 = 2n ** 256n - 1n;
const A = '0x52908400098527886e0f7030069857d2e4169ee7'; // EIP-55 test vector (all lower-case here)
const A_CHECKSUM = '0x52908400098527886E0F7030069857D2E4169EE7';
const B = '0x8617e340b3d01fa5f11f306f4090fd50e238070d';
const C = '0xde709f2102306220921060314715629080e2fb77';

// ---- Independent references

/** OpenZeppelin's standard leaf, built from the ABI layout by hand: 12 zero bytes + address, then a 32-byte uint. */
function refLeaf(account: string, units: bigint): Hex {
  const encoded = concat([pad(account.toLowerCase() as Hex, { size: 32 }), numberToHex(units, { size: 32 })]);
  return keccak256(keccak256(encoded));
}

/** MerkleProof.processProof: fold the proof in, hashing each pair in sorted order. */
function refVerify(root: Hex, leaf: Hex, proof: Hex[]): boolean {
  let h = leaf.toLowerCase() as Hex;
  for (const p of proof) {
    const s = p.toLowerCase() as Hex;
    h = h < s ? keccak256(concat([h, s])) : keccak256(concat([s, h])); // equal-length hex: string order = numeric
  }
  return h === root.toLowerCase();
}

const addressArb = fc.uint8Array({ minLength: 20, maxLength: 20 }).map((b) => bytesToHex(b));

// ---------------------------------------------------------------------------------------------

describe('risk weighting', () => {
  it('exponential: R at p=0, 1 at p=1, sqrt(R) at p=0.5', () => {
    const w = exponentialRisk(4);
    expect(w.weight(0)).toBe(4);
    expect(w.weight(1)).toBe(1);
    expect(w.weight(0.5)).toBeCloseTo(2, 12);
    fc.assert(
      fc.property(fc.double({ min: 1, max: 1e6, noNaN: true }), (R) => {
        const r = exponentialRisk(R);
        expect(r.weight(0)).toBeCloseTo(R, 6);
        expect(r.weight(1)).toBe(1);
        expect(Math.abs(r.weight(0.5) - Math.sqrt(R)) / Math.sqrt(R)).toBeLessThan(1e-12);
      }),
    );
  });

  it('both weightings are monotone decreasing in progress', () => {
    const p = fc.double({ min: 0, max: 1, noNaN: true });
    fc.assert(
      fc.property(fc.double({ min: 1, max: 100, noNaN: true }), p, p, fc.boolean(), (R, p1, p2, lin) => {
        const w = lin ? linearRisk(R) : exponentialRisk(R);
        const [lo, hi] = p1 <= p2 ? [p1, p2] : [p2, p1];
        expect(w.weight(lo)).toBeGreaterThanOrEqual(w.weight(hi));
        if (R > 1.001 && hi - lo > 1e-6) expect(w.weight(lo)).toBeGreaterThan(w.weight(hi));
      }),
    );
  });

  it('linear: R at p=0, 1 at p=1, the midpoint at p=0.5', () => {
    const w = linearRisk(3);
    expect(w.weight(0)).toBe(3);
    expect(w.weight(1)).toBe(1);
    expect(w.weight(0.5)).toBe(2);
    expect(w.weight(0.75)).toBe(1.5);
    // R=1 is flat for both.
    expect(linearRisk(1).weight(0)).toBe(1);
    expect(exponentialRisk(1).weight(0.3)).toBe(1);
  });

  it('parses specs', () => {
    const e = parseRisk('exp:4');
    expect(e.name).toBe('exp:4');
    expect(e.weight(0)).toBe(4);
    expect(e.weight(0.5)).toBeCloseTo(2, 12);
    const l = parseRisk('linear:2');
    expect(l.name).toBe('linear:2');
    expect(l.weight(0)).toBe(2);
    expect(l.weight(0.5)).toBe(1.5);
    const f = parseRisk('flat');
    expect(f.weight(0)).toBe(1);
    expect(f.weight(1)).toBe(1);
    expect(parseRisk('exp:2.5').weight(0)).toBe(2.5);
    // The name round-trips through the parser.
    expect(parseRisk(parseRisk('linear:2.5').name).weight(0)).toBe(2.5);
    expect(parseRisk(f.name).weight(0)).toBe(1);
  });

  it('rejects bad specs and bad R with a clear error', () => {
    for (const bad of ['', 'exp', 'exp:', 'exp:abc', 'quad:2', 'EXP:4', 'exp: 4', 'exp:0x10', 'exp:Infinity', 'exp:-2', 'flat:1', 'linear:2:3']) {
      expect(() => parseRisk(bad), bad).toThrow(/risk spec|R must be/);
    }
    expect(() => parseRisk('exp:0.5')).toThrow(/R must be a finite number ≥ 1.*0\.5/);
    expect(() => parseRisk('linear:0')).toThrow(/R must be/);
    for (const R of [0.99, 0, -1, NaN, Infinity]) {
      expect(() => exponentialRisk(R)).toThrow(/R must be/);
      expect(() => linearRisk(R)).toThrow(/R must be/);
    }
  });

  it('throws a RangeError naming out-of-range progress instead of clamping', () => {
    for (const w of [exponentialRisk(4), linearRisk(4)]) {
      for (const p of [-0.01, 1.0001, 2, NaN, Infinity, -Infinity]) {
        expect(() => w.weight(p)).toThrow(RangeError);
        expect(() => w.weight(p)).toThrow(String(p));
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('work units', () => {
  // A tiny two-layer block, counted by hand from ARCHITECTURE §7: matmul FLOPs are 2 per
  // multiply-add of every weight with every token (forward), backward is twice forward, so
  // fwd+bwd = 6·params·tokens; plus causal attention; plus the LM head on the last stage.
  const cfg: BlockConfig = { vocab: 11, dModel: 4, nHead: 2, nLayer: 2, seq: 3, batch: 2, hasEmbedding: true, hasHead: true };

  it('stepWorkFlops matches a hand count', () => {
    const d = 4;
    const tokens = 2 * 3;
    // Matmul weights per layer: wqkv d×3d, wo d×d, w1 d×4d, w2 4d×d = 12, 4, 16, 16 → ×d² = 192.
    const layerMatmulParams = d * 3 * d + d * d + d * 4 * d + 4 * d * d;
    expect(layerMatmulParams).toBe(192);
    const matmulFwdBwd = 6 * (2 * layerMatmulParams) * tokens; // 6 · params · tokens, 2 layers
    expect(matmulFwdBwd).toBe(13824);
    // Causal attention per sequence of 3: 1 + 2 + 3 = 6 query·key pairs; QKᵀ and P·V each cost a
    // length-d dot (2d FLOPs) per pair; ×2 sequences ×2 layers forward, ×3 for fwd+bwd.
    const attnFwd = 2 * 2 * (1 + 2 + 3) * 2 * (2 * d);
    expect(attnFwd).toBe(384);
    const attnFwdBwd = 3 * attnFwd;
    // Head: d×vocab matmul over every token.
    const headFwdBwd = 3 * 2 * tokens * d * 11;
    const perMicrobatch = matmulFwdBwd + attnFwdBwd + headFwdBwd;
    expect(perMicrobatch).toBe(13824 + 1152 + 1584);
    expect(stepWorkFlops(cfg, 5)).toBe(5 * 16560);
    expect(stepWorkFlops(cfg, 1)).toBe(16560);
    // A middle stage has no head.
    expect(stepWorkFlops({ ...cfg, hasHead: false, hasEmbedding: false }, 5)).toBe(5 * (13824 + 1152));
  });

  it('stepWorkFlops validates its inputs', () => {
    for (const m of [0, -1, 1.5, NaN, Infinity]) expect(() => stepWorkFlops(cfg, m)).toThrow(/microbatches must be a positive integer/);
    expect(() => stepWorkFlops({ ...cfg, dModel: 5 }, 1)).toThrow(/not divisible/);
    expect(() => stepWorkFlops({ ...cfg, batch: 0 }, 1)).toThrow(/batch/);
  });

  it('riskUnits floors flops·w/1e6', () => {
    expect(FLOPS_PER_UNIT).toBe(1_000_000);
    const flat = parseRisk('flat');
    expect(riskUnits(2_500_000, 0.3, flat)).toBe(2n);
    expect(riskUnits(999_999, 0, flat)).toBe(0n);
    expect(riskUnits(0, 0, flat)).toBe(0n);
    const e4 = exponentialRisk(4);
    expect(riskUnits(1_000_000, 0, e4)).toBe(4n);
    expect(riskUnits(999_999, 0, e4)).toBe(3n); // 3.999996
    expect(riskUnits(1_000_000, 1, e4)).toBe(1n);
    expect(riskUnits(1_500_000, 0.5, e4)).toBe(3n);
    expect(riskUnits(1_000_000, 0.5, linearRisk(3))).toBe(2n);
    expect(riskUnits(1_250_000, 0.5, linearRisk(3))).toBe(2n); // 2.5
    expect(riskUnits(1e15, 0, e4)).toBe(4_000_000_000n);
    // With a flat weighting it is exact integer division.
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.double({ min: 0, max: 1, noNaN: true }), (f, p) => {
        expect(riskUnits(f, p, flat)).toBe(BigInt(f) / 1_000_000n);
      }),
    );
  });

  it('riskUnits rejects bad flops and bad progress', () => {
    const e4 = exponentialRisk(4);
    for (const f of [-1, NaN, Infinity, -Infinity]) expect(() => riskUnits(f, 0, e4)).toThrow(/flops must be/);
    expect(() => riskUnits(1e6, 1.5, e4)).toThrow(RangeError);
  });

  it('runProgress puts the first step at 0 and never reaches 1', () => {
    expect(runProgress(1, 10)).toBe(0);
    expect(runProgress(2, 10)).toBe(0.1);
    expect(runProgress(10, 10)).toBe(0.9);
    expect(runProgress(1, 1)).toBe(0);
    for (const [s, t] of [
      [0, 10],
      [11, 10],
      [1.5, 10],
      [NaN, 10],
      [1, 0],
      [1, 2.5],
      [1, -3],
    ]) {
      expect(() => runProgress(s, t), `${s}/${t}`).toThrow(RangeError);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('contribution ledger', () => {
  it('keeps cumulative units per account across epochs (property)', () => {
    const credit = fc.record({ who: fc.nat({ max: 5 }), units: fc.bigInt({ min: 0n, max: 10n ** 30n }), checksummed: fc.boolean() });
    const epoch = fc.record({ credits: fc.array(credit, { maxLength: 8 }), restore: fc.boolean() });
    fc.assert(
      fc.property(fc.uniqueArray(addressArb, { minLength: 6, maxLength: 6 }), fc.array(epoch, { maxLength: 6 }), (pool, epochs) => {
        let ledger = new ContributionLedger();
        const running = new Map<string, bigint>(); // lower-case address → cumulative
        let prev: EpochSnapshot | undefined;
        epochs.forEach((ep, i) => {
          for (const c of ep.credits) {
            const addr = c.checksummed ? getAddress(pool[c.who]) : pool[c.who];
            ledger.credit(addr, c.units);
            if (c.units > 0n) running.set(pool[c.who], (running.get(pool[c.who]) ?? 0n) + c.units);
          }
          // Restoring mid-epoch (open credits pending) must change nothing.
          if (ep.restore) ledger = ContributionLedger.fromJSON(JSON.parse(JSON.stringify(ledger.toJSON())));
          const snap = ledger.closeEpoch();
          expect(snap.epoch).toBe(i);
          const expected = [...running.keys()].sort();
          expect(snap.cumulative.map((e) => e.account.toLowerCase())).toEqual(expected);
          for (const e of snap.cumulative) {
            expect(e.units).toBe(running.get(e.account.toLowerCase()));
            expect(e.account).toBe(getAddress(e.account)); // checksummed
          }
          expect(snap.total).toBe([...running.values()].reduce((a, b) => a + b, 0n));
          if (prev) {
            for (const p of prev.cumulative) {
              const now = snap.cumulative.find((e) => e.account === p.account);
              expect(now, p.account).toBeDefined();
              expect(now!.units).toBeGreaterThanOrEqual(p.units);
            }
          }
          prev = snap;
        });
        expect(ledger.epoch).toBe(epochs.length);
      }),
      { numRuns: 100 },
    );
  });

  it('numbers epochs from 0 and repeats the last snapshot when nothing was credited', () => {
    const l = new ContributionLedger();
    expect(l.closeEpoch()).toEqual({ epoch: 0, cumulative: [], total: 0n });
    l.credit(B, 7n);
    l.credit(A_CHECKSUM, 5n);
    l.credit(A, 1n);
    l.credit(C, 0n); // nothing earned: no entry
    expect(l.units(A)).toBe(6n);
    const s1 = l.closeEpoch();
    expect(s1).toEqual({
      epoch: 1,
      cumulative: [
        { account: A_CHECKSUM, units: 6n },
        { account: getAddress(B), units: 7n },
      ],
      total: 13n,
    });
    const s2 = l.closeEpoch();
    expect(s2).toEqual({ ...s1, epoch: 2 });
  });

  it('forfeits only the open epoch of a purged account: what was posted stays, the others are untouched', () => {
    const l = new ContributionLedger();
    const [cheat, honest] = ['0x' + '1'.repeat(40), '0x' + '2'.repeat(40)];
    l.credit(cheat, 100n);
    l.credit(honest, 100n);
    l.closeEpoch();
    l.credit(cheat, 30n);
    l.credit(cheat, 12n);
    l.credit(honest, 50n);
    expect(l.forfeit(cheat)).toBe(42n);
    expect(l.forfeit(cheat)).toBe(0n);
    expect(l.units(cheat)).toBe(100n);
    expect(l.units(honest)).toBe(150n);
    expect(l.closeEpoch().cumulative.map((e) => e.units)).toEqual([100n, 150n]);
  });

  it('holds closed epochs for heldEpochs closes: a purge forfeits them too, a final close settles everything, and a restart keeps them', () => {
    const [cheat, honest] = ['0x' + '1'.repeat(40), '0x' + '2'.repeat(40)];
    let l = new ContributionLedger(2);
    for (let epoch = 0; epoch < 3; epoch++) {
      l.credit(cheat, 10n);
      l.credit(honest, 10n);
      const snap = l.closeEpoch();
      // Epoch k settles at the close of epoch k + 2: nothing is in a root before the third close.
      expect(snap.total).toBe(epoch < 2 ? 0n : 20n);
    }
    l.credit(cheat, 5n);
    l = ContributionLedger.fromJSON(JSON.parse(JSON.stringify(l.toJSON())), 2);
    expect(l.units(cheat)).toBe(35n);
    expect(l.hasUnsettledCredit).toBe(true);
    // Epoch 0 settled; epochs 1 and 2 held, and the open one: 25 units.
    expect(l.forfeit(cheat)).toBe(25n);
    expect(l.units(cheat)).toBe(10n);
    l.credit(honest, 1n);
    const last = l.closeEpoch({ final: true });
    expect(last.cumulative.map((e) => e.units)).toEqual([10n, 31n]);
    expect(l.hasUnsettledCredit).toBe(false);
    expect(() => new ContributionLedger(-1)).toThrow(/heldEpochs must be an integer ≥ 0/);
  });

  it('rejects negative and non-bigint credits', () => {
    const l = new ContributionLedger();
    expect(() => l.credit(A, -1n)).toThrow(/units must be a bigint ≥ 0, got -1/);
    expect(() => l.credit(A, 5 as unknown as bigint)).toThrow(/units must be a bigint/);
    expect(l.closeEpoch().total).toBe(0n);
  });

  it('rejects invalid addresses', () => {
    const l = new ContributionLedger();
    const wrongChecksum = A_CHECKSUM.replace('E0F7', 'e0F7');
    for (const bad of ['0x123', 'hello', A.slice(2), `${A}00`, '0x' + 'g'.repeat(40), wrongChecksum, C.toUpperCase().replace('0X', '0x'), '']) {
      expect(() => l.credit(bad, 1n), bad).toThrow(/invalid account address/);
    }
    expect(() => l.units('0x')).toThrow(/invalid account address/);
  });

  it('round-trips through JSON exactly', () => {
    const l = new ContributionLedger();
    l.credit(A, 2n ** 200n + 3n);
    l.credit(B, 5n);
    l.closeEpoch();
    l.credit(C, 9n);
    l.credit(A, 1n);
    const json = JSON.parse(JSON.stringify(l.toJSON()));
    expect(json).toEqual({
      version: 1,
      epoch: 1,
      settled: { [A_CHECKSUM]: (2n ** 200n + 3n).toString(), [getAddress(B)]: '5' },
      held: [],
      open: { [A_CHECKSUM]: '1', [getAddress(C)]: '9' },
    });
    const r = ContributionLedger.fromJSON(json);
    expect(r.toJSON()).toEqual(l.toJSON());
    expect(r.closeEpoch()).toEqual(l.closeEpoch());
  });

  it('rejects corrupt JSON with a clear error', () => {
    const good = { version: 1, epoch: 2, settled: { [A]: '5' }, open: {} };
    expect(() => ContributionLedger.fromJSON(good)).not.toThrow();
    const cases: Array<[unknown, RegExp]> = [
      [null, /corrupt ledger/],
      ['ledger', /corrupt ledger/],
      [{ ...good, version: 2 }, /ledger\.version/],
      [{ ...good, epoch: -1 }, /ledger\.epoch/],
      [{ ...good, epoch: 1.5 }, /ledger\.epoch/],
      [{ version: 1, epoch: 0, settled: {} }, /ledger\.open/],
      [{ ...good, extra: 1 }, /corrupt ledger/],
      [{ ...good, settled: { [A]: '-5' } }, /ledger\.settled.*decimal/],
      [{ ...good, settled: { [A]: '1.5' } }, /ledger\.settled/],
      [{ ...good, settled: { [A]: 5 } }, /ledger\.settled/],
      [{ ...good, settled: { [A]: '0' } }, /ledger\.settled/],
      [{ ...good, open: { '0xnope': '5' } }, /ledger\.open.*invalid account address/],
      [{ ...good, settled: { [A]: '5', [A_CHECKSUM]: '6' } }, /appears twice/],
    ];
    for (const [bad, re] of cases) expect(() => ContributionLedger.fromJSON(bad), JSON.stringify(bad)).toThrow(re);
  });
});

// ---------------------------------------------------------------------------------------------

describe('epoch Merkle tree', () => {
  const unitsArb = fc.oneof(fc.bigInt({ min: 1n, max: 10n ** 12n }), fc.bigInt({ min: 1n, max: MAX_UINT256 }));

  it('every proof verifies with an independent verifier, and only for its own leaf (property)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(addressArb, unitsArb), { minLength: 1, maxLength: 40, selector: (e) => e[0] }), (entries) => {
        const l = new ContributionLedger();
        for (const [a, u] of entries) l.credit(a, u);
        const snap = l.closeEpoch();
        const tree = epochTree(snap);
        expect(tree.total).toBe(snap.total);
        const n = entries.length;
        entries.forEach(([a, u], i) => {
          const leaf = refLeaf(a, u);
          expect(leafHash(a, u)).toBe(leaf);
          expect(tree.units(a)).toBe(u);
          const proof = tree.proof(getAddress(a));
          expect(proof.length).toBeLessThanOrEqual(Math.ceil(Math.log2(n)));
          expect(refVerify(tree.root, leaf, proof)).toBe(true);
          // Not for another amount…
          expect(refVerify(tree.root, refLeaf(a, u === MAX_UINT256 ? u - 1n : u + 1n), proof)).toBe(false);
          // …nor for another account, with its own amount or this one.
          if (n > 1) {
            const [b, ub] = entries[(i + 1) % n];
            expect(refVerify(tree.root, refLeaf(b, ub), proof)).toBe(false);
            expect(refVerify(tree.root, refLeaf(b, u), proof)).toBe(false);
          }
        });
        const loaded = loadEpochTree(JSON.parse(JSON.stringify(tree.dump())));
        expect(loaded.root).toBe(tree.root);
        expect(loaded.total).toBe(tree.total);
        expect(loaded.proof(entries[0][0])).toEqual(tree.proof(entries[0][0]));
      }),
      { numRuns: 100 },
    );
  });

  it("matches OpenZeppelin's own verifier and a single leaf is its own root", () => {
    const l = new ContributionLedger();
    l.credit(A, 100n);
    const one = epochTree(l.closeEpoch());
    expect(one.root).toBe(refLeaf(A, 100n));
    expect(one.proof(A)).toEqual([]);
    l.credit(B, 5n);
    l.credit(C, 7n);
    const t = epochTree(l.closeEpoch());
    expect(t.root).not.toBe(one.root);
    expect(StandardMerkleTree.verify(t.root, ['address', 'uint256'], [B, 5n], t.proof(B))).toBe(true);
    expect(StandardMerkleTree.verify(t.root, ['address', 'uint256'], [B, 5n], t.proof(C))).toBe(false);
  });

  it('rejects an empty snapshot, unknown accounts, inconsistent totals and bad amounts', () => {
    expect(() => epochTree({ epoch: 3, cumulative: [], total: 0n })).toThrow(/epoch 3 has no contributors.*at least one leaf/);
    const t = epochTree({ epoch: 0, cumulative: [{ account: getAddress(A), units: 4n }], total: 4n });
    expect(() => t.proof(B)).toThrow(/no leaf for account 0x8617E340B3D01FA5F11F306F4090FD50E238070D/);
    expect(t.units(B)).toBeUndefined();
    expect(() => t.proof('0x1')).toThrow(/invalid account address/);
    expect(() => epochTree({ epoch: 0, cumulative: [{ account: getAddress(A), units: 4n }], total: 5n })).toThrow(/total 5 is not the sum/);
    expect(() => epochTree({ epoch: 0, cumulative: [{ account: getAddress(A), units: -1n }], total: -1n })).toThrow(/uint256/);
    expect(() => leafHash(A, MAX_UINT256 + 1n)).toThrow(/uint256/);
    const dup = getAddress(A);
    expect(() =>
      epochTree({
        epoch: 0,
        cumulative: [
          { account: dup, units: 1n },
          { account: dup, units: 2n },
        ],
        total: 3n,
      }),
    ).toThrow(/more than one leaf/);
  });

  it('rejects a corrupt or tampered dump', () => {
    const l = new ContributionLedger();
    l.credit(A, 10n);
    l.credit(B, 20n);
    const dump = epochTree(l.closeEpoch()).dump();
    const clone = () => JSON.parse(JSON.stringify(dump));
    expect(loadEpochTree(clone()).total).toBe(30n);

    const tampered = clone();
    tampered.values[0].value[1] = '1000000';
    expect(() => loadEpochTree(tampered)).toThrow(/corrupt epoch tree dump/);
    const badRoot = clone();
    badRoot.tree[0] = '0x' + '00'.repeat(32);
    expect(() => loadEpochTree(badRoot)).toThrow(/corrupt epoch tree dump.*invalid/i);
    const badEncoding = clone();
    badEncoding.leafEncoding = ['address', 'uint128'];
    expect(() => loadEpochTree(badEncoding)).toThrow(/dump\.leafEncoding/);
    const badUnits = clone();
    badUnits.values[1].value[1] = '-3';
    expect(() => loadEpochTree(badUnits)).toThrow(/dump\.values\.1\.value\.1/);
    expect(() => loadEpochTree({ ...clone(), format: 'simple-v1' })).toThrow(/dump\.format/);
    expect(() => loadEpochTree({ ...clone(), values: [] })).toThrow(/dump\.values/);
    expect(() => loadEpochTree(undefined)).toThrow(/corrupt epoch tree dump/);
  });
});

describe('stepUnits', () => {
  const risk = exponentialRisk(4);
  const a = '0x00000000000000000000000000000000000000aa';
  const b = '0x00000000000000000000000000000000000000bb';
  const flops = [3e9, 5e9];
  // Independent reference: floor(flops·n·4^(1−(step−1)/total) / 1e6).
  const ref = (f: number, n: number, step: number, total = 10) => BigInt(Math.floor((f * n * 4 ** (1 - (step - 1) / total)) / 1e6));

  it('credits each peer its own stage FLOPs per microbatch it computed, at the step’s progress', () => {
    const got = stepUnits(
      [
        { account: a, stage: 0, microbatches: 3 },
        { account: b, stage: 1, microbatches: 1 },
      ],
      flops,
      4,
      10,
      risk,
    );
    expect(got.get(a)).toBe(ref(3e9, 3, 4));
    expect(got.get(b)).toBe(ref(5e9, 1, 4));
  });

  it('sums the shares of one account that held two stages (moved between them) and credits zero work as zero', () => {
    const got = stepUnits(
      [
        { account: a, stage: 0, microbatches: 2 },
        { account: a, stage: 1, microbatches: 1 },
        { account: b, stage: 1, microbatches: 0 },
      ],
      flops,
      1,
      10,
      risk,
    );
    expect(got.get(a)).toBe(ref(3e9, 2, 1) + ref(5e9, 1, 1));
    expect(got.get(b)).toBe(0n);
  });

  it('unitsByAccount sums each step at its own progress, one account across steps and stages', () => {
    const got = unitsByAccount(
      [
        { step: 1, work: [{ account: a, stage: 0, microbatches: 2 }] },
        {
          step: 7,
          work: [
            { account: a, stage: 1, microbatches: 1 },
            { account: b, stage: 0, microbatches: 4 },
          ],
        },
        { step: 7, work: [{ account: b, stage: 1, microbatches: 3 }] },
      ],
      flops,
      10,
      risk,
    );
    expect(got.get(a)).toBe(ref(3e9, 2, 1) + ref(5e9, 1, 7));
    expect(got.get(b)).toBe(ref(3e9, 4, 7) + ref(5e9, 3, 7));
    expect(got.size).toBe(2);
  });

  it('refuses unknown stages, bad counts and steps outside the run', () => {
    expect(() => stepUnits([{ account: a, stage: 2, microbatches: 1 }], flops, 1, 10, risk)).toThrow(/no FLOPs for stage 2/);
    for (const n of [-1, 1.5, NaN]) expect(() => stepUnits([{ account: a, stage: 0, microbatches: n }], flops, 1, 10, risk)).toThrow(/non-negative integer/);
    expect(() => stepUnits([], flops, 11, 10, risk)).toThrow(/step must be an integer/);
  });

  it('runUnitsFloor is reached by any split of a step’s microbatches among peers', () => {
    const floor = runUnitsFloor(flops, 4, 10, risk);
    let split = 0n;
    for (let step = 1; step <= 10; step++) {
      // Stage 0: 3 + 1 microbatches on two peers; stage 1: all 4 on one.
      const got = stepUnits(
        [
          { account: a, stage: 0, microbatches: 3 },
          { account: b, stage: 0, microbatches: 1 },
          { account: b, stage: 1, microbatches: 4 },
        ],
        flops,
        step,
        10,
        risk,
      );
      for (const u of got.values()) split += u;
    }
    expect(split >= floor).toBe(true);
    let perMicrobatch = 0n;
    for (let step = 1; step <= 10; step++) for (const f of flops) perMicrobatch += 4n * ref(f, 1, step);
    expect(floor).toBe(perMicrobatch);
  });
});
