import { describe, expect, it } from 'vitest';
import { DTYPES, type Dtype, ErrorFeedback, codecName, dequantize, dtypeOf, intLayout, intSymbols, parseCodec, quantStep, quantize, tensorBytes } from '../shared/wire/codec.js';
import { encodeSymbols } from '../shared/wire/entropy.js';
import { columnSteps, expectWithinHalfStep } from './step-reference.js';
import {
  type Frame,
  FrameKind,
  type FrameShapes,
  HEADER_BYTES,
  WireError,
  type WireErrorCode,
  decodeExpected,
  decodeFrame,
  encodeFrame,
  frameBytes,
  readHeader,
} from '../shared/wire/frame.js';
import { gaussian, rng } from '../shared/base/random.js';

// ---- Independent references: arithmetic on doubles, not bit manipulation like the code under test.

function roundHalfEven(q: number): number {
  const f = Math.floor(q);
  const d = q - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

/** Nearest value with `mantBits` stored mantissa bits, ties to even; `minExp` = smallest normal exponent. */
function refRound(x: number, mantBits: number, minExp: number): number {
  const a = Math.abs(x);
  if (a === 0) return x;
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, minExp) - mantBits); // below minExp: fixed subnormal spacing
  return Math.sign(x) * roundHalfEven(a / ulp) * ulp; // a/ulp is exact: x is an f32
}
const refHalf = (x: number) => Math.sign(x) * Math.min(65504, Math.abs(refRound(x, 10, -14)));
const refBf16 = (x: number) => refRound(x, 7, -126);

/** The raw u16 elements quantize() produced, read as little-endian. */
function u16s(x: number[], dtype: 'fp16' | 'bf16'): number[] {
  const b = quantize(Float32Array.from(x), 1, x.length, dtype);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return x.map((_, i) => v.getUint16(2 * i, true));
}

/** Each value encodes to its bit pattern (compared in hex, so a failure reads as bits). */
function expectPatterns(cases: [number, number][], dtype: 'fp16' | 'bf16'): void {
  const got = u16s(
    cases.map((c) => c[0]),
    dtype,
  );
  expect(got.map((h) => h.toString(16))).toEqual(cases.map((c) => c[1].toString(16)));
}

function fromU16s(h: number[], dtype: 'fp16' | 'bf16'): number[] {
  const b = new Uint8Array(2 * h.length);
  const v = new DataView(b.buffer);
  h.forEach((x, i) => v.setUint16(2 * i, x, true));
  return Array.from(dequantize(b, 1, h.length, dtype));
}

/** Copy into a larger buffer at an odd offset, as a pooled Node Buffer or a WebRTC slice would be. */
function oddView(bytes: Uint8Array): Uint8Array {
  const big = new Uint8Array(bytes.length + 7);
  big.set(bytes, 3);
  return big.subarray(3, 3 + bytes.length);
}

const rand = rng(20240611);
const normal = gaussian(rand);

/** Awkward shapes: a single row, odd widths, a zero row, huge magnitudes, mixed scales per row. */
function cases(): { name: string; rows: number; cols: number; x: Float32Array }[] {
  const fill = (rows: number, cols: number, f: (r: number, c: number) => number) => Float32Array.from({ length: rows * cols }, (_, i) => f(Math.floor(i / cols), i % cols));
  return [
    { name: '1×7', rows: 1, cols: 7, x: fill(1, 7, () => normal()) },
    { name: '3×33', rows: 3, cols: 33, x: fill(3, 33, (r) => normal() * 10 ** (r - 1)) },
    { name: '4×128 with a zero row', rows: 4, cols: 128, x: fill(4, 128, (r) => (r === 2 ? 0 : normal() * 3)) },
    { name: '2×5 large magnitudes', rows: 2, cols: 5, x: fill(2, 5, (r) => normal() * (r ? 1e30 : 3e4)) },
    { name: '1×1', rows: 1, cols: 1, x: fill(1, 1, () => -0.75) },
  ];
}

