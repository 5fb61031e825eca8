// Boundary-tensor codecs (ARCHITECTURE §3–4): how a [rows × cols] Float32Array (rows = tokens of a
// microbatch, cols = d_model or the subspace rank k) becomes bytes on the wire and back. Pure and
// environment-agnostic: typed arrays and DataView only, little-endian bytes on any host.

import type { CodecSpec } from './protocol.js';

/** What a run sends across a stage boundary (chosen on the command line; schema in protocol.ts). */
export type { CodecSpec };

/** Element encoding actually applied to the tensor on the wire. */
export type Dtype = 'fp32' | 'bf16' | 'fp16' | 'int8' | 'int4';

export const DTYPES: readonly Dtype[] = ['fp32', 'bf16', 'fp16', 'int8', 'int4'];

/** Largest subspace rank a codec string may ask for; matches the wire's default column cap. */
const MAX_K = 1 << 16;

export function dtypeOf(spec: CodecSpec): Dtype {
  return spec.kind === 'subspace' ? spec.coeff : spec.kind;
}

const FORMS = "'fp32', 'bf16', 'int8' or 'subspace:k=<positive integer>:<fp32|fp16|int8|int4>'";

/** Parse a CLI codec string such as `bf16` or `subspace:k=32:int8`; throws naming the accepted forms. */
export function parseCodec(text: string): CodecSpec {
  const s = text.trim();
  if (s === 'fp32' || s === 'bf16' || s === 'int8') return { kind: s };
  const parts = s.split(':');
  if (parts[0] !== 'subspace') throw new Error(`unknown codec '${text}': expected ${FORMS}`);
  if (parts.length !== 3) throw new Error(`codec '${text}': subspace needs exactly a rank and a coefficient type, e.g. 'subspace:k=32:int8'`);
  const k = /^k=([1-9][0-9]*)$/.exec(parts[1]);
  if (!k || Number(k[1]) > MAX_K) {
    throw new Error(`codec '${text}': '${parts[1]}' must be k=<integer in 1..${MAX_K}>, e.g. k=32`);
  }
  const coeff = parts[2];
  if (coeff !== 'fp32' && coeff !== 'fp16' && coeff !== 'int8' && coeff !== 'int4') {
    throw new Error(`codec '${text}': coefficient type '${coeff}' must be one of fp32, fp16, int8, int4`);
  }
  return { kind: 'subspace', k: Number(k[1]), coeff };
}

/** Inverse of parseCodec. */
export function codecName(spec: CodecSpec): string {
  return spec.kind === 'subspace' ? `subspace:k=${spec.k}:${spec.coeff}` : spec.kind;
}

/**
 * Bytes one row occupies. Quantized rows carry their own f32 scale and int4 rows are padded to a
 * whole byte, so a tensor is always exactly rows · bytesPerRow(cols) bytes.
 */
export function bytesPerRow(cols: number, dtype: Dtype): number {
  switch (dtype) {
    case 'fp32':
      return 4 * cols;
    case 'bf16':
    case 'fp16':
      return 2 * cols;
    case 'int8':
      return 4 + cols;
    case 'int4':
      return 4 + Math.ceil(cols / 2);
  }
}

/** Quantization levels each side of zero for the scaled integer encodings. */
const LEVELS = { int8: 127, int4: 7 } as const;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkShape(n: number, rows: number, cols: number, what: string): void {
  if (!(Number.isInteger(rows) && rows >= 0 && Number.isInteger(cols) && cols >= 0)) {
    throw new RangeError(`${what}: rows=${rows}, cols=${cols} must be non-negative integers`);
  }
  if (n !== rows * cols) throw new RangeError(`${what}: ${n} values do not form ${rows}×${cols}`);
}

/**
 * Encode x (finite by contract: encodeFrame checks before calling) as `dtype`.
 * Layout: fp32/bf16/fp16 are plain little-endian element arrays. int8/int4 are all rows' f32
 * scales first (4 bytes each), then the rows of signed values; an int4 row packs two values per
 * byte, low nibble first, and starts on a fresh byte.
 */
