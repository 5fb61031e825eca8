import { describe, expect, it } from 'vitest';
import { intSymbols, quantize } from '../shared/wire/codec.js';
import { EntropyError, decodeSymbols, encodeSymbols } from '../shared/wire/entropy.js';
import { gaussian, rng } from '../shared/base/random.js';

const rand = rng(31337);
const normal = gaussian(rand);
const int = (n: number) => Math.floor(rand() * n);

/** Empirical order-0 entropy of a stream, in bits (the bound a static order-0 coder approaches). */
function entropyBits(symbols: Uint8Array): number {
  const counts = new Map<number, number>();
  for (const s of symbols) counts.set(s, (counts.get(s) ?? 0) + 1);
  let bits = 0;
  for (const c of counts.values()) bits -= c * Math.log2(c / symbols.length);
  return bits;
}

/** int4/int8 codes of Gaussian coefficients, exactly as the wire would code them (per-column absmax). */
function gaussianCodes(rows: number, cols: number, dtype: 'int4c' | 'int8c'): Uint8Array {
  const x = Float32Array.from({ length: rows * cols }, () => normal());
  return intSymbols(quantize(x, rows, cols, dtype), rows, cols, dtype);
}

function roundTrip(symbols: Uint8Array, alphabet: number): Uint8Array {
  const coded = encodeSymbols(symbols, alphabet);
  const back = decodeSymbols(coded, alphabet, symbols.length);
  expect(back.length).toBe(symbols.length);
  expect(Buffer.from(back).equals(Buffer.from(symbols))).toBe(true);
  return coded;
}

/** Run fn and expect an EntropyError; returns its message. */
function entropyError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(EntropyError);
    return (e as Error).message;
  }
  throw new Error('expected an EntropyError, nothing was thrown');
}

describe('entropy coder round trips', () => {
  it('uniform random streams over every alphabet size class', () => {
    for (const alphabet of [1, 2, 3, 15, 16, 17, 100, 255, 256]) {
      for (const n of [1, 2, 7, 100, 5000]) {
        roundTrip(
          Uint8Array.from({ length: n }, () => int(alphabet)),
          alphabet,
        );
      }
    }
  });

  it('skewed streams: Gaussian-quantized int4 and int8 codes', () => {
    for (const [rows, cols] of [
      [512, 16],
      [1024, 32],
      [3, 5],
      [1, 1],
    ]) {
      roundTrip(gaussianCodes(rows, cols, 'int4c'), 16);
      roundTrip(gaussianCodes(rows, cols, 'int8c'), 256);
    }
  });

  it('extreme skew: one symbol in a thousand, a rare symbol of each alphabet edge', () => {
    const s = new Uint8Array(100_000).fill(3);
    for (let i = 0; i < s.length; i += 997) s[i] = 255;
    s[5] = 0;
    const coded = roundTrip(s, 256);
    expect(coded.length).toBeLessThan(entropyBits(s) / 8 + 200);
  });

  it('constant streams cost a table and a state, whatever their length', () => {
    for (const [alphabet, sym] of [
      [16, 0],
      [16, 15],
      [256, 0],
      [256, 200],
      [1, 0],
    ]) {
      for (const n of [1, 1000, 1 << 20]) {
        const coded = roundTrip(new Uint8Array(n).fill(sym), alphabet);
        // No payload bytes at all: count varint + parameter byte + table (≈ 1 bit per empty entry) + 4-byte state.
        expect(coded.length, `${n} × ${sym} of ${alphabet}`).toBeLessThanOrEqual(alphabet <= 16 ? 16 : 48);
      }
    }
  });

  it('the empty stream is one byte', () => {
    for (const alphabet of [1, 16, 256]) {
      const coded = roundTrip(new Uint8Array(0), alphabet);
      expect(Array.from(coded)).toEqual([0]);
    }
  });

  it('accepts any byteOffset (a view into a larger buffer)', () => {
    const s = gaussianCodes(64, 9, 'int4c');
    const coded = encodeSymbols(s, 16);
    const big = new Uint8Array(coded.length + 11);
    big.set(coded, 5);
    expect(Array.from(decodeSymbols(big.subarray(5, 5 + coded.length), 16, s.length))).toEqual(Array.from(s));
  });
});

