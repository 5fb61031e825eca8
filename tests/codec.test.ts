import { describe, expect, it } from 'vitest';
import { DTYPES, type Dtype, ErrorFeedback, bytesPerRow, codecName, dequantize, dtypeOf, parseCodec, quantize } from '../shared/codec.js';
import { gaussian, rng } from '../shared/model.js';
import { type Frame, FrameKind, HEADER_BYTES, WireError, type WireErrorCode, decodeFrame, encodeFrame, frameBytes } from '../shared/wire.js';

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
  const fill = (rows: number, cols: number, f: (r: number, c: number) => number) =>
    Float32Array.from({ length: rows * cols }, (_, i) => f(Math.floor(i / cols), i % cols));
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

  for (const [dtype, L] of [['int8', 127], ['int4', 7]] as const) {
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

  it('int4 packs two values per byte, low nibble first, each row on a fresh byte', () => {
    // Row 0 = [7, -7, 1] with scale 1 → nibbles 0x7, 0x9, 0x1 (+ pad 0); row 1 = [0, 0, 0].
    const bytes = quantize(Float32Array.from([7, -7, 1, 0, 0, 0]), 2, 3, 'int4');
    expect(Array.from(bytes.subarray(8))).toEqual([0x97, 0x01, 0x00, 0x00]);
    expect(new DataView(bytes.buffer).getFloat32(0, true)).toBe(1);
    expect(new DataView(bytes.buffer).getFloat32(4, true)).toBe(0);
  });

  it('bytesPerRow matches quantize for every dtype and width', () => {
    for (const dtype of DTYPES) {
      for (const cols of [1, 2, 7, 32, 33, 128]) {
        expect(quantize(new Float32Array(3 * cols).fill(0.5), 3, cols, dtype).length).toBe(3 * bytesPerRow(cols, dtype));
      }
    }
  });

  it('rejects shapes that do not match', () => {
    expect(() => quantize(new Float32Array(6), 2, 4, 'fp32')).toThrow(/do not form 2×4/);
    expect(() => dequantize(new Uint8Array(5), 1, 2, 'fp16')).toThrow(/expected 4/);
  });
});