export function quantize(x: Float32Array, rows: number, cols: number, dtype: Dtype): Uint8Array {
  checkShape(x.length, rows, cols, 'quantize');
  const out = new Uint8Array(rows * bytesPerRow(cols, dtype));
  const view = new DataView(out.buffer);
  // A Float32Array's byteOffset is a multiple of 4, so its bits can be read in place.
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  switch (dtype) {
    case 'fp32':
      if (LITTLE_ENDIAN_HOST) out.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
      else for (let i = 0; i < x.length; i++) view.setFloat32(4 * i, x[i], true);
      break;
    case 'bf16':
      for (let i = 0; i < x.length; i++) view.setUint16(2 * i, bf16Bits(bits[i]), true);
      break;
    case 'fp16':
      for (let i = 0; i < x.length; i++) view.setUint16(2 * i, halfBits(bits[i]), true);
      break;
    case 'int8':
    case 'int4':
      quantizeScaled(x, rows, cols, dtype, out, view);
      break;
  }
  return out;
}

/** Decode `bytes` (any byteOffset; exactly rows · bytesPerRow(cols) long). Does not check finiteness. */
export function dequantize(bytes: Uint8Array, rows: number, cols: number, dtype: Dtype): Float32Array {
  checkShape(rows * cols, rows, cols, 'dequantize');
  if (bytes.length !== rows * bytesPerRow(cols, dtype)) {
    throw new RangeError(`dequantize: ${bytes.length} bytes, expected ${rows * bytesPerRow(cols, dtype)} for ${rows}×${cols} ${dtype}`);
  }
  const n = rows * cols;
  // DataView reads have no alignment requirement, so a pooled/offset view needs no copy.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'fp32') {
    if (LITTLE_ENDIAN_HOST) return new Float32Array(bytes.slice().buffer);
    return Float32Array.from({ length: n }, (_, i) => view.getFloat32(4 * i, true));
  }
  const out = new Float32Array(n);
  if (dtype === 'bf16') {
    const outBits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) outBits[i] = view.getUint16(2 * i, true) << 16;
  } else if (dtype === 'fp16') {
    const table = halfTable();
    for (let i = 0; i < n; i++) out[i] = table[view.getUint16(2 * i, true)];
  } else {
    // Values a peer may send but we never produce (int8 −128, int4 −8) decode harmlessly as
    // q·scale; a non-finite scale surfaces as non-finite output, which decodeFrame rejects.
    const rowBytes = dtype === 'int8' ? cols : Math.ceil(cols / 2);
    for (let r = 0; r < rows; r++) {
      const scale = view.getFloat32(4 * r, true);
      const base = 4 * rows + r * rowBytes;
      for (let c = 0; c < cols; c++) {
        const q = dtype === 'int8' ? view.getInt8(base + c) : ((bytes[base + (c >> 1)] >> (4 * (c & 1))) << 28) >> 28;
        out[r * cols + c] = q * scale;
      }
    }
  }
  return out;
}

/** Per-row absmax: scale = max|x|/L, q = round(x/scale) ∈ [−L, L]; an all-zero row has scale 0. */
function quantizeScaled(x: Float32Array, rows: number, cols: number, dtype: 'int8' | 'int4', out: Uint8Array, view: DataView): void {
  const L = LEVELS[dtype];
  const rowBytes = dtype === 'int8' ? cols : Math.ceil(cols / 2);
  for (let r = 0; r < rows; r++) {
    let maxAbs = 0;
    for (let c = 0; c < cols; c++) maxAbs = Math.max(maxAbs, Math.abs(x[r * cols + c]));
    // Round the scale to f32 first: the receiver multiplies by this exact stored value.
    const scale = Math.fround(maxAbs / L);
    view.setFloat32(4 * r, scale, true);
    const base = 4 * rows + r * rowBytes;
    for (let c = 0; c < cols; c++) {
      const v = scale > 0 ? x[r * cols + c] / scale : 0;
      // Round half away from zero (symmetric, so no sign-dependent bias), clamp for float slop.
      const q = Math.max(-L, Math.min(L, Math.sign(v) * Math.round(Math.abs(v))));
      if (dtype === 'int8') view.setInt8(base + c, q);
      else out[base + (c >> 1)] |= (q & 0xf) << (4 * (c & 1));
    }
  }
}

