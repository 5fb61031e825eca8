// Boundary-tensor codecs (ARCHITECTURE §3–4): how a [rows × cols] Float32Array (rows = tokens of a
// microbatch, cols = d_model or the subspace rank k) becomes bytes on the wire and back. Pure and
// environment-agnostic: typed arrays and DataView only, little-endian bytes on any host.
import { type CodecSpec, SUBSPACE_COEFFS } from './codec-spec.js';

/** What a run sends across a stage boundary (chosen on the command line; schema in protocol.ts). */
export type { CodecSpec };

/**
 * Element encoding actually applied to the tensor on the wire. int8/int4 carry one f32 absmax
 * scale per row (token); int8c/int4c one per column (subspace direction), stored once per frame.
 */
export type Dtype = 'fp32' | 'bf16' | 'fp16' | 'int8' | 'int4' | 'int8c' | 'int4c';

export const DTYPES: readonly Dtype[] = ['fp32', 'bf16', 'fp16', 'int8', 'int4', 'int8c', 'int4c'];

/** The scaled-integer encodings. */
export type IntDtype = 'int8' | 'int4' | 'int8c' | 'int4c';

/** Largest subspace rank a codec string may ask for; matches the wire's default column cap. */
const MAX_K = 1 << 16;

/**
 * The wire dtype of a codec. Subspace coefficients use per-COLUMN scales ('int8' → 'int8c',
 * 'int4' → 'int4c'): each column is one basis direction with its own spread across tokens, so a
 * column's absmax is the right statistic, and k scales per frame (amortized over 512–1024 tokens)
 * cost far less than a 4-byte scale per token, which at k = 16 int8 would be 20% of the payload.
 * The dense 'int8' codec keeps per-ROW scales: there cols = d_model (hundreds to thousands), so a
 * row scale is a small share of the row, and it tracks what varies most across a residual stream:
 * the norm of each token's vector.
 */
export function dtypeOf(spec: CodecSpec): Dtype {
  if (spec.kind !== 'subspace') return spec.kind;
  if (spec.coeff === 'fp32' || spec.coeff === 'fp16') return spec.coeff;
  return spec.coeff === 'int4' ? 'int4c' : 'int8c';
}

/** √(2πe): a Gaussian of RMS σ quantized with step Δ carries about log2(√(2πe)·σ/Δ) bits a value. */
const GAUSS_BITS_AT_UNIT_STEP = Math.log2(Math.sqrt(2 * Math.PI * Math.E));

/**
 * The quantizer step of an entropy-coded codec (e<b>), as a multiple of each column's RMS, or
 * undefined for the others (their int8/int4 scale is the column's absmax). Chosen so that a
 * Gaussian column costs about b bits a value after entropy coding: step = 2^(log2 √(2πe) − b).
 * Unlike absmax, the step does not grow with the frame's largest value, and the rounding error
 * (≤ step/2 a value) is the same at any bit rate the entropy coder then reaches.
 */
export function quantStep(spec: CodecSpec): number | undefined {
  if (spec.kind !== 'subspace' || !spec.coeff.startsWith('e')) return undefined;
  return 2 ** (GAUSS_BITS_AT_UNIT_STEP - Number(spec.coeff.slice(1)));
}

const FORMS = `'fp32', 'bf16', 'int8' or 'subspace:k=<positive integer>:<${SUBSPACE_COEFFS.join('|')}>'`;

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
  const coeff = SUBSPACE_COEFFS.find((c) => c === parts[2]);
  if (!coeff) throw new Error(`codec '${text}': coefficient type '${parts[2]}' must be one of ${SUBSPACE_COEFFS.join(', ')}`);
  return { kind: 'subspace', k: Number(k[1]), coeff };
}

/** Inverse of parseCodec. */
export function codecName(spec: CodecSpec): string {
  return spec.kind === 'subspace' ? `subspace:k=${spec.k}:${spec.coeff}` : spec.kind;
}

/**
 * How a scaled-integer tensor is laid out: `scaleBytes` of f32 scales (one per row, or one per
 * column for the …c dtypes), then `rows` rows of `rowBytes` each. An int4 row packs two values per
 * byte, low nibble first, and starts on a fresh byte (odd cols leave a zero pad nibble).
 */
export interface IntLayout {
  dtype: IntDtype;
  /** Quantization levels each side of zero: q ∈ [−levels, levels]. */
  levels: 127 | 7;
  bits: 8 | 4;
  perColumn: boolean;
  scaleBytes: number;
  rowBytes: number;
}

/** The layout of a scaled-integer dtype, or undefined for the float dtypes. */
export function intLayout(rows: number, cols: number, dtype: Dtype): IntLayout | undefined {
  switch (dtype) {
    case 'fp32':
    case 'bf16':
    case 'fp16':
      return undefined;
    case 'int8':
    case 'int4':
    case 'int8c':
    case 'int4c': {
      const bits = dtype === 'int8' || dtype === 'int8c' ? 8 : 4;
      const perColumn = dtype === 'int8c' || dtype === 'int4c';
      return {
        dtype,
        levels: bits === 8 ? 127 : 7,
        bits,
        perColumn,
        scaleBytes: 4 * (perColumn ? cols : rows),
        rowBytes: bits === 8 ? cols : Math.ceil(cols / 2),
      };
    }
  }
}