describe('codec round trips', () => {
  it('fp32 is exact, also from an odd-offset view', () => {
    for (const { rows, cols, x } of cases()) {
      const back = dequantize(oddView(quantize(x, rows, cols, 'fp32')), rows, cols, 'fp32');
      expect(Array.from(back)).toEqual(Array.from(x));
    }
  });

  it('bf16 is within 2^-8 relative and equals round-to-nearest-even exactly', () => {
    for (const { rows, cols, x } of cases()) {
      const back = dequantize(oddView(quantize(x, rows, cols, 'bf16')), rows, cols, 'bf16');
      for (let i = 0; i < x.length; i++) {
        expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual(2 ** -8 * Math.abs(x[i]));
        expect(back[i]).toBe(refBf16(x[i]));
      }
    }
  });

  it('fp16 is within 2^-11 relative in the normal range, 2^-25 absolute below it, and saturates', () => {
    for (const { name, rows, cols, x } of cases()) {
      const back = dequantize(oddView(quantize(x, rows, cols, 'fp16')), rows, cols, 'fp16');
      for (let i = 0; i < x.length; i++) {
        const a = Math.abs(x[i]);
        if (a > 65504) expect(back[i], name).toBe(Math.sign(x[i]) * 65504);
        else if (a >= 2 ** -14) expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual(2 ** -11 * a);
        else expect(Math.abs(back[i] - x[i])).toBeLessThanOrEqual(2 ** -25);
        expect(back[i]).toBe(refHalf(x[i]));
      }
    }
  });

  it('fp16 agrees with the reference on values spanning subnormal to overflow', () => {
    const x = Float32Array.from({ length: 4000 }, () => normal() * 2 ** (Math.floor(rand() * 48) - 30));
    const back = dequantize(quantize(x, 40, 100, 'fp16'), 40, 100, 'fp16');
    let subnormals = 0;
    for (let i = 0; i < x.length; i++) {
      expect(back[i]).toBe(refHalf(x[i]));
      if (Math.abs(x[i]) < 2 ** -14 && back[i] !== 0) subnormals++;
    }
    expect(subnormals).toBeGreaterThan(50);
  });

  for (const [dtype, L] of [
    ['int8', 127],
    ['int4', 7],
  ] as const) {
    it(`${dtype} per-row absmax: error ≤ scale/2, zero rows exact, scales stored as f32`, () => {
      for (const { name, rows, cols, x } of cases()) {
        const bytes = quantize(x, rows, cols, dtype);
        expect(bytes.length).toBe(rows * (4 + (dtype === 'int8' ? cols : Math.ceil(cols / 2))));
        const back = dequantize(oddView(bytes), rows, cols, dtype);
        const scales = new DataView(bytes.buffer, bytes.byteOffset, 4 * rows);
        for (let r = 0; r < rows; r++) {
          let max = 0;
          for (let c = 0; c < cols; c++) max = Math.max(max, Math.abs(x[r * cols + c]));
          const scale = max / L;
          expect(scales.getFloat32(4 * r, true)).toBe(Math.fround(scale));
          for (let c = 0; c < cols; c++) {
            const i = r * cols + c;
            // Slack: the receiver's product q·scale is itself rounded to f32.
            expect(Math.abs(back[i] - x[i]), `${name} [${r},${c}]`).toBeLessThanOrEqual(scale * (0.5 + 1e-5));
            if (max === 0) expect(back[i]).toBe(0);
          }
        }
      }
    });
  }

  /** Awkward shapes for per-column scales: one row, odd widths, a zero column, an outlier column. */
  function columnCases(): { name: string; rows: number; cols: number; x: Float32Array }[] {
    const fill = (rows: number, cols: number, f: (r: number, c: number) => number) => Float32Array.from({ length: rows * cols }, (_, i) => f(Math.floor(i / cols), i % cols));
    return [
      { name: '1×7 (rows = 1)', rows: 1, cols: 7, x: fill(1, 7, () => normal()) },
      { name: '37×5 zero column 2, outlier column 4', rows: 37, cols: 5, x: fill(37, 5, (_, c) => (c === 2 ? 0 : normal() * (c === 4 ? 1e6 : 0.1 * (c + 1)))) },
      { name: '64×1', rows: 64, cols: 1, x: fill(64, 1, () => normal()) },
      { name: '9×33 spreads per column', rows: 9, cols: 33, x: fill(9, 33, (_, c) => normal() * 10 ** ((c % 7) - 3)) },
      { name: '200×16 one outlier value', rows: 200, cols: 16, x: fill(200, 16, (r, c) => (r === 17 && c === 3 ? 40 : normal())) },
      { name: '4×3 large magnitudes', rows: 4, cols: 3, x: fill(4, 3, (_, c) => normal() * (c ? 1e30 : 3e4)) },
      { name: '2×3 all zero', rows: 2, cols: 3, x: new Float32Array(6) },
    ];
  }

  for (const [dtype, L] of [
    ['int8c', 127],
    ['int4c', 7],
  ] as const) {
    it(`${dtype} per-column absmax: error ≤ scale/2 per column, zero columns exact, scales stored once as f32`, () => {
      for (const { name, rows, cols, x } of columnCases()) {
        const bytes = quantize(x, rows, cols, dtype);
        expect(bytes.length).toBe(4 * cols + rows * (dtype === 'int8c' ? cols : Math.ceil(cols / 2)));
        const back = dequantize(oddView(bytes), rows, cols, dtype);
        const scales = new DataView(bytes.buffer, bytes.byteOffset, 4 * cols);
        for (let c = 0; c < cols; c++) {
          let max = 0;
          for (let r = 0; r < rows; r++) max = Math.max(max, Math.abs(x[r * cols + c]));
          const scale = max / L;
          expect(scales.getFloat32(4 * c, true), `${name} col ${c}`).toBe(Math.fround(scale));
          let worst = 0;
          for (let r = 0; r < rows; r++) {
            const i = r * cols + c;
            worst = Math.max(worst, Math.abs(back[i] - x[i]));
            if (max === 0) expect(back[i]).toBe(0);
          }
          // Slack: the receiver's product q·scale is itself rounded to f32.
          expect(worst, `${name} col ${c}`).toBeLessThanOrEqual(scale * (0.5 + 1e-5));
        }
      }
    });

    it(`${dtype} rounds half away from zero and clamps at ±${L}, like the per-row ${dtype.slice(0, 4)}`, () => {
      // Column 0 sets scale 1 (max |x| = L); the others are ties and the extremes.
      const x = Float32Array.from([L, 2.5, -2.5, 0.5, -0.5, -L]);
      const q = dequantize(quantize(x, 6, 1, dtype), 6, 1, dtype);
      expect(Array.from(q)).toEqual([L, 3, -3, 1, -1, -L]);
      const perRow = dequantize(quantize(x, 1, 6, dtype === 'int8c' ? 'int8' : 'int4'), 1, 6, dtype === 'int8c' ? 'int8' : 'int4');
      expect(Array.from(q)).toEqual(Array.from(perRow));
    });
  }

  it('int8c/int4c agree with per-row int8/int4 on the transpose when there is one column', () => {
    const x = Float32Array.from({ length: 50 }, () => normal());
    for (const [c, r] of [
      ['int8c', 'int8'],
      ['int4c', 'int4'],
    ] as const) {
      expect(Array.from(dequantize(quantize(x, 50, 1, c), 50, 1, c))).toEqual(Array.from(dequantize(quantize(x, 1, 50, r), 1, 50, r)));
    }
  });

  it('int4c stores the column scales first, then rows of nibbles, low nibble first, each row on a fresh byte', () => {
    // Column scales 1, 1, 1/7. Row 0 = [7, −7, 7] → 0x97 0x07; row 1 = [0, −4 (−3.5 rounds away), −7] → 0xc0 0x09.
    const bytes = quantize(Float32Array.from([7, -7, 1, 0, -3.5, -1]), 2, 3, 'int4c');
    expect(bytes.length).toBe(12 + 4);
    const v = new DataView(bytes.buffer);
    expect([v.getFloat32(0, true), v.getFloat32(4, true), v.getFloat32(8, true)]).toEqual([1, 1, Math.fround(1 / 7)]);
    expect(Array.from(bytes.subarray(12))).toEqual([0x97, 0x07, 0xc0, 0x09]);
    // int8c: column 1 = [−2, 0.5] has scale 2/127, so −2 → −127 (0x81) and 0.5 → 31.75 → 32.
    const i8 = quantize(Float32Array.from([127, -2, 0, 0.5]), 2, 2, 'int8c');
    expect(Array.from(i8.subarray(8))).toEqual([127, 0x81, 0, 32]);
  });

  it('intSymbols lists the quantized values without scales or pad nibbles', () => {
    const bytes = quantize(Float32Array.from([7, -7, 1, 0, -3.5, -1]), 2, 3, 'int4c');
    expect(Array.from(intSymbols(bytes, 2, 3, 'int4c'))).toEqual([7, 9, 7, 0, 12, 9]);
    const i8 = quantize(Float32Array.from([127, -2, 0, 0.5]), 2, 2, 'int8c');
    expect(Array.from(intSymbols(i8, 2, 2, 'int8c'))).toEqual([127, 0x81, 0, 32]);
    expect(intLayout(2, 3, 'fp16')).toBeUndefined();
    expect(intLayout(2, 3, 'int4c')).toMatchObject({ bits: 4, levels: 7, perColumn: true, scaleBytes: 12, rowBytes: 2 });
  });

  it('int4 packs two values per byte, low nibble first, each row on a fresh byte', () => {
    // Row 0 = [7, -7, 1] with scale 1 → nibbles 0x7, 0x9, 0x1 (+ pad 0); row 1 = [0, 0, 0].
    const bytes = quantize(Float32Array.from([7, -7, 1, 0, 0, 0]), 2, 3, 'int4');
    expect(Array.from(bytes.subarray(8))).toEqual([0x97, 0x01, 0x00, 0x00]);
    expect(new DataView(bytes.buffer).getFloat32(0, true)).toBe(1);
    expect(new DataView(bytes.buffer).getFloat32(4, true)).toBe(0);
  });

  it('tensorBytes matches quantize and dequantize for every dtype and shape', () => {
    const expected: Record<Dtype, (r: number, c: number) => number> = {
      fp32: (r, c) => 4 * r * c,
      bf16: (r, c) => 2 * r * c,
      fp16: (r, c) => 2 * r * c,
      int8: (r, c) => r * (4 + c),
      int4: (r, c) => r * (4 + Math.ceil(c / 2)),
      int8c: (r, c) => 4 * c + r * c,
      int4c: (r, c) => 4 * c + r * Math.ceil(c / 2),
    };
    for (const dtype of DTYPES) {
      for (const rows of [1, 2, 3, 17]) {
        for (const cols of [1, 2, 7, 32, 33, 128]) {
          const x = Float32Array.from({ length: rows * cols }, () => normal());
          const bytes = quantize(x, rows, cols, dtype);
          expect(bytes.length, `${rows}×${cols} ${dtype}`).toBe(tensorBytes(rows, cols, dtype));
          expect(tensorBytes(rows, cols, dtype)).toBe(expected[dtype](rows, cols));
          expect(dequantize(bytes, rows, cols, dtype).length).toBe(rows * cols);
          expect(() => dequantize(bytes.subarray(1), rows, cols, dtype)).toThrow(RangeError);
        }
      }
    }
    // The subspace case the per-column dtypes exist for: k = 16 int8 at 512 tokens.
    expect(tensorBytes(512, 16, 'int8')).toBe(512 * 20);
    expect(tensorBytes(512, 16, 'int8c')).toBe(64 + 512 * 16);
  });

  it('rejects shapes that do not match', () => {
    expect(() => quantize(new Float32Array(6), 2, 4, 'fp32')).toThrow(/do not form 2×4/);
    expect(() => dequantize(new Uint8Array(5), 1, 2, 'fp16')).toThrow(/expected 4/);
  });
});