/** f32 bits → bf16 bits, round to nearest, ties to even, on the dropped low 16 bits. */
function bf16Bits(u: number): number {
  const h = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
  // Only a finite value within half an ulp of f32 max rounds up to ±Inf here; inputs are
  // finite by contract, so keep them finite: saturate to ±max finite bf16 (0x7f7f).
  return (h & 0x7fff) === 0x7f80 ? (h & 0x8000) | 0x7f7f : h;
}

/**
 * f32 bits → IEEE 754 half bits, round to nearest, ties to even, with subnormals. Magnitudes
 * above 65504 saturate to ±65504 instead of becoming ±Inf: boundary tensors are finite by
 * contract (the receiver rejects Inf), and a clipped outlier is better than a dead frame.
 */
function halfBits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const abs = u & 0x7fffffff;
  if (abs > 0x477fe000) return sign | 0x7bff; // > 65504 (also Inf; NaN never reaches here)
  const e = (abs >>> 23) - 127;
  if (e >= -14) {
    // Normal half: keep 10 of the 23 mantissa bits; a carry into the exponent is still correct.
    const mant = abs & 0x7fffff;
    const h = ((e + 15) << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    return sign | (rem > 0x1000 || (rem === 0x1000 && h & 1) ? h + 1 : h);
  }
  if (e < -25) return sign; // below half the smallest subnormal (2^-25): ±0
  // Subnormal half counts units of 2^-24; the value is mant·2^(e-23) = (mant >> -(e+1)) units.
  const mant = (abs & 0x7fffff) | 0x800000;
  const shift = -e - 1; // 14..24
  const h = mant >>> shift;
  const rem = mant & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return sign | (rem > half || (rem === half && h & 1) ? h + 1 : h);
}

let HALF_TABLE: Float32Array | undefined;

/** All 65536 half values, built once: decoding is then a table lookup. */
function halfTable(): Float32Array {
  if (!HALF_TABLE) {
    HALF_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) {
      const e = (h >> 10) & 0x1f;
      const m = h & 0x3ff;
      const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1024 + m) * 2 ** (e - 25);
      HALF_TABLE[h] = h & 0x8000 ? -v : v;
    }
  }
  return HALF_TABLE;
}

/**
 * Error feedback for low-bit streams: the quantization error of each call is carried into the
 * next, so over many calls the sum of what was sent tracks the sum of the inputs (no fixed bias).
 * Only meaningful for a stream whose successive tensors mean the same thing — e.g. a replica's
 * weight deltas for averaging — NOT for per-microbatch activations or gradients, where the
 * residual of one microbatch would corrupt an unrelated one.
 */
export class ErrorFeedback {
  private readonly residual: Float32Array;

  constructor(readonly n: number) {
    this.residual = new Float32Array(n);
  }

  /** Quantize x + residual and keep the new residual (x + r − dequant(q)). */
  apply(x: Float32Array, rows: number, cols: number, dtype: Dtype): Uint8Array {
    checkShape(x.length, rows, cols, 'ErrorFeedback.apply');
    if (x.length !== this.n) throw new RangeError(`ErrorFeedback.apply: ${x.length} values, this stream carries ${this.n}`);
    const y = new Float32Array(this.n);
    for (let i = 0; i < this.n; i++) {
      y[i] = x[i] + this.residual[i];
      if (!Number.isFinite(y[i])) throw new RangeError(`ErrorFeedback.apply: value ${i} plus its residual is ${y[i]}`);
    }
    const q = quantize(y, rows, cols, dtype);
    const back = dequantize(q, rows, cols, dtype);
    for (let i = 0; i < this.n; i++) this.residual[i] = y[i] - back[i];
    return q;
  }

  /** Forget the carried error (e.g. after the stream's meaning changes). */
  reset(): void {
    this.residual.fill(0);
  }
}
