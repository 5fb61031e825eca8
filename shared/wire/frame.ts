// Binary frames for boundary tensors between pipeline stages (ARCHITECTURE §3). A fixed 32-byte
// little-endian header, the quantized tensor, then optional u16 token ids. No JSON: a peer's bytes
// are validated field by field and never trusted, so a malicious or buggy peer can only earn a
// WireError, never a crash, a huge allocation or a NaN inside our model.
//
//   off size field
//     0  4   magic 0x5357524d ("SWRM" as a u32; the bytes read "MRWS")
//     4  1   version (1)
//     5  1   kind (FrameKind)
//     6  1   dtype (DTYPE_CODE)
//     7  1   flags: bit0 = token ids present; bit1 = payload entropy-coded; bit2 = dithered;
//                   other bits zero
//     8  4   tag: the exchange the frame belongs to (a training round, a request id, a step)
//    12  4   microbatch
//    16  4   rows
//    20  4   cols
//    24  4   payloadBytes: tensorBytes(rows, cols, dtype) raw; the bytes actually sent if coded
//    28  4   reserved, zero
//    32  …   payload, then rows × u16 token ids if flagged
//
// Entropy-coded payload (bit1; scaled-integer dtypes int8/int4/int8c/int4c only): the f32 scales
// exactly as in the raw payload, then encodeSymbols(intSymbols(…)) of the quantized values
// (entropy.ts; int8 values as bytes, alphabet 256; int4 values as nibbles, alphabet 16). The
// sender sets bit1 only when this is strictly smaller than the raw payload, so a receiver rejects
// a coded payload that is not; decoding it must yield exactly rows·cols symbols.
//
// Dithered payload (bit2; scaled-integer dtypes only): the values were rounded with a dither added
// (codec.ts quantize) that the receiver takes off again: frameDither(kind, tag, microbatch), so no
// dither bytes travel. Sent by codecs with a quantizer step (quantStep), and only by them.
import { type Dtype, type ErrorFeedback, type IntLayout, dequantize, dither, intLayout, intPayload, intSymbols, quantize, tensorBytes } from './codec.js';
import { EntropyError, decodeSymbols, encodeSymbols } from './entropy.js';

export const HEADER_BYTES = 32;
export const WIRE_VERSION = 1;
const MAGIC = 0x5357524d;
const FLAG_TOKENS = 1;
const FLAG_ENTROPY = 2;
const FLAG_DITHER = 4;