describe('known bit patterns and ties to even', () => {
  it('fp16 encodes IEEE half bit patterns', () => {
    const cases: [number, number][] = [
      [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [2 ** -24, 0x0001], [0.1, 0x2e66], [0, 0x0000], [-0, 0x8000],
      [2 ** -14, 0x0400], [2 ** -14 - 2 ** -24, 0x03ff], [1 / 3, 0x3555], [2 ** -26, 0x0000],
      // Saturation instead of Inf: IEEE would give Inf (0x7c00) from 65520 upward.
      [65519, 0x7bff], [65520, 0x7bff], [1e6, 0x7bff], [-1e30, 0xfbff], [3.4e38, 0x7bff],
    ];
    expect(u16s(cases.map((c) => c[0]), 'fp16').map((h) => h.toString(16))).toEqual(cases.map((c) => c[1].toString(16)));
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
    expect(u16s(cases.map((c) => c[0]), 'fp16').map((h) => h.toString(16))).toEqual(cases.map((c) => c[1].toString(16)));
  });

  it('bf16 encodes known patterns, ties to even, saturates f32 max', () => {
    const f32max = 3.4028234663852886e38;
    const cases: [number, number][] = [
      [1, 0x3f80], [-2, 0xc000], [0.1, 0x3dcd],
      [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [1 + 2 ** -8 + 2 ** -20, 0x3f81], [-(1 + 2 ** -8), 0xbf80],
      [2 - 2 ** -23, 0x4000],
      [f32max, 0x7f7f], [-f32max, 0xff7f],
    ];
    expect(u16s(cases.map((c) => c[0]), 'bf16').map((h) => h.toString(16))).toEqual(cases.map((c) => c[1].toString(16)));
  });

  it('fp16 and bf16 decode known bit patterns', () => {
    expect(fromU16s([0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x3555, 0x8000], 'fp16')).toEqual([
      1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 0.333251953125, -0,
    ]);
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
      const f = decodeFrame(encodeFrame({ kind: FrameKind.ReplicaWeights, step: t, microbatch: 0, rows: 1, cols: x.length, dtype: 'int4', tensor: x }, ef));
      f.tensor.forEach((v, i) => (sum[i] += v));
    }
    expect(meanError(sum, 200)).toBeLessThan(1e-3);
    expect(() => ef.apply(new Float32Array(4), 2, 2, 'int4')).toThrow(/carries 9/);
  });
});

describe('wire frames', () => {
  const tensor = Float32Array.from({ length: 3 * 7 }, () => normal());
  const base = (over: Partial<Frame> = {}): Frame => ({ kind: FrameKind.Activation, step: 123456, microbatch: 7, rows: 3, cols: 7, dtype: 'fp32', tensor, ...over });

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

  it('lays out the header as specified', () => {
    const bytes = encodeFrame(base({ dtype: 'int8', kind: FrameKind.Gradient, tokens: Uint16Array.from([1, 2, 3]) }));
    const v = new DataView(bytes.buffer);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x4d, 0x52, 0x57, 0x53]);
    expect([v.getUint8(4), v.getUint8(5), v.getUint8(6), v.getUint8(7)]).toEqual([1, 2, 4, 1]);
    expect([8, 12, 16, 20, 24, 28].map((o) => v.getUint32(o, true))).toEqual([123456, 7, 3, 7, 3 * (4 + 7), 0]);
    expect(v.getUint16(bytes.length - 2, true)).toBe(3);
  });

  it('frameBytes equals the encoded length for every dtype', () => {
    const perRow = { fp32: (c: number) => 4 * c, bf16: (c: number) => 2 * c, fp16: (c: number) => 2 * c, int8: (c: number) => 4 + c, int4: (c: number) => 4 + Math.ceil(c / 2) };
    for (const dtype of DTYPES) {
      for (const [rows, cols] of [[1, 1], [3, 7], [5, 33], [2, 128]]) {
        for (const withTokens of [false, true]) {
          const f = base({ dtype, rows, cols, tensor: new Float32Array(rows * cols).fill(-1.5), tokens: withTokens ? new Uint16Array(rows) : undefined });
          const n = encodeFrame(f).length;
          expect(frameBytes(rows, cols, dtype, withTokens)).toBe(n);
          expect(n).toBe(HEADER_BYTES + rows * perRow[dtype](cols) + (withTokens ? 2 * rows : 0));
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
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(5, 5))), 'kind');
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(6, 0))), 'dtype');
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(6, 99))), 'dtype');
    code(() => decodeFrame(patched(base(), (v) => v.setUint8(7, 0x02))), 'reserved');
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

  it('encodeFrame refuses what a receiver would reject', () => {
    const bad = Float32Array.from(tensor, (x, i) => (i === 5 ? NaN : x));
    expect(code(() => encodeFrame(base({ tensor: bad })), 'nonfinite')).toMatch(/value 5 \(row 0, col 5\)/);
    code(() => encodeFrame(base({ tensor: tensor.subarray(1) })), 'length');
    code(() => encodeFrame(base({ tokens: new Uint16Array(2) })), 'length');
    code(() => encodeFrame(base({ tokens: Int32Array.from([1, 70000, 2]) as unknown as Uint16Array })), 'limits');
    code(() => encodeFrame(base({ kind: 9 as FrameKind })), 'kind');
    code(() => encodeFrame(base({ dtype: 'fp8' as Dtype })), 'dtype');
    code(() => encodeFrame(base({ step: -1 })), 'limits');
  });

  it('fuzz: mutated frames decode to valid frames or throw WireError, nothing else', () => {
    const r = rng(777);
    const int = (n: number) => Math.floor(r() * n);
    const bases = Array.from({ length: 24 }, (_, i) => {
      const rows = 1 + int(5);
      const cols = 1 + int(40);
      const g = gaussian(r);
      return encodeFrame({
        kind: (1 + (i % 4)) as FrameKind, step: int(1e6), microbatch: int(100), rows, cols, dtype: DTYPES[i % DTYPES.length],
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

describe('codec strings', () => {
  it('parses the listed forms and names them back', () => {
    const ok: [string, unknown, Dtype][] = [
      ['fp32', { kind: 'fp32' }, 'fp32'],
      ['bf16', { kind: 'bf16' }, 'bf16'],
      ['int8', { kind: 'int8' }, 'int8'],
      ['subspace:k=32:int8', { kind: 'subspace', k: 32, coeff: 'int8' }, 'int8'],
      ['subspace:k=8:int4', { kind: 'subspace', k: 8, coeff: 'int4' }, 'int4'],
      ['subspace:k=64:fp16', { kind: 'subspace', k: 64, coeff: 'fp16' }, 'fp16'],
      ['subspace:k=1:fp32', { kind: 'subspace', k: 1, coeff: 'fp32' }, 'fp32'],
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
      ['subspace:k=8:bf16', /coefficient type 'bf16' must be one of fp32, fp16, int8, int4/],
    ];
    for (const [text, message] of bad) expect(() => parseCodec(text), text).toThrow(message);
  });
});