/**
 * Exact size in bytes of a quantized [rows × cols] tensor: the single source of truth for
 * quantize's output, dequantize's input and the wire's payload accounting.
 */
export function tensorBytes(rows: number, cols: number, dtype: Dtype): number {
  switch (dtype) {
    case 'fp32':
      return 4 * rows * cols;
    case 'bf16':
    case 'fp16':
      return 2 * rows * cols;
    case 'int8':
    case 'int4':
    case 'int8c':
    case 'int4c': {
      const l = intLayout(rows, cols, dtype)!;
      return l.scaleBytes + rows * l.rowBytes;
    }
    default:
      throw new RangeError(`unknown dtype '${dtype as string}'`);
  }
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkShape(n: number, rows: number, cols: number, what: string): void {
  if (!(Number.isInteger(rows) && rows >= 0 && Number.isInteger(cols) && cols >= 0)) {
    throw new RangeError(`${what}: rows=${rows}, cols=${cols} must be non-negative integers`);
  }
  if (n !== rows * cols) throw new RangeError(`${what}: ${n} values do not form ${rows}×${cols}`);
}

/**
 * Encode x (finite by contract: encodeFrame checks before calling) as `dtype`.
 * Layout: fp32/bf16/fp16 are plain little-endian element arrays. The scaled-integer dtypes are
 * their f32 scales first (int8/int4: one per row, 4·rows bytes; int8c/int4c: one per column,
 * 4·cols bytes), then the rows of signed values; an int4/int4c row packs two values per byte, low
 * nibble first, and starts on a fresh byte (see IntLayout). Always tensorBytes(rows, cols) long.
 * Scaled-integer options: `step` makes each scale that multiple of its row's or column's RMS
 * instead of absmax/L, raised to absmax/L where that would clip (see quantStep); `dither` (one
 * value in [−½, ½) per element, see dither()) is added before rounding and taken off again by
 * dequantize with the same dither, so the error is uniform and independent of the value: the
 * decoded tensor is unbiased however coarse the step.
 */
export function quantize(x: Float32Array, rows: number, cols: number, dtype: Dtype, o: ScaledOptions = {}): Uint8Array {
  checkShape(x.length, rows, cols, 'quantize');
  const { step, dither } = o;
  if ((step !== undefined || dither) && !intLayout(rows, cols, dtype)) throw new RangeError(`quantize: a step or dither needs a scaled-integer dtype, not ${dtype}`);
  if (step !== undefined && !(step > 0 && Number.isFinite(step))) throw new RangeError(`quantize: the step ${step} must be positive and finite`);
  if (dither && dither.length !== x.length) throw new RangeError(`quantize: ${dither.length} dither values for ${x.length} elements`);
  const out = new Uint8Array(tensorBytes(rows, cols, dtype));
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
    case 'int8c':
    case 'int4c':
      quantizeScaled(x, rows, cols, intLayout(rows, cols, dtype)!, out, view, o);
      break;
  }
  return out;
}

/** How quantize chose a scaled-integer payload's scales and rounding. */
export interface ScaledOptions {
  step?: number;
  dither?: Float32Array;
}

/**
 * Decode `bytes` (any byteOffset; exactly tensorBytes(rows, cols, dtype) long), with the dither it
 * was quantized with, if any. Does not check finiteness.
 */
export function dequantize(bytes: Uint8Array, rows: number, cols: number, dtype: Dtype, dither?: Float32Array): Float32Array {
  checkShape(rows * cols, rows, cols, 'dequantize');
  if (dither && !(intLayout(rows, cols, dtype) && dither.length === rows * cols)) throw new RangeError(`dequantize: no ${rows}×${cols} dither for ${dtype}`);
  const expected = tensorBytes(rows, cols, dtype);
  if (bytes.length !== expected) {
    throw new RangeError(`dequantize: ${bytes.length} bytes, expected ${expected} for ${rows}×${cols} ${dtype}`);
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
    const l = intLayout(rows, cols, dtype)!;
    const scales = readScales(view, l.scaleBytes / 4);
    for (let r = 0; r < rows; r++) {
      const base = l.scaleBytes + r * l.rowBytes;
      const o = r * cols;
      for (let c = 0; c < cols; c++) {
        const q = l.bits === 8 ? (bytes[base + c] << 24) >> 24 : ((bytes[base + (c >> 1)] >> (4 * (c & 1))) << 28) >> 28;
        out[o + c] = (dither ? q - dither[o + c] : q) * (l.perColumn ? scales[c] : scales[r]);
      }
    }
  }
  return out;
}