describe('entropy coder compression', () => {
  it('Gaussian int4 codes: well below 4 bits per symbol, within 3% of the empirical entropy plus the table', () => {
    for (const [rows, cols] of [
      [512, 16],
      [512, 64],
      [1024, 32],
    ]) {
      const s = gaussianCodes(rows, cols, 'int4c');
      const h = entropyBits(s) / s.length;
      const coded = encodeSymbols(s, 16);
      const bitsPerSymbol = (8 * coded.length) / s.length;
      // Table overhead for 16 symbols: count varint, 1 parameter byte, ≤ 16 short codes, 4-byte state.
      const overheadBytes = 48;
      console.log(`int4 ${rows}×${cols}: empirical entropy ${h.toFixed(3)} bits/symbol, coded ${bitsPerSymbol.toFixed(3)} (${coded.length} bytes)`);
      expect(h).toBeLessThan(3.5);
      expect(bitsPerSymbol).toBeLessThan(3.6);
      expect(coded.length).toBeLessThanOrEqual((1.03 * h * s.length) / 8 + overheadBytes);
    }
  });

  it('Gaussian int8 codes: below 8 bits per symbol, within 3% of the entropy plus the table', () => {
    for (const [rows, cols] of [
      [512, 16],
      [1024, 64],
    ]) {
      const s = gaussianCodes(rows, cols, 'int8c');
      const h = entropyBits(s) / s.length;
      const coded = encodeSymbols(s, 256);
      const bitsPerSymbol = (8 * coded.length) / s.length;
      console.log(`int8 ${rows}×${cols}: empirical entropy ${h.toFixed(3)} bits/symbol, coded ${bitsPerSymbol.toFixed(3)} (${coded.length} bytes)`);
      expect(bitsPerSymbol).toBeLessThan(7.6);
      // A 256-entry table costs a few hundred bytes at most.
      expect(coded.length).toBeLessThanOrEqual((1.03 * h * s.length) / 8 + 400);
    }
  });

  it('uniform streams cost about their width, plus the table', () => {
    const s = Uint8Array.from({ length: 20_000 }, () => int(16));
    expect(encodeSymbols(s, 16).length).toBeLessThan(20_000 / 2 + 100);
  });
});

