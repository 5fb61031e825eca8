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
//     7  1   flags: bit0 = token ids present; other bits must be zero
//     8  4   step
//    12  4   microbatch
//    16  4   rows
//    20  4   cols
//    24  4   payloadBytes = rows · bytesPerRow(cols, dtype)
//    28  4   reserved, zero
//    32  …   payload, then rows × u16 token ids if flagged
import { type Dtype, type ErrorFeedback, bytesPerRow, dequantize, quantize } from './codec.js';

export const HEADER_BYTES = 32;
export const WIRE_VERSION = 1;
const MAGIC = 0x5357524d;
const FLAG_TOKENS = 1;

export const FrameKind = {
  /** Forward activation; a gradient will come back for it. */
  Activation: 1,
  /** Backward activation-gradient. */
  Gradient: 2,
  /** Forward activation for evaluation: no backward will follow. */
  EvalActivation: 3,
  /** A replica's weights (or deltas) for averaging. */
  ReplicaWeights: 4,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Dtype byte on the wire; 0 is deliberately unused so a zeroed header is rejected. */
const DTYPE_CODE: Record<Dtype, number> = { fp32: 1, bf16: 2, fp16: 3, int8: 4, int4: 5 };
const DTYPE_OF_CODE = new Map<number, Dtype>(Object.entries(DTYPE_CODE).map(([d, c]) => [c, d as Dtype]));

export interface Frame {
  kind: FrameKind;
  step: number;
  microbatch: number;
  rows: number;
  cols: number;
  dtype: Dtype;
  /** One token id per row (subspace boundaries rebuild x = U·c + F[tok]). */
  tokens?: Uint16Array;
  tensor: Float32Array;
}

export type WireErrorCode = 'magic' | 'version' | 'truncated' | 'length' | 'dtype' | 'kind' | 'nonfinite' | 'limits' | 'reserved';

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
}

/** Generous caps; a receiver that knows its microbatch shape should pass tighter ones. */
export const DEFAULT_LIMITS: Required<FrameLimits> = { maxRows: 1 << 20, maxCols: 1 << 16 };

/** Exact size of a frame on the wire, header included, for honest byte accounting. */
export function frameBytes(rows: number, cols: number, dtype: Dtype, withTokens: boolean): number {
  return HEADER_BYTES + rows * bytesPerRow(cols, dtype) + (withTokens ? 2 * rows : 0);
}

const isKind = (k: number): k is FrameKind => Number.isInteger(k) && k >= 1 && k <= 4;
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
 * streams like replica weight deltas; see ErrorFeedback). Throws WireError on anything a
 * receiver would reject, so a diverged (NaN) tensor fails loudly at the sender.
 */
export function encodeFrame(f: Frame, ef?: ErrorFeedback): Uint8Array {
  const { rows, cols, dtype, tensor, tokens } = f;
  if (!isKind(f.kind)) throw new WireError('kind', `unknown frame kind ${f.kind}`);
  if (DTYPE_CODE[dtype] === undefined) throw new WireError('dtype', `unknown dtype '${dtype}'`);
  if (!isU32(f.step) || !isU32(f.microbatch)) throw new WireError('limits', `step ${f.step} and microbatch ${f.microbatch} must be u32 integers`);
  if (!(Number.isInteger(rows) && rows >= 1 && Number.isInteger(cols) && cols >= 1)) {
    throw new WireError('limits', `rows=${rows}, cols=${cols} must be positive integers`);
  }
  const payloadBytes = rows * bytesPerRow(cols, dtype);
  if (!isU32(rows) || !isU32(cols) || !isU32(payloadBytes)) throw new WireError('limits', `${rows}×${cols} ${dtype} does not fit a frame`);
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

  const payload = ef ? ef.apply(tensor, rows, cols, dtype) : quantize(tensor, rows, cols, dtype);
  const out = new Uint8Array(frameBytes(rows, cols, dtype, tokens !== undefined));
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint8(4, WIRE_VERSION);
  view.setUint8(5, f.kind);
  view.setUint8(6, DTYPE_CODE[dtype]);
  view.setUint8(7, tokens ? FLAG_TOKENS : 0);
  view.setUint32(8, f.step, true);
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
 * Parse and validate a frame from an untrusted peer. `bytes` may be a view at any offset. Every
 * header field is checked, and the exact total length is checked before anything is allocated,
 * so allocations are bounded by what the peer actually sent. Throws only WireError.
 */
export function decodeFrame(bytes: Uint8Array, limits: FrameLimits = {}): Frame {
  const maxRows = limits.maxRows ?? DEFAULT_LIMITS.maxRows;
  const maxCols = limits.maxCols ?? DEFAULT_LIMITS.maxCols;
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
  if (flags & ~FLAG_TOKENS) throw new WireError('reserved', `unknown flag bits 0x${flags.toString(16)}`);
  if (view.getUint32(28, true) !== 0) throw new WireError('reserved', 'reserved header bytes are not zero');

  const step = view.getUint32(8, true);
  const microbatch = view.getUint32(12, true);
  const rows = view.getUint32(16, true);
  const cols = view.getUint32(20, true);
  if (rows < 1 || rows > maxRows || cols < 1 || cols > maxCols) {
    throw new WireError('limits', `shape ${rows}×${cols} is outside 1..${maxRows} rows × 1..${maxCols} cols`);
  }
  const payloadBytes = view.getUint32(24, true);
  const expectedPayload = rows * bytesPerRow(cols, dtype);
  if (payloadBytes !== expectedPayload) {
    throw new WireError('length', `payloadBytes ${payloadBytes} but ${rows}×${cols} ${dtype} takes ${expectedPayload}`);
  }
  const withTokens = (flags & FLAG_TOKENS) !== 0;
  const total = frameBytes(rows, cols, dtype, withTokens);
  if (bytes.length < total) throw new WireError('truncated', `${bytes.length} bytes, the header promises ${total}`);
  if (bytes.length > total) throw new WireError('length', `${bytes.length - total} trailing bytes after a ${total}-byte frame`);

  const tensor = dequantize(bytes.subarray(HEADER_BYTES, HEADER_BYTES + payloadBytes), rows, cols, dtype);
  const bad = firstNonFinite(tensor);
  if (bad >= 0) throw new WireError('nonfinite', `${where(bad, cols)} decodes to ${tensor[bad]}`);
  const frame: Frame = { kind, step, microbatch, rows, cols, dtype, tensor };
  if (withTokens) {
    const at = HEADER_BYTES + payloadBytes;
    frame.tokens = Uint16Array.from({ length: rows }, (_, i) => view.getUint16(at + 2 * i, true));
  }
  return frame;
}