/** The first n little-endian f32 values of a view, as numbers (exactly the stored f32 values). */
function readScales(view: DataView, n: number): Float32Array {
  const scales = new Float32Array(n);
  for (let i = 0; i < n; i++) scales[i] = view.getFloat32(4 * i, true);
  return scales;
}

/**
 * Absmax quantization, per row (int8/int4) or per column (int8c/int4c): scale = max|x|/L over the
 * row or column, q = round(x/scale) ∈ [−L, L]; an all-zero row or column has scale 0 (all q = 0).
 * With `step`: scale = max(step·RMS, max|x|/L) over the row or column; with `dither`, q = round(x/scale + u).
 */
function quantizeScaled(x: Float32Array, rows: number, cols: number, l: IntLayout, out: Uint8Array, view: DataView, { step, dither }: ScaledOptions): void {
  const { levels: L, perColumn, scaleBytes, rowBytes } = l;
  const maxAbs = new Float64Array(perColumn ? cols : rows);
  const sumSq = new Float64Array(perColumn ? cols : rows);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const j = perColumn ? c : r;
      const v = x[r * cols + c];
      maxAbs[j] = Math.max(maxAbs[j], Math.abs(v));
      sumSq[j] += v * v;
    }
  }
  const count = perColumn ? rows : cols;
  const scaleOf = (j: number) => (step === undefined ? maxAbs[j] / L : Math.max(step * Math.sqrt(sumSq[j] / count), maxAbs[j] / L));
  // Round each scale to f32 first: the receiver multiplies by this exact stored value.
  const scales = Float32Array.from(maxAbs, (_, j) => scaleOf(j));
  for (let j = 0; j < scales.length; j++) view.setFloat32(4 * j, scales[j], true);
  for (let r = 0; r < rows; r++) {
    const base = scaleBytes + r * rowBytes;
    const rowScale = perColumn ? 0 : scales[r];
    for (let c = 0; c < cols; c++) {
      const scale = perColumn ? scales[c] : rowScale;
      const v = scale > 0 ? x[r * cols + c] / scale + (dither ? dither[r * cols + c] : 0) : 0;
      // Round half away from zero (symmetric, so no sign-dependent bias), clamp for float slop.
      const m = Math.min(L, Math.round(Math.abs(v)));
      const q = v < 0 ? -m : m;
      if (L === 127) out[base + c] = q & 0xff;
      else out[base + (c >> 1)] |= (q & 0xf) << (4 * (c & 1));
    }
  }
}

/** A 32-bit integer hash (lowbias32): every bit of the input moves about half the output's. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * `n` dither values in [−½, ½) from a seed: the same on every host (integer arithmetic only), so a
 * receiver or a witness derives a frame's dither from its header instead of receiving it.
 */
export function dither(seed: readonly number[], n: number): Float32Array {
  const s = seed.reduce((h, v) => mix32(h ^ mix32(v >>> 0)), 0x9e3779b9);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mix32((s + Math.imul(i, 0x9e3779b9)) >>> 0) / 2 ** 32 - 0.5;
  return out;
}

/**
 * The quantized values of a scaled-integer payload as a symbol stream for entropy coding: one
 * symbol per value in row-major order, the two's-complement bits of q (int8: a byte, alphabet
 * 256; int4: a nibble, alphabet 16). int4 pad nibbles are not symbols. The scales are not included.
 */
export function intSymbols(payload: Uint8Array, rows: number, cols: number, dtype: IntDtype): Uint8Array {
  const l = intLayout(rows, cols, dtype)!;
  if (payload.length !== tensorBytes(rows, cols, dtype)) throw new RangeError(`intSymbols: ${payload.length} bytes is not a ${rows}×${cols} ${dtype} payload`);
  const values = payload.subarray(l.scaleBytes);
  if (l.bits === 8) return values.slice();
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = (values[r * l.rowBytes + (c >> 1)] >> (4 * (c & 1))) & 0xf;
  }
  return out;
}

/** Inverse of intSymbols: the payload from its raw scale bytes and rows·cols symbols (pad nibbles zero). */
export function intPayload(scaleBytes: Uint8Array, symbols: Uint8Array, rows: number, cols: number, dtype: IntDtype): Uint8Array {
  const l = intLayout(rows, cols, dtype)!;
  if (scaleBytes.length !== l.scaleBytes || symbols.length !== rows * cols) {
    throw new RangeError(`intPayload: ${scaleBytes.length} scale bytes and ${symbols.length} symbols do not form a ${rows}×${cols} ${dtype} payload`);
  }
  const out = new Uint8Array(tensorBytes(rows, cols, dtype));
  out.set(scaleBytes);
  if (l.bits === 8) {
    out.set(symbols, l.scaleBytes);
  } else {
    for (let r = 0; r < rows; r++) {
      const base = l.scaleBytes + r * l.rowBytes;
      for (let c = 0; c < cols; c++) out[base + (c >> 1)] |= (symbols[r * cols + c] & 0xf) << (4 * (c & 1));
    }
  }
  return out;
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