describe('known bit patterns and ties to even', () => {
  it('fp16 encodes IEEE half bit patterns', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [2 ** -24, 0x0001],
      [0.1, 0x2e66],
      [0, 0x0000],
      [-0, 0x8000],
      [2 ** -14, 0x0400],
      [2 ** -14 - 2 ** -24, 0x03ff],
      [1 / 3, 0x3555],
      [2 ** -26, 0x0000],
      // Saturation instead of Inf: IEEE would give Inf (0x7c00) from 65520 upward.
      [65519, 0x7bff],
      [65520, 0x7bff],
      [1e6, 0x7bff],
      [-1e30, 0xfbff],
      [3.4e38, 0x7bff],
    ];
    expectPatterns(cases, 'fp16');
  });

  it('fp16 ties go to even, normal and subnormal', () => {
    const cases: [number, number][] = [
      [1 + 2 ** -11, 0x3c00], // halfway 0x3c00/0x3c01 → even
      [1 + 3 * 2 ** -11, 0x3c02], // halfway 0x3c01/0x3c02 → even
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above halfway
      [-(1 + 2 ** -11), 0xbc00],
      [2 ** -25, 0x0000], // halfway 0/1 subnormal units → 0
      [3 * 2 ** -25, 0x0002], // 1.5 units → 2
      [5 * 2 ** -25, 0x0002], // 2.5 units → 2
      [2 ** -25 + 2 ** -40, 0x0001],
      [2 ** -14 - 2 ** -25, 0x0400], // 1023.5 units → 1024 = smallest normal
      [2047.5 * 2 ** -10, 0x4000], // 1.99951171875 + half ulp → carries into the exponent: 2.0
    ];
    expectPatterns(cases, 'fp16');
  });

  it('bf16 encodes known patterns, ties to even, saturates f32 max', () => {
    const f32max = 3.4028234663852886e38;
    const cases: [number, number][] = [
      [1, 0x3f80],
      [-2, 0xc000],
      [0.1, 0x3dcd],
      [1 + 2 ** -8, 0x3f80],
      [1 + 3 * 2 ** -8, 0x3f82],
      [1 + 2 ** -8 + 2 ** -20, 0x3f81],
      [-(1 + 2 ** -8), 0xbf80],
      [2 - 2 ** -23, 0x4000],
      [f32max, 0x7f7f],
      [-f32max, 0xff7f],
    ];
    expectPatterns(cases, 'bf16');
  });

  it('fp16 and bf16 decode known bit patterns', () => {
    expect(fromU16s([0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x3555, 0x8000], 'fp16')).toEqual([1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 0.333251953125, -0]);
    expect(fromU16s([0x3f80, 0xc000, 0x3dcd, 0x7f7f], 'bf16')).toEqual([1, -2, Math.fround(0.10009765625), 0xff * 2 ** 120]);
  });
});

describe('error feedback', () => {
  // max |x| = 1 → int4 scale 1/7; 0.5 sits 1/14 from its nearest levels, 0.3 sits 0.0143 away.
  const x = Float32Array.from([1, 0.5, 0.3, -0.3, 0.123, -0.9, 0.05, 0, -0.61]);
  const meanError = (sum: Float64Array, t: number) => Math.max(...Array.from(x, (v, i) => Math.abs(sum[i] / t - v)));

  it('the running mean of int4 outputs converges to a constant input, plain int4 keeps its bias', () => {
    const ef = new ErrorFeedback(x.length);
    const withEf = new Float64Array(x.length);
    const plain = new Float64Array(x.length);
    const errors: number[] = [];
    for (let t = 1; t <= 1000; t++) {
      const a = dequantize(ef.apply(x, 1, x.length, 'int4'), 1, x.length, 'int4');
      const b = dequantize(quantize(x, 1, x.length, 'int4'), 1, x.length, 'int4');
      for (let i = 0; i < x.length; i++) {
        withEf[i] += a[i];
        plain[i] += b[i];
      }
      if (t === 10 || t === 100 || t === 1000) errors.push(meanError(withEf, t));
    }
    expect(meanError(plain, 1000)).toBeGreaterThan(0.07); // 0.5 → 4/7 or 3/7, every time
    expect(errors[1]).toBeLessThan(errors[0]);
    expect(errors[2]).toBeLessThan(errors[1]);
    expect(errors[2]).toBeLessThan(2e-4);
  });

  it('feeds frames too, and refuses a tensor of another size', () => {
    const ef = new ErrorFeedback(x.length);
    const sum = new Float64Array(x.length);
    for (let t = 0; t < 200; t++) {
      const f = decodeFrame(encodeFrame({ kind: FrameKind.ReplicaWeights, tag: t, microbatch: 0, rows: 1, cols: x.length, dtype: 'int4', tensor: x }, ef));
      f.tensor.forEach((v, i) => (sum[i] += v));
    }
    expect(meanError(sum, 200)).toBeLessThan(1e-3);
    expect(() => ef.apply(new Float32Array(4), 2, 2, 'int4')).toThrow(/carries 9/);
  });
});

/** Run fn and assert it throws a WireError with this code; returns its message. */
function code(fn: () => unknown, expected: WireErrorCode): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WireError);
    expect((e as WireError).code).toBe(expected);
    return (e as Error).message;
  }
  throw new Error(`expected WireError '${expected}', nothing was thrown`);
}