export const FrameKind = {
  /** Forward activation; a gradient will come back for it. */
  Activation: 1,
  /** Backward activation-gradient. */
  Gradient: 2,
  /** Forward activation for evaluation: no backward will follow. */
  EvalActivation: 3,
  /** A replica's weights (or deltas) for averaging. */
  ReplicaWeights: 4,
  // Generation (shared/peer/generate.ts): tag = request id, microbatch = token index.
  /** Opens a request, relayed from stage 0 to the last: fp32 [maxTokens, temperature, seed lo16, seed hi16, context length]. */
  GenerateStart: 5,
  /** Forward boundary rows of one generated position's context (sequence 0 only), token ids with them. */
  GenerateActivation: 6,
  /** The sampled token (fp32 [id], or [−reason] to abort), relayed from the last stage back to stage 0. */
  GenerateToken: 7,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Boundary tensors of training rounds: what a round's report cites and an audit recomputes. */
export const isTrainingKind = (kind: number): boolean => kind === FrameKind.Activation || kind === FrameKind.Gradient;
/** Frames of an inference request (generate.ts), kept apart from training's. */
export const isGenerationKind = (kind: number): boolean => kind === FrameKind.GenerateStart || kind === FrameKind.GenerateActivation || kind === FrameKind.GenerateToken;

/** Dtype byte on the wire; 0 is deliberately unused so a zeroed header is rejected. */
const DTYPE_CODE: Record<Dtype, number> = { fp32: 1, bf16: 2, fp16: 3, int8: 4, int4: 5, int8c: 6, int4c: 7 };
const DTYPE_OF_CODE = new Map<number, Dtype>(Object.entries(DTYPE_CODE).map(([d, c]) => [c, d as Dtype]));

export interface Frame {
  kind: FrameKind;
  /** Which exchange the frame belongs to: the round of a training or evaluation frame, the request id of a generation frame, the step of replica weights. */
  tag: number;
  microbatch: number;
  rows: number;
  cols: number;
  dtype: Dtype;
  /** One token id per row (subspace boundaries rebuild x = U·c + F[tok]). */
  tokens?: Uint16Array;
  tensor: Float32Array;
}

export type WireErrorCode = 'magic' | 'version' | 'truncated' | 'length' | 'dtype' | 'kind' | 'nonfinite' | 'limits' | 'reserved' | 'entropy' | 'shape';

export class WireError extends Error {
  readonly code: WireErrorCode;
  constructor(code: WireErrorCode, message: string) {
    super(`wire frame (${code}): ${message}`);
    this.name = 'WireError';
    this.code = code;
  }
}

export interface FrameLimits {
  maxRows?: number;
  maxCols?: number;
  /**
   * Most values (rows·cols) an entropy-coded frame may expand to. A raw frame's allocations are
   * bounded by the bytes the peer actually sent; a coded one can be tiny (a constant tensor codes
   * to a few bytes), so this bounds what a few bytes can make us allocate.
   */
  maxCodedValues?: number;
}

/** Generous caps; a receiver that knows the shapes it expects should use decodeExpected instead. */
export const DEFAULT_LIMITS: Required<FrameLimits> = { maxRows: 1 << 20, maxCols: 1 << 16, maxCodedValues: 1 << 24 };

export interface EncodeOptions {
  /**
   * Entropy-code the quantized values of an int8/int4/int8c/int4c payload (flag bit1) when that
   * makes the frame smaller; otherwise, and for float dtypes, the payload is sent raw.
   */
  entropy?: boolean;
  /** The quantizer step of a scaled-integer payload sent without error feedback (quantize, quantStep); such a payload is dithered. */
  step?: number;
}

/** The dither of a frame's values: from its header, so the sender, the receiver and a witness agree. */
export function frameDither(kind: FrameKind, tag: number, microbatch: number, n: number): Float32Array {
  return dither([kind, tag, microbatch], n);
}

/**
 * Exact size of a RAW frame on the wire, header included. An entropy-coded frame is smaller and
 * its size depends on the data, so byte accounting must use the encoded frame's actual length
 * (as PipelineStage does with encodeFrame(…).length), not this.
 */
export function frameBytes(rows: number, cols: number, dtype: Dtype, withTokens: boolean): number {
  return HEADER_BYTES + tensorBytes(rows, cols, dtype) + (withTokens ? 2 * rows : 0);
}

/** Kinds are numbered 1..MAX_KIND without gaps. */
const MAX_KIND = Math.max(...Object.values(FrameKind));
const isKind = (k: number): k is FrameKind => Number.isInteger(k) && k >= 1 && k <= MAX_KIND;
const isU32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** Index of the first non-finite value, or −1. */
function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return i;
  return -1;
}

function where(i: number, cols: number): string {
  return `value ${i} (row ${Math.floor(i / cols)}, col ${i % cols})`;
}

/**
 * Serialize a frame. With `ef`, the payload goes through that error-feedback stream (only for
 * streams like replica weight deltas; see ErrorFeedback). With `opts.entropy`, a scaled-integer
 * payload is entropy-coded if that saves bytes (see EncodeOptions). Throws WireError on anything a
 * receiver would reject, so a diverged (NaN) tensor fails loudly at the sender.
 */