describe('entropy coder input checks', () => {
  it('encodeSymbols refuses symbols outside the alphabet and bad alphabets', () => {
    expect(() => encodeSymbols(Uint8Array.from([0, 16]), 16)).toThrow(/symbol 1 is 16, outside the alphabet 0..15/);
    expect(() => encodeSymbols(new Uint8Array(1), 0)).toThrow(RangeError);
    expect(() => encodeSymbols(new Uint8Array(1), 257)).toThrow(RangeError);
    expect(() => decodeSymbols(new Uint8Array(1), 1.5, 10)).toThrow(RangeError);
  });

  it('every truncation and every extension of a valid stream is rejected', () => {
    for (const [s, alphabet] of [
      [gaussianCodes(100, 7, 'int4c'), 16],
      [gaussianCodes(40, 5, 'int8c'), 256],
      [new Uint8Array(50).fill(2), 16],
    ] as const) {
      const coded = encodeSymbols(s, alphabet);
      for (let len = 0; len < coded.length; len++) entropyError(() => decodeSymbols(coded.subarray(0, len), alphabet, s.length));
      expect(entropyError(() => decodeSymbols(Uint8Array.from([...coded, 0]), alphabet, s.length))).toMatch(/left after the last symbol/);
    }
  });

  it('never decodes more than maxSymbols, and checks the count before allocating', () => {
    const coded = encodeSymbols(new Uint8Array(1000), 16);
    expect(entropyError(() => decodeSymbols(coded, 16, 999))).toMatch(/1000 symbols exceed the limit of 999/);
    // A 5-byte count of 2^32 − 1 with nothing behind it.
    expect(entropyError(() => decodeSymbols(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]), 16, 1 << 30))).toMatch(/exceed the limit/);
    expect(entropyError(() => decodeSymbols(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), 16, 1 << 30))).toMatch(/longer than 5 bytes/);
    expect(entropyError(() => decodeSymbols(new Uint8Array(0), 16, 10))).toMatch(/symbol count is truncated/);
  });

  it('rejects bogus tables with a clear message', () => {
    // A valid 4-symbol stream over alphabet 4: n = 4, params, table, state.
    const coded = encodeSymbols(Uint8Array.from([0, 1, 2, 3]), 4);
    const params = coded[1];
    // Precision nibble 15 → p = 23, beyond the maximum.
    expect(entropyError(() => decodeSymbols(Uint8Array.from([4, (params & 0xf0) | 0xf, ...coded.subarray(2)]), 4, 4))).toMatch(/precision 23 exceeds 15/);
    // All-zero table bits: a run of zeros longer than any valid code.
    expect(entropyError(() => decodeSymbols(Uint8Array.from([4, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 4, 4))).toMatch(/too long/);
    // All-ones table bits with k = 0: every delta 0, the frequencies sum to 0.
    expect(entropyError(() => decodeSymbols(Uint8Array.from([4, 0, 0xff, 0, 0, 0x80, 0]), 4, 4))).toMatch(/sum to 0, not 2\^8/);
    // A table ending mid-code.
    expect(entropyError(() => decodeSymbols(Uint8Array.from([4, 0, 0x00]), 4, 4))).toMatch(/past the end/);
    // Frequency jumping past the total: k = 15, first code = 2·(2^15)·… far above 2^8.
    expect(entropyError(() => decodeSymbols(Uint8Array.from([4, 0xf0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), 4, 4))).toMatch(/frequency of symbol 0/);
    // Non-zero padding after the table.
    const withPad = Uint8Array.from(encodeSymbols(Uint8Array.from([0, 0, 0, 1]), 2));
    let padded = false;
    for (let i = 2; i < withPad.length - 4 && !padded; i++) {
      for (let bit = 0; bit < 8 && !padded; bit++) {
        const c = withPad.slice();
        c[i] ^= 1 << bit;
        try {
          decodeSymbols(c, 2, 4);
        } catch (e) {
          if ((e as Error).message.includes('padding is not zero')) padded = true;
        }
      }
    }
    expect(padded).toBe(true);
  });

  it('rejects a state outside [2^23, 2^31) and a wrong final state', () => {
    const s = gaussianCodes(30, 4, 'int4c');
    const coded = encodeSymbols(s, 16);
    // Locate the state: it is the 4 bytes before the renormalization bytes; find it by trying.
    let sawRange = false;
    let sawFinal = false;
    for (let i = 0; i < coded.length; i++) {
      for (const v of [0x00, 0x80, 0xff]) {
        const c = coded.slice();
        c[i] = v;
        try {
          decodeSymbols(c, 16, s.length);
        } catch (e) {
          expect(e).toBeInstanceOf(EntropyError);
          if (/outside \[2\^23, 2\^31\)/.test((e as Error).message)) sawRange = true;
          if (/final rANS state is wrong/.test((e as Error).message)) sawFinal = true;
        }
      }
    }
    expect(sawRange && sawFinal).toBe(true);
  });

  it('fuzz: 2000 corrupted streams decode or throw EntropyError, bounded by maxSymbols', () => {
    const r = rng(9001);
    const rint = (n: number) => Math.floor(r() * n);
    const bases: [Uint8Array, number, number][] = [];
    for (let i = 0; i < 20; i++) {
      const alphabet = [16, 256, 2, 16, 256][i % 5];
      const n = rint(3000);
      const s =
        i % 4 === 0
          ? new Uint8Array(n).fill(rint(alphabet))
          : i % 4 === 1
            ? Uint8Array.from({ length: n }, () => rint(alphabet))
            : Uint8Array.from({ length: n }, () => Math.min(alphabet - 1, Math.abs(Math.round(normal() * 3))));
      bases.push([encodeSymbols(s, alphabet), alphabet, n]);
    }
    const outcomes = { ok: 0, error: 0 };
    const t0 = performance.now();
    for (let it = 0; it < 2000; it++) {
      const [coded, alphabet, n] = bases[rint(bases.length)];
      let c: Uint8Array = coded.slice();
      const op = rint(5);
      if (op === 0) c = c.subarray(0, rint(c.length + 1));
      else if (op === 1) for (let k = 1 + rint(4); k > 0; k--) c[rint(c.length)] ^= 1 << rint(8);
      else if (op === 2) for (let j = 1 + rint(2); j < Math.min(c.length, 2 + rint(30)); j++) c[j] = rint(256);
      else if (op === 3) c = Uint8Array.from({ length: rint(64) }, () => rint(256));
      else {
        const grown = new Uint8Array(c.length + 1 + rint(8));
        grown.set(c);
        c = grown;
      }
      const max = r() < 0.5 ? n : n + rint(1000);
      try {
        const out = decodeSymbols(c, alphabet, max);
        expect(out.length).toBeLessThanOrEqual(max);
        expect(out.every((v) => v < alphabet)).toBe(true);
        outcomes.ok++;
      } catch (e) {
        if (!(e instanceof EntropyError)) throw e;
        outcomes.error++;
      }
    }
    const ms = performance.now() - t0;
    console.log('entropy fuzz', outcomes, `${ms.toFixed(0)} ms`);
    expect(outcomes.error).toBeGreaterThan(1500);
    expect(ms).toBeLessThan(10_000);
  });
});