describe('wire frames', () => {
  const tensor = Float32Array.from({ length: 3 * 7 }, () => normal());
  const base = (over: Partial<Frame> = {}): Frame => ({ kind: FrameKind.Activation, tag: 123456, microbatch: 7, rows: 3, cols: 7, dtype: 'fp32', tensor, ...over });

  /** A valid frame's bytes with a header field overwritten. */
  function patched(f: Frame, edit: (v: DataView) => void): Uint8Array {
    const bytes = encodeFrame(f);
    edit(new DataView(bytes.buffer));
    return bytes;
  }

  it('round-trips every dtype and kind, with and without token ids, from odd-offset views', () => {
    for (const dtype of DTYPES) {
      for (const kind of Object.values(FrameKind)) {
        for (const tokens of [undefined, Uint16Array.from([0, 65535, 42])]) {
          const f = base({ dtype, kind, tokens });
          const back = decodeFrame(oddView(encodeFrame(f)));
          expect({ ...back, tensor: null }).toEqual({ ...f, tensor: null, ...(tokens ? {} : { tokens: undefined }) });
          expect('tokens' in back).toBe(tokens !== undefined);
          expect(Array.from(back.tensor)).toEqual(Array.from(dequantize(quantize(tensor, 3, 7, dtype), 3, 7, dtype)));
        }
      }
    }
  });

  it('numbers frame kinds as wire constants', () => {
    expect(FrameKind).toEqual({ Activation: 1, Gradient: 2, EvalActivation: 3, ReplicaWeights: 4, GenerateStart: 5, GenerateActivation: 6, GenerateToken: 7 });
  });

  it('lays out the header as specified', () => {
    const bytes = encodeFrame(base({ dtype: 'int8', kind: FrameKind.Gradient, tokens: Uint16Array.from([1, 2, 3]) }));
    const v = new DataView(bytes.buffer);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x4d, 0x52, 0x57, 0x53]);
    expect([v.getUint8(4), v.getUint8(5), v.getUint8(6), v.getUint8(7)]).toEqual([1, 2, 4, 1]);
    expect([8, 12, 16, 20, 24, 28].map((o) => v.getUint32(o, true))).toEqual([123456, 7, 3, 7, 3 * (4 + 7), 0]);
    expect(v.getUint16(bytes.length - 2, true)).toBe(3);
  });

  it('frameBytes equals the encoded length for every dtype', () => {
    const payload: Record<Dtype, (r: number, c: number) => number> = {
      fp32: (r, c) => r * 4 * c,
      bf16: (r, c) => r * 2 * c,
      fp16: (r, c) => r * 2 * c,
      int8: (r, c) => r * (4 + c),
      int4: (r, c) => r * (4 + Math.ceil(c / 2)),
      int8c: (r, c) => 4 * c + r * c,
      int4c: (r, c) => 4 * c + r * Math.ceil(c / 2),
    };
    for (const dtype of DTYPES) {
      for (const [rows, cols] of [
        [1, 1],
        [3, 7],
        [5, 33],
        [2, 128],
      ]) {
        for (const withTokens of [false, true]) {
          const f = base({ dtype, rows, cols, tensor: new Float32Array(rows * cols).fill(-1.5), tokens: withTokens ? new Uint16Array(rows) : undefined });
          const n = encodeFrame(f).length;
          expect(frameBytes(rows, cols, dtype, withTokens)).toBe(n);
          expect(n).toBe(HEADER_BYTES + payload[dtype](rows, cols) + (withTokens ? 2 * rows : 0));
        }
      }
    }
  });

  it('rejects every class of malformed frame with its code', () => {
    const good = encodeFrame(base());
    const grown = new Uint8Array(good.length + 1);
    grown.set(good);
    code(() => decodeFrame(good.subarray(0, good.length - 1)), 'truncated');
    code(() => decodeFrame(good.subarray(0, 20)), 'truncated');
    code(() => decodeFrame(new Uint8Array(0)), 'truncated');
    code(() => decodeFrame(grown), 'length');
    code(() => decodeFrame(patched(base(), (v) => v.setUint32(0, 0x4d525753, true))), 'magic');
    expect(code(() => decodeFrame(patched(base(), (v) => v.setUint8(4, 2))), 'version')).toMatch(/version 2 is not supported.*version 1/);
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(5, 0))), 'kind');
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(5, 8))), 'kind'); // one past the last kind
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(5, 255))), 'kind');
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(6, 0))), 'dtype');
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(6, 99))), 'dtype');
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(7, 0x08))), 'reserved');
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(7, 0x80))), 'reserved');
    // The dither flag on a float payload.
    expect(code(() => decodeFrame(patched(base(), (v) => v.setUint8(7, 0x04))), 'dtype')).toMatch(/fp32 payload cannot be dithered/);
    // The entropy flag on a float payload.
    expect(code(() => decodeFrame(patched(base(), (v) => v.setUint8(7, 0x02))), 'entropy')).toMatch(/fp32 payload cannot be entropy-coded/);
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(31, 1))), 'reserved');
    code(() => decodeFrame(patched(base(), (v) => v.setUint32(24, 3 * 7 * 4 + 1, true))), 'length');
    code(() => decodeFrame(patched(base(), (v) => v.setUint32(24, 3 * 7 * 4 - 4, true))), 'length');
    code(() => decodeFrame(patched(base(), (v) => v.setUint32(16, (1 << 20) + 1, true))), 'limits');
    code(() => decodeFrame(patched(base(), (v) => v.setUint32(20, (1 << 16) + 1, true))), 'limits');
    code(() => decodeFrame(patched(base(), (v) => v.setUint32(16, 0, true))), 'limits');
    code(() => decodeFrame(good, { maxRows: 2 }), 'limits');
    code(() => decodeFrame(good, { maxCols: 6 }), 'limits');
    // Token ids flagged but not sent.
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(7, 1))), 'truncated');
  });

  it('rejects non-finite payloads, naming the value', () => {
    const nan = patched(base(), (v) => v.setFloat32(HEADER_BYTES + 4 * 9, NaN, true));
    expect(code(() => decodeFrame(nan), 'nonfinite')).toMatch(/value 9 \(row 1, col 2\)/);
    code(() => decodeFrame(patched(base(), (v) => v.setFloat32(HEADER_BYTES + 4 * 20, -Infinity, true))), 'nonfinite');
    code(() => decodeFrame(patched(base({ dtype: 'bf16' }), (v) => v.setUint16(HEADER_BYTES, 0x7f80, true))), 'nonfinite');
    code(() => decodeFrame(patched(base({ dtype: 'fp16' }), (v) => v.setUint16(HEADER_BYTES + 2, 0xfe00, true))), 'nonfinite');
    code(() => decodeFrame(patched(base({ dtype: 'int8' }), (v) => v.setFloat32(HEADER_BYTES + 4, Infinity, true))), 'nonfinite');
    // A finite scale whose product with a level overflows f32.
    code(() => decodeFrame(patched(base({ dtype: 'int4' }), (v) => v.setFloat32(HEADER_BYTES, 3e38, true))), 'nonfinite');
  });

  it('readHeader reads what a frame claims to be, checking only the header itself', () => {
    const tokens = Uint16Array.from([1, 2, 3]);
    expect(readHeader(oddView(encodeFrame(base({ dtype: 'int8', tokens }), undefined, { entropy: true })))).toEqual({
      kind: FrameKind.Activation,
      dtype: 'int8',
      tag: 123456,
      microbatch: 7,
      rows: 3,
      cols: 7,
      payloadBytes: 3 * (4 + 7),
      tokens: true,
      coded: false,
      dithered: false,
    });
    // A truncated payload or an absurd shape is not the header's business: the key can still be read.
    const h = readHeader(patched(base(), (v) => v.setUint32(16, 0xffffffff, true)).subarray(0, HEADER_BYTES));
    expect([h.tag, h.microbatch, h.rows]).toEqual([123456, 7, 0xffffffff]);
    code(() => readHeader(new Uint8Array(HEADER_BYTES - 1)), 'truncated');
    code(() => readHeader(patched(base(), (v) => v.setUint8(4, 9))), 'version');
    code(() => readHeader(patched(base(), (v) => v.setUint8(7, 0x10))), 'reserved');
  });

  it('decodeExpected takes only a listed kind at its exact shape, checked before anything is decoded', () => {
    const shapes: FrameShapes = {
      [FrameKind.Activation]: { minRows: 3, maxRows: 3, cols: 7, dtype: 'int8c', tokens: false },
      [FrameKind.GenerateActivation]: { minRows: 1, maxRows: 3, cols: 7, dtype: 'int8c', tokens: true },
    };
    const ids = (n: number) => new Uint16Array(n);
    const ok = (f: Frame) => decodeExpected(encodeFrame(f, undefined, { entropy: true }), shapes);
    expect(ok(base({ dtype: 'int8c' })).rows).toBe(3);
    for (const rows of [1, 2, 3])
      expect(ok(base({ kind: FrameKind.GenerateActivation, dtype: 'int8c', rows, tensor: tensor.subarray(0, 7 * rows), tokens: ids(rows) })).rows).toBe(rows);
    expect(code(() => ok(base({ kind: FrameKind.Gradient, dtype: 'int8c' })), 'kind')).toMatch(/kind 2 is not expected here/);
    const wrong: Partial<Frame>[] = [
      { dtype: 'int8' },
      { rows: 2, tensor: tensor.subarray(0, 14) },
      { cols: 3, rows: 7 },
      { tokens: ids(3) },
      { kind: FrameKind.GenerateActivation, tokens: undefined },
      { kind: FrameKind.GenerateActivation, rows: 21, cols: 1, tokens: ids(21) },
    ];
    for (const w of wrong) expect(code(() => ok(base({ dtype: 'int8c', ...w })), 'shape')).toMatch(/expected (3|1\.\.3)×7 int8c/);
    // A constant tensor codes to a few bytes whatever its size: one of another shape is refused
    // as such, never expanded (decodeFrame, with its default limits, expands it).
    const bomb = encodeFrame({ ...base(), rows: 1024, cols: 16, dtype: 'int8c', tensor: new Float32Array(1024 * 16).fill(0.5) }, undefined, { entropy: true });
    expect(bomb.length).toBeLessThan(200);
    expect(decodeFrame(bomb).tensor.length).toBe(1024 * 16);
    expect(code(() => decodeExpected(bomb, shapes), 'shape')).toMatch(/is 1024×16 int8c/);
  });

  it('encodeFrame refuses what a receiver would reject', () => {
    const bad = Float32Array.from(tensor, (x, i) => (i === 5 ? NaN : x));
    expect(code(() => encodeFrame(base({ tensor: bad })), 'nonfinite')).toMatch(/value 5 \(row 0, col 5\)/);
    code(() => encodeFrame(base({ tensor: tensor.subarray(1) })), 'length');
    code(() => encodeFrame(base({ tokens: new Uint16Array(2) })), 'length');
    code(() => encodeFrame(base({ tokens: Int32Array.from([1, 70000, 2]) as unknown as Uint16Array })), 'limits');
    code(() => encodeFrame(base({ kind: 9 as FrameKind })), 'kind');
    code(() => encodeFrame(base({ dtype: 'fp8' as Dtype })), 'dtype');
    code(() => encodeFrame(base({ dtype: 'toString' as Dtype })), 'dtype');
    code(() => encodeFrame(base({ tag: -1 })), 'limits');
  });

  it('fuzz: mutated frames decode to valid frames or throw WireError, nothing else', () => {
    const r = rng(777);
    const int = (n: number) => Math.floor(r() * n);
    const bases = Array.from({ length: 24 }, (_, i) => {
      const rows = 1 + int(5);
      const cols = 1 + int(40);
      const g = gaussian(r);
      return encodeFrame({
        kind: (1 + (i % 4)) as FrameKind,
        tag: int(1e6),
        microbatch: int(100),
        rows,
        cols,
        dtype: DTYPES[i % DTYPES.length],
        tensor: Float32Array.from({ length: rows * cols }, () => g() * 10 ** int(4)),
        tokens: i % 3 === 0 ? Uint16Array.from({ length: rows }, () => int(65536)) : undefined,
      });
    });
    const outcomes = new Map<string, number>();
    for (let it = 0; it < 2000; it++) {
      let bytes: Uint8Array = bases[int(bases.length)].slice();
      const op = int(5);
      if (op === 0) bytes = bytes.subarray(0, int(bytes.length));
      else if (op === 1) {
        const grown = new Uint8Array(bytes.length + 1 + int(8));
        grown.set(bytes);
        for (let j = bytes.length; j < grown.length; j++) grown[j] = int(256);
        bytes = grown;
      } else if (op === 2) new DataView(bytes.buffer).setUint32(4 * int(8), r() < 0.5 ? int(2 ** 32) : int(64), true);
      else {
        // Random byte edits, half of them aimed at the header.
        for (let k = 1 + int(4); k > 0; k--) bytes[r() < 0.5 ? int(HEADER_BYTES) : int(bytes.length)] = int(256);
      }
      if (r() < 0.5) bytes = oddView(bytes);
      let outcome: string;
      try {
        const f = decodeFrame(bytes);
        expect(f.tensor.length).toBe(f.rows * f.cols);
        expect(f.tensor.every(Number.isFinite)).toBe(true);
        if (f.tokens) expect(f.tokens.length).toBe(f.rows);
        expect(bytes.length).toBe(frameBytes(f.rows, f.cols, f.dtype, f.tokens !== undefined));
        outcome = 'ok';
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        outcome = e.code;
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    // The fuzzer must reach both sides and most checks, or it proves nothing.
    expect(outcomes.get('ok')).toBeGreaterThan(50);
    for (const c of ['truncated', 'length', 'magic', 'version', 'kind', 'dtype', 'reserved', 'limits']) expect(outcomes.get(c), c).toBeGreaterThan(0);
    console.log('fuzz outcomes', Object.fromEntries(outcomes));
  });
});