export function encodeFrame(f: Frame, ef?: ErrorFeedback, opts: EncodeOptions = {}): Uint8Array {
  const { rows, cols, dtype, tensor, tokens } = f;
  if (!isKind(f.kind)) throw new WireError('kind', `unknown frame kind ${f.kind}`);
  if (!Object.hasOwn(DTYPE_CODE, dtype)) throw new WireError('dtype', `unknown dtype '${dtype}'`);
  if (!isU32(f.tag) || !isU32(f.microbatch)) throw new WireError('limits', `tag ${f.tag} and microbatch ${f.microbatch} must be u32 integers`);
  if (!(Number.isInteger(rows) && rows >= 1 && Number.isInteger(cols) && cols >= 1)) {
    throw new WireError('limits', `rows=${rows}, cols=${cols} must be positive integers`);
  }
  if (!isU32(rows) || !isU32(cols) || !isU32(tensorBytes(rows, cols, dtype))) throw new WireError('limits', `${rows}×${cols} ${dtype} does not fit a frame`);
  if (tensor.length !== rows * cols) throw new WireError('length', `tensor has ${tensor.length} values, expected ${rows}×${cols}`);
  const bad = firstNonFinite(tensor);
  if (bad >= 0) throw new WireError('nonfinite', `refusing to send ${where(bad, cols)} = ${tensor[bad]}`);
  if (tokens) {
    if (tokens.length !== rows) throw new WireError('length', `${tokens.length} token ids for ${rows} rows`);
    // The type says u16, but a caller may have cast a wider array: check, don't truncate silently.
    for (let i = 0; i < rows; i++) {
      const t = tokens[i];
      if (!(Number.isInteger(t) && t >= 0 && t < 65536)) throw new WireError('limits', `token id ${i} is ${t}, not a u16`);
    }
  }

  if (opts.step !== undefined && (ef || !intLayout(rows, cols, dtype)))
    throw new WireError('dtype', `a quantizer step needs a scaled-integer ${ef ? 'payload without error feedback' : `dtype, not ${dtype}`}`);
  const dithered = opts.step !== undefined ? frameDither(f.kind, f.tag, f.microbatch, rows * cols) : undefined;
  let payload = ef ? ef.apply(tensor, rows, cols, dtype) : quantize(tensor, rows, cols, dtype, { step: opts.step, dither: dithered });
  let flags = (tokens ? FLAG_TOKENS : 0) | (dithered ? FLAG_DITHER : 0);
  if (opts.entropy) {
    const coded = entropyCode(payload, rows, cols, dtype);
    if (coded && coded.length < payload.length) {
      payload = coded;
      flags |= FLAG_ENTROPY;
    }
  }
  const payloadBytes = payload.length;
  const out = new Uint8Array(HEADER_BYTES + payloadBytes + (tokens ? 2 * rows : 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint8(4, WIRE_VERSION);
  view.setUint8(5, f.kind);
  view.setUint8(6, DTYPE_CODE[dtype]);
  view.setUint8(7, flags);
  view.setUint32(8, f.tag, true);
  view.setUint32(12, f.microbatch, true);
  view.setUint32(16, rows, true);
  view.setUint32(20, cols, true);
  view.setUint32(24, payloadBytes, true);
  // bytes 28..31 stay zero (reserved)
  out.set(payload, HEADER_BYTES);
  if (tokens) {
    const at = HEADER_BYTES + payloadBytes;
    for (let i = 0; i < rows; i++) view.setUint16(at + 2 * i, tokens[i], true);
  }
  return out;
}

/**
 * A raw scaled-integer payload as its scales followed by the entropy-coded values, or undefined
 * for a dtype that cannot be coded or a frame larger than a default receiver would decode.
 */
function entropyCode(raw: Uint8Array, rows: number, cols: number, dtype: Dtype): Uint8Array | undefined {
  const l = intLayout(rows, cols, dtype);
  if (!l || rows * cols > DEFAULT_LIMITS.maxCodedValues) return undefined;
  const coded = encodeSymbols(intSymbols(raw, rows, cols, l.dtype), l.bits === 8 ? 256 : 16);
  const out = new Uint8Array(l.scaleBytes + coded.length);
  out.set(raw.subarray(0, l.scaleBytes));
  out.set(coded, l.scaleBytes);
  return out;
}

/** What a receiver accepts for one kind of frame: anything else of that kind is refused. */
export interface FrameShape {
  /** Rows accepted, minRows..maxRows (equal for a fixed shape). */
  minRows: number;
  maxRows: number;
  cols: number;
  dtype: Dtype;
  /** Whether the frame carries token ids: required when true, refused when false. */
  tokens: boolean;
  /** The quantizer step honest senders use (EncodeOptions.step): what a witness re-encodes with. */
  step?: number;
}

/** The shape a receiver expects for each kind it accepts; a kind it does not list is refused. */
export type FrameShapes = Partial<Record<FrameKind, FrameShape>>;

/** A frame's header fields, validated on their own (no shape or length checks yet). */
export interface FrameHeader {
  kind: FrameKind;
  dtype: Dtype;
  tag: number;
  microbatch: number;
  rows: number;
  cols: number;
  payloadBytes: number;
  tokens: boolean;
  coded: boolean;
  dithered: boolean;
}

/**
 * The header of a frame from an untrusted peer: magic, version, kind, dtype, flags and reserved
 * bytes checked. Tells a receiver which (kind, tag, microbatch) a frame claims to be even when
 * the rest of it is refused. Throws only WireError.
 */
export function readHeader(bytes: Uint8Array): FrameHeader {
  if (bytes.length < HEADER_BYTES) throw new WireError('truncated', `${bytes.length} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, true);
  if (magic !== MAGIC) throw new WireError('magic', `magic 0x${magic.toString(16).padStart(8, '0')} is not a swarm frame`);
  const version = view.getUint8(4);
  if (version !== WIRE_VERSION) {
    throw new WireError('version', `wire version ${version} is not supported (this client speaks version ${WIRE_VERSION}); peers must run matching clients`);
  }
  const kind = view.getUint8(5);
  if (!isKind(kind)) throw new WireError('kind', `unknown frame kind ${kind}`);
  const dtype = DTYPE_OF_CODE.get(view.getUint8(6));
  if (dtype === undefined) throw new WireError('dtype', `unknown dtype code ${view.getUint8(6)}`);
  const flags = view.getUint8(7);
  if (flags & ~(FLAG_TOKENS | FLAG_ENTROPY | FLAG_DITHER)) throw new WireError('reserved', `unknown flag bits 0x${flags.toString(16)}`);
  if (view.getUint32(28, true) !== 0) throw new WireError('reserved', 'reserved header bytes are not zero');
  return {
    kind,
    dtype,
    tag: view.getUint32(8, true),
    microbatch: view.getUint32(12, true),
    rows: view.getUint32(16, true),
    cols: view.getUint32(20, true),
    payloadBytes: view.getUint32(24, true),
    tokens: (flags & FLAG_TOKENS) !== 0,
    coded: (flags & FLAG_ENTROPY) !== 0,
    dithered: (flags & FLAG_DITHER) !== 0,
  };
}

/**
 * Parse and validate a frame from an untrusted peer. `bytes` may be a view at any offset. Every
 * header field is checked, and the exact total length is checked before anything is allocated,
 * so a raw frame's allocations are bounded by what the peer actually sent, and an entropy-coded
 * frame's by limits.maxCodedValues. Throws only WireError.
 */
export function decodeFrame(bytes: Uint8Array, limits: FrameLimits = {}): Frame {
  const h = readHeader(bytes);
  return decodeBody(bytes, h, {
    maxRows: limits.maxRows ?? DEFAULT_LIMITS.maxRows,
    maxCols: limits.maxCols ?? DEFAULT_LIMITS.maxCols,
    maxCodedValues: limits.maxCodedValues ?? DEFAULT_LIMITS.maxCodedValues,
  });
}

/**
 * decodeFrame for a receiver that knows exactly what it expects: the frame's kind must be listed
 * in `shapes`, and its dtype, columns, token ids and rows must match that kind's shape before
 * anything is decoded, so whatever a peer sends costs at most one frame of an expected shape
 * (an entropy-coded frame cannot expand beyond it). Throws only WireError.
 */
export function decodeExpected(bytes: Uint8Array, shapes: FrameShapes): Frame {
  const h = readHeader(bytes);
  const s = shapes[h.kind];
  if (!s) throw new WireError('kind', `a frame of kind ${h.kind} is not expected here`);
  const dithered = s.step !== undefined;
  if (h.dtype !== s.dtype || h.cols !== s.cols || h.tokens !== s.tokens || h.dithered !== dithered || h.rows < s.minRows || h.rows > s.maxRows) {
    const what = (o: { tokens: boolean; dithered: boolean }) => `${o.tokens ? ' with token ids' : ''}${o.dithered ? ', dithered' : ''}`;
    const want = `${s.minRows === s.maxRows ? s.maxRows : `${s.minRows}..${s.maxRows}`}×${s.cols} ${s.dtype}${what({ tokens: s.tokens, dithered })}`;
    throw new WireError('shape', `kind ${h.kind} is ${h.rows}×${h.cols} ${h.dtype}${what(h)}, expected ${want}`);
  }
  return decodeBody(bytes, h, { maxRows: s.maxRows, maxCols: s.cols, maxCodedValues: s.maxRows * s.cols });
}

/** The rest of decodeFrame once the header is read: sizes against `limits`, lengths, payload. */
function decodeBody(bytes: Uint8Array, h: FrameHeader, limits: Required<FrameLimits>): Frame {
  const { kind, dtype, tag, microbatch, rows, cols, payloadBytes, coded } = h;
  const { maxRows, maxCols, maxCodedValues } = limits;
  if (rows < 1 || rows > maxRows || cols < 1 || cols > maxCols) {
    throw new WireError('limits', `shape ${rows}×${cols} is outside 1..${maxRows} rows × 1..${maxCols} cols`);
  }
  const rawPayload = tensorBytes(rows, cols, dtype);
  const layout = intLayout(rows, cols, dtype);
  if (h.dithered && !layout) throw new WireError('dtype', `a ${dtype} payload cannot be dithered (only int8, int4, int8c, int4c)`);
  if (coded) {
    if (!layout) throw new WireError('entropy', `a ${dtype} payload cannot be entropy-coded (only int8, int4, int8c, int4c)`);
    if (rows * cols > maxCodedValues) throw new WireError('limits', `entropy-coded ${rows}×${cols} exceeds ${maxCodedValues} values`);
    // The scales, then at least one byte of coded values, and strictly smaller than raw.
    if (payloadBytes <= layout.scaleBytes || payloadBytes >= rawPayload) {
      throw new WireError('length', `entropy-coded payloadBytes ${payloadBytes} must be in ${layout.scaleBytes + 1}..${rawPayload - 1} for ${rows}×${cols} ${dtype}`);
    }
  } else if (payloadBytes !== rawPayload) {
    throw new WireError('length', `payloadBytes ${payloadBytes} but ${rows}×${cols} ${dtype} takes ${rawPayload}`);
  }
  const total = HEADER_BYTES + payloadBytes + (h.tokens ? 2 * rows : 0);
  if (bytes.length < total) throw new WireError('truncated', `${bytes.length} bytes, the header promises ${total}`);
  if (bytes.length > total) throw new WireError('length', `${bytes.length - total} trailing bytes after a ${total}-byte frame`);

  let payload = bytes.subarray(HEADER_BYTES, HEADER_BYTES + payloadBytes);
  if (coded) payload = entropyDecode(payload, rows, cols, layout!);
  const tensor = dequantize(payload, rows, cols, dtype, h.dithered ? frameDither(kind, tag, microbatch, rows * cols) : undefined);
  const bad = firstNonFinite(tensor);
  if (bad >= 0) throw new WireError('nonfinite', `${where(bad, cols)} decodes to ${tensor[bad]}`);
  const frame: Frame = { kind, tag, microbatch, rows, cols, dtype, tensor };
  if (h.tokens) {
    const view = new DataView(bytes.buffer, bytes.byteOffset + HEADER_BYTES + payloadBytes, 2 * rows);
    frame.tokens = Uint16Array.from({ length: rows }, (_, i) => view.getUint16(2 * i, true));
  }
  return frame;
}

/** Inverse of entropyCode for a payload already checked to hold the scales and ≥ 1 coded byte. */
function entropyDecode(payload: Uint8Array, rows: number, cols: number, l: IntLayout): Uint8Array {
  const n = rows * cols;
  let symbols: Uint8Array;
  try {
    symbols = decodeSymbols(payload.subarray(l.scaleBytes), l.bits === 8 ? 256 : 16, n);
  } catch (e) {
    if (e instanceof EntropyError) throw new WireError('entropy', e.message);
    throw e;
  }
  if (symbols.length !== n) throw new WireError('entropy', `${symbols.length} coded values, ${rows}×${cols} needs ${n}`);
  return intPayload(payload.subarray(0, l.scaleBytes), symbols, rows, cols, l.dtype);
}