const gaussianTensor = (rows: number, cols: number, g = normal) => Float32Array.from({ length: rows * cols }, () => g());
const frame = (over: Partial<Frame> & Pick<Frame, 'rows' | 'cols' | 'dtype' | 'tensor'>): Frame => ({ kind: FrameKind.Activation, tag: 9, microbatch: 2, ...over });

describe('entropy-coded frames', () => {
  const INT_DTYPES = ['int8', 'int4', 'int8c', 'int4c'] as const;
  const FLAG_ENTROPY = 2;
  const flagsOf = (bytes: Uint8Array) => bytes[7];
  const payloadBytesOf = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset).getUint32(24, true);

  /** A frame with the flag set and a hand-made coded payload: scales, then `stream`. */
  function craft(rows: number, cols: number, dtype: (typeof INT_DTYPES)[number], stream: Uint8Array, scale = 0.5): Uint8Array {
    const l = intLayout(rows, cols, dtype)!;
    const out = new Uint8Array(HEADER_BYTES + l.scaleBytes + stream.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, 0x5357524d, true);
    v.setUint8(4, 1);
    v.setUint8(5, FrameKind.Activation);
    v.setUint8(6, { int8: 4, int4: 5, int8c: 6, int4c: 7 }[dtype]);
    v.setUint8(7, FLAG_ENTROPY);
    v.setUint32(16, rows, true);
    v.setUint32(20, cols, true);
    v.setUint32(24, l.scaleBytes + stream.length, true);
    for (let i = 0; i < l.scaleBytes / 4; i++) v.setFloat32(HEADER_BYTES + 4 * i, scale, true);
    out.set(stream, HEADER_BYTES + l.scaleBytes);
    return out;
  }

  it('round-trips every integer dtype with and without entropy coding; coded only when smaller', () => {
    for (const dtype of INT_DTYPES) {
      for (const [rows, cols] of [
        [512, 16],
        [300, 7],
        [64, 33],
        [3, 7],
        [1, 1],
        [1, 64],
      ]) {
        for (const tokens of [undefined, Uint16Array.from({ length: rows }, (_, i) => (i * 7919) % 65536)]) {
          const f = frame({ rows, cols, dtype, tensor: gaussianTensor(rows, cols), tokens });
          const raw = encodeFrame(f);
          const coded = encodeFrame(f, undefined, { entropy: true });
          const expected = Array.from(dequantize(quantize(f.tensor, rows, cols, dtype), rows, cols, dtype));
          for (const bytes of [raw, coded]) {
            const back = decodeFrame(oddView(bytes));
            expect(Array.from(back.tensor), `${rows}×${cols} ${dtype}`).toEqual(expected);
            expect(back.tokens && Array.from(back.tokens)).toEqual(tokens && Array.from(tokens));
            expect(back.dtype).toBe(dtype);
          }
          expect(raw.length).toBe(frameBytes(rows, cols, dtype, tokens !== undefined));
          expect(flagsOf(raw) & FLAG_ENTROPY).toBe(0);
          if (flagsOf(coded) & FLAG_ENTROPY) {
            expect(coded.length).toBeLessThan(raw.length);
            expect(payloadBytesOf(coded)).toBe(coded.length - HEADER_BYTES - (tokens ? 2 * rows : 0));
          } else {
            expect(coded).toEqual(raw); // fell back to the raw frame, byte for byte
          }
          // Gaussian values always pay for their table at these sizes; a 1×1 frame never does.
          if (rows * cols >= 2000) expect(flagsOf(coded) & FLAG_ENTROPY, `${rows}×${cols} ${dtype}`).toBe(FLAG_ENTROPY);
          if (rows * cols === 1) expect(flagsOf(coded) & FLAG_ENTROPY).toBe(0);
        }
      }
    }
  });

  it('never codes float payloads, and falls back to raw for incompressible values', () => {
    const x = gaussianTensor(64, 16);
    for (const dtype of ['fp32', 'bf16', 'fp16'] as const) {
      const f = frame({ rows: 64, cols: 16, dtype, tensor: x });
      expect(encodeFrame(f, undefined, { entropy: true })).toEqual(encodeFrame(f));
    }
    // Uniform over the whole int8 range: ~8 bits of information per value, nothing to gain.
    const r = rng(5);
    const uniform = Float32Array.from({ length: 256 * 16 }, () => 2 * r() - 1);
    const f = frame({ rows: 256, cols: 16, dtype: 'int8c', tensor: uniform });
    expect(encodeFrame(f, undefined, { entropy: true })).toEqual(encodeFrame(f));
  });

  it('codes a constant (all-zero) tensor to a few bytes and decodes it exactly', () => {
    const f = frame({ rows: 1024, cols: 32, dtype: 'int4c', tensor: new Float32Array(1024 * 32) });
    const bytes = encodeFrame(f, undefined, { entropy: true });
    expect(bytes.length).toBeLessThan(HEADER_BYTES + 4 * 32 + 16);
    expect(decodeFrame(bytes).tensor.every((v) => v === 0)).toBe(true);
    // The expansion limit: a few bytes must not buy an arbitrary allocation.
    code(() => decodeFrame(bytes, { maxCodedValues: 1024 * 32 - 1 }), 'limits');
    expect(decodeFrame(bytes, { maxCodedValues: 1024 * 32 }).rows).toBe(1024);
  });

  it('works with error feedback', () => {
    const ef = new ErrorFeedback(512 * 8);
    const x = gaussianTensor(512, 8);
    const sum = new Float64Array(x.length);
    for (let t = 0; t < 20; t++) {
      const bytes = encodeFrame(frame({ kind: FrameKind.ReplicaWeights, rows: 512, cols: 8, dtype: 'int4c', tensor: x }), ef, { entropy: true });
      expect(flagsOf(bytes) & FLAG_ENTROPY).toBe(FLAG_ENTROPY);
      decodeFrame(bytes).tensor.forEach((v, i) => (sum[i] += v));
    }
    const err = Math.max(...Array.from(x, (v, i) => Math.abs(sum[i] / 20 - v)));
    expect(err).toBeLessThan(0.02);
  });

  it('rejects coded payloads that break the rules, with clear codes', () => {
    const rows = 40;
    const cols = 5;
    const n = rows * cols;
    const sym = (count: number, alphabet: number) => Uint8Array.from({ length: count }, (_, i) => ((i * 7) % 3 === 0 ? 1 : i % alphabet === 0 ? alphabet - 1 : 0));
    // Sanity: a well-formed crafted frame decodes.
    expect(decodeFrame(craft(rows, cols, 'int4c', encodeSymbols(sym(n, 16), 16))).rows).toBe(rows);
    expect(decodeFrame(craft(rows, cols, 'int8', encodeSymbols(sym(n, 256), 256))).rows).toBe(rows);
    // Too few values for the shape, too many (over the count limit), wrong alphabet (int8 symbol ≥ 16 for int4).
    expect(code(() => decodeFrame(craft(rows, cols, 'int4c', encodeSymbols(sym(n - 1, 16), 16))), 'entropy')).toMatch(/199 coded values, 40×5 needs 200/);
    expect(code(() => decodeFrame(craft(rows, cols, 'int4c', encodeSymbols(sym(n + 1, 16), 16))), 'entropy')).toMatch(/201 symbols exceed the limit of 200/);
    code(() => decodeFrame(craft(rows, cols, 'int4', encodeSymbols(sym(n, 256), 256))), 'entropy');
    // An empty stream for a non-empty tensor.
    code(() => decodeFrame(craft(rows, cols, 'int8c', encodeSymbols(new Uint8Array(0), 256))), 'entropy');
    // The declared payload must hold the scales plus coded bytes, and be smaller than raw.
    const good = craft(rows, cols, 'int8c', encodeSymbols(sym(n, 256), 256));
    const withPayloadBytes = (b: Uint8Array, v: number) => {
      const c = b.slice();
      new DataView(c.buffer).setUint32(24, v, true);
      return c;
    };
    expect(code(() => decodeFrame(withPayloadBytes(good, tensorBytes(rows, cols, 'int8c'))), 'length')).toMatch(/entropy-coded payloadBytes/);
    code(() => decodeFrame(withPayloadBytes(good, 4 * cols)), 'length');
    code(() => decodeFrame(craft(rows, cols, 'int8c', new Uint8Array(n))), 'length'); // as big as raw
    // Truncated or extended coded stream with a consistent header.
    const stream = encodeSymbols(sym(n, 256), 256);
    code(() => decodeFrame(craft(rows, cols, 'int8c', stream.subarray(0, stream.length - 1))), 'entropy');
    code(() => decodeFrame(craft(rows, cols, 'int8c', Uint8Array.from([...stream, 0]))), 'entropy');
    // Header-level truncation still reads as such.
    code(() => decodeFrame(good.subarray(0, good.length - 1)), 'truncated');
    // A non-finite scale in a coded frame.
    code(() => decodeFrame(craft(rows, cols, 'int4c', encodeSymbols(sym(n, 16), 16), Infinity)), 'nonfinite');
  });

  it('fuzz: corrupted coded frames decode to valid frames or throw WireError, never hang', () => {
    const r = rng(4242);
    const int = (k: number) => Math.floor(r() * k);
    const bases = Array.from({ length: 32 }, (_, i) => {
      const dtype = INT_DTYPES[i % 4];
      const rows = 64 + int(200);
      const cols = 1 + int(40);
      const g = gaussian(r);
      const skew = i % 3 === 0 ? 0.05 : 1; // some nearly-constant streams
      const bytes = encodeFrame(
        frame({
          rows,
          cols,
          dtype,
          tensor: Float32Array.from({ length: rows * cols }, (_, j) => (j % cols === 0 ? 1 : g() * skew)),
          tokens: i % 2 ? Uint16Array.from({ length: rows }, () => int(65536)) : undefined,
        }),
        undefined,
        { entropy: true },
      );
      return { bytes, scaleBytes: intLayout(rows, cols, dtype)!.scaleBytes, tokens: i % 2 ? 2 * rows : 0 };
    }).filter((b) => flagsOf(b.bytes) & FLAG_ENTROPY);
    expect(bases.length).toBeGreaterThan(24);
    const outcomes = new Map<string, number>();
    const t0 = performance.now();
    for (let it = 0; it < 2000; it++) {
      const b = bases[int(bases.length)];
      let bytes: Uint8Array = b.bytes.slice();
      const start = HEADER_BYTES + b.scaleBytes; // first byte of the coded stream
      const end = bytes.length - b.tokens;
      const setPayloadBytes = (v: number) => new DataView(bytes.buffer, bytes.byteOffset).setUint32(24, v, true);
      const op = int(6);
      if (op === 0) {
        // Cut the coded stream short, keeping the header consistent.
        const cut = 1 + int(Math.min(64, end - start));
        bytes = Uint8Array.from([...bytes.subarray(0, end - cut), ...bytes.subarray(end)]);
        setPayloadBytes(end - cut - HEADER_BYTES);
      } else if (op === 1) {
        // Flip bits in the coded stream, half of them in its head (count, table, state).
        for (let k = 1 + int(3); k > 0; k--) {
          const at = r() < 0.5 ? start + int(Math.min(24, end - start)) : start + int(end - start);
          bytes[at] ^= 1 << int(8);
        }
      } else if (op === 2) {
        // Bogus table: random bytes over the count/params/table region.
        for (let j = start + int(3); j < Math.min(end, start + 3 + int(40)); j++) bytes[j] = int(256);
      } else if (op === 3) {
        // Random garbage in place of the whole stream.
        for (let j = start; j < end; j++) bytes[j] = int(256);
      } else if (op === 4) {
        // Any random byte, header and scales included.
        for (let k = 1 + int(4); k > 0; k--) bytes[int(bytes.length)] = int(256);
      } else {
        bytes = bytes.subarray(0, int(bytes.length));
      }
      if (r() < 0.5) bytes = oddView(bytes);
      let outcome: string;
      try {
        const f = decodeFrame(bytes);
        expect(f.tensor.length).toBe(f.rows * f.cols);
        expect(f.tensor.every(Number.isFinite)).toBe(true);
        outcome = 'ok';
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        outcome = e.code;
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    const ms = performance.now() - t0;
    console.log('coded fuzz outcomes', Object.fromEntries(outcomes), `${ms.toFixed(0)} ms`);
    expect(outcomes.get('entropy')).toBeGreaterThan(500);
    expect(outcomes.get('ok')).toBeGreaterThan(10);
    expect(ms).toBeLessThan(20_000);
  });

  it('bytes per token at rows = 512 on Gaussian coefficients, header and scales amortized', () => {
    const rows = 512;
    const table: Record<string, number>[] = [];
    for (const k of [8, 16, 32, 64]) {
      const x = gaussianTensor(rows, k, gaussian(rng(k)));
      const row: Record<string, number> = { k };
      for (const dtype of ['int8', 'int8c', 'int4', 'int4c'] as const) {
        const f = frame({ rows, cols: k, dtype, tensor: x });
        const raw = encodeFrame(f).length;
        const coded = encodeFrame(f, undefined, { entropy: true }).length;
        if (dtype.endsWith('c')) expect(coded).toBeLessThan(raw);
        row[dtype] = raw / rows;
        row[`${dtype}+ec`] = coded / rows;
      }
      // Per-column scales beat per-row ones by 4 bytes per token less 4·k/rows.
      expect(row.int8 - row.int8c).toBeCloseTo(4 - (4 * k) / rows, 9);
      table.push(row);
    }
    console.table(table.map((row) => Object.fromEntries(Object.entries(row).map(([c, v]) => [c, c === 'k' ? v : v.toFixed(3)]))));
  });
});

describe('entropy-coded coefficients (e<b>: a step of each column RMS)', () => {
  const rows = 512;
  const k = 32;

  it('rounds every value to its column step (error ≤ step/2); the step is the RMS multiple, or absmax/127 where that would clip', () => {
    const x = gaussianTensor(rows, k, gaussian(rng(7)));
    // Column 3 has one outlier of 1000: at a fine step its RMS multiple would clip it, so absmax/127 is taken.
    x[5 * k + 3] = 1000;
    expect(quantStep(parseCodec('subspace:k=32:e3'))).toBeCloseTo(Math.sqrt(2 * Math.PI * Math.E) / 8, 12);
    for (const coeff of ['e3', 'e6']) {
      const step = quantStep(parseCodec(`subspace:k=32:${coeff}`))!;
      const plain = dequantize(quantize(x, rows, k, 'int8c', { step }), rows, k, 'int8c');
      // As sent: dithered, the dither derived from the header on both sides.
      const sent = decodeFrame(encodeFrame(frame({ rows, cols: k, dtype: 'int8c', tensor: x }), undefined, { entropy: true, step })).tensor;
      expectWithinHalfStep(x, plain, k, step, `${coeff} rounded`);
      expectWithinHalfStep(x, sent, k, step, `${coeff} dithered`);
      const steps = columnSteps(x, rows, k, step);
      expect(steps[4]).toBeLessThan(1.1 * step);
      if (coeff === 'e6') expect(steps[3]).toBeCloseTo(1000 / 127, 9);
      else expect(steps[3]).toBeGreaterThan(1000 / 127);
    }
    const step = quantStep(parseCodec('subspace:k=32:e3'))!;
    expect(() => quantize(x, rows, k, 'bf16', { step })).toThrow(/scaled-integer dtype/);
    expect(() => quantize(x, rows, k, 'int8c', { step: 0 })).toThrow(/positive and finite/);
  });

  it('dithered, a value far below the step decodes unbiased on average; rounded without dither it is lost', () => {
    const step = quantStep(parseCodec('subspace:k=32:e2'))!;
    // One column of ±1 (its RMS sets the step, 0.52) carrying a small signal of 0.05 in every other row.
    const x = Float32Array.from({ length: rows }, (_, r) => (r % 2 ? 0.05 : r % 4 ? 1 : -1));
    let sent = 0;
    let plain = 0;
    const frames = 200;
    for (let mb = 0; mb < frames; mb++) {
      const f = frame({ rows, cols: 1, dtype: 'int8c', tensor: x, microbatch: mb });
      const d = decodeFrame(encodeFrame(f, undefined, { step })).tensor;
      const p = dequantize(quantize(x, rows, 1, 'int8c', { step }), rows, 1, 'int8c');
      for (let r = 1; r < rows; r += 2) {
        sent += d[r];
        plain += p[r];
      }
    }
    const n = (frames * rows) / 2;
    expect(plain / n).toBe(0);
    // The dither's error is uniform in ±step/2: its mean over n values has sd step/√(12n) ≈ 0.0005.
    expect(Math.abs(sent / n - 0.05)).toBeLessThan(0.003);
  });

  it('a receiver takes a dithered frame only where its shape has a step, and the other way round', () => {
    const x = gaussianTensor(4, 8);
    const shape = { minRows: 4, maxRows: 4, cols: 8, dtype: 'int8c' as const, tokens: false };
    const dithered = encodeFrame(frame({ rows: 4, cols: 8, dtype: 'int8c', tensor: x }), undefined, { step: 0.5 });
    const plain = encodeFrame(frame({ rows: 4, cols: 8, dtype: 'int8c', tensor: x }));
    expect(decodeExpected(dithered, { [FrameKind.Activation]: { ...shape, step: 0.5 } }).tensor).toHaveLength(32);
    expect(() => decodeExpected(plain, { [FrameKind.Activation]: { ...shape, step: 0.5 } })).toThrow(/expected 4×8 int8c, dithered/);
    expect(() => decodeExpected(dithered, { [FrameKind.Activation]: shape })).toThrow(/is 4×8 int8c, dithered, expected 4×8 int8c$/);
    expect(() => encodeFrame(frame({ rows: 4, cols: 8, dtype: 'bf16', tensor: x }), undefined, { step: 0.5 })).toThrow(/scaled-integer dtype, not bf16/);
  });

  it('codes Gaussian coefficients at about b bits a value (frames, header and scales included), with the error of a uniform quantizer', () => {
    const x = gaussianTensor(rows, k, gaussian(rng(11)));
    for (const bits of [2, 3, 4]) {
      const step = quantStep(parseCodec(`subspace:k=${k}:e${bits}`))!;
      const bytes = encodeFrame(frame({ rows, cols: k, dtype: 'int8c', tensor: x }), undefined, { entropy: true, step });
      const perValue = (8 * bytes.length) / (rows * k);
      // High-rate theory: b bits; below ~3 bits the zero bin makes it a little cheaper.
      expect(perValue).toBeGreaterThan(bits - 0.4);
      expect(perValue).toBeLessThan(bits + 0.25);
      const back = decodeFrame(bytes).tensor;
      let mse = 0;
      for (let i = 0; i < x.length; i++) mse += (back[i] - x[i]) ** 2;
      // A uniform quantizer's noise is step²/12 of a unit-RMS value (less at coarse steps, where most values round to 0).
      expect(mse / x.length).toBeLessThan((1.1 * step * step) / 12);
    }
  });
});

describe('codec strings', () => {
  it('parses the listed forms and names them back', () => {
    const ok: [string, unknown, Dtype][] = [
      ['fp32', { kind: 'fp32' }, 'fp32'],
      ['bf16', { kind: 'bf16' }, 'bf16'],
      ['int8', { kind: 'int8' }, 'int8'],
      // Subspace coefficients get per-column scales; the dense int8 codec keeps per-row scales.
      ['subspace:k=32:int8', { kind: 'subspace', k: 32, coeff: 'int8' }, 'int8c'],
      ['subspace:k=8:int4', { kind: 'subspace', k: 8, coeff: 'int4' }, 'int4c'],
      ['subspace:k=64:fp16', { kind: 'subspace', k: 64, coeff: 'fp16' }, 'fp16'],
      ['subspace:k=1:fp32', { kind: 'subspace', k: 1, coeff: 'fp32' }, 'fp32'],
      // Entropy-coded at about b bits: int8 values with a finer or coarser step than absmax/127.
      ['subspace:k=24:e3', { kind: 'subspace', k: 24, coeff: 'e3' }, 'int8c'],
      ['subspace:k=32:e2.5', { kind: 'subspace', k: 32, coeff: 'e2.5' }, 'int8c'],
    ];
    for (const [text, spec, dtype] of ok) {
      const parsed = parseCodec(text);
      expect(parsed).toEqual(spec);
      expect(dtypeOf(parsed)).toBe(dtype);
      expect(codecName(parsed)).toBe(text);
    }
  });

  it('rejects anything else with a clear message', () => {
    const bad: [string, RegExp][] = [
      ['', /unknown codec ''.*expected/],
      ['fp16', /unknown codec 'fp16'/],
      ['int4', /unknown codec 'int4'/],
      ['FP32', /unknown codec/],
      ['subspace', /exactly a rank and a coefficient/],
      ['subspace:k=8', /exactly a rank and a coefficient/],
      ['subspace:k=8:int8:x', /exactly a rank and a coefficient/],
      ['subspace:k=0:int8', /k=<integer in 1\.\.65536>/],
      ['subspace:k=-3:int8', /k=<integer/],
      ['subspace:k=1.5:int8', /k=<integer/],
      ['subspace:k=abc:int8', /k=<integer/],
      ['subspace:k=:int8', /k=<integer/],
      ['subspace:k=08:int8', /k=<integer/],
      ['subspace:k=100000:int8', /k=<integer/],
      ['subspace:32:int8', /k=<integer/],
      ['subspace:k=8:bf16', /coefficient type 'bf16' must be one of fp32, fp16, int8, int4, e1.5, e2/],
      ['subspace:k=8:e7', /coefficient type 'e7' must be one of/],
      ['subspace:k=8:e', /coefficient type 'e' must be one of/],
    ];
    for (const [text, message] of bad) expect(() => parseCodec(text), text).toThrow(message);
  });
});
