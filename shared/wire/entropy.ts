// Static order-0 entropy coding of byte-symbol streams (ARCHITECTURE §4): quantized subspace
// coefficients are roughly Gaussian, so their int4/int8 codes carry fewer bits of information than
// their width. One frequency table per stream, sent with it, then rANS (range asymmetric numeral
// systems) with a 32-bit state and byte-wise renormalization. Pure and environment-agnostic.
//
// Stream layout (everything encodeSymbols writes, decodeSymbols checks):
//   varint    n           symbol count, LEB128 (≤ 5 bytes); n = 0 ends the stream here
//   u8        params      low nibble: precision p − MIN_PRECISION (frequencies sum to 2^p),
//                         high nibble: k, the Exp-Golomb order of the table codes
//   bits      table       for each symbol 0..alphabet−1 in order, its frequency minus the previous
//                         one (starting from 0), zigzag-mapped, as an order-k Exp-Golomb code;
//                         MSB first, zero-padded to a whole byte. Quantized values are stored as
//                         two's complement, so neighbouring symbols are neighbouring values and a
//                         smooth distribution gives small differences.
//   u32 LE    state       the encoder's final rANS state, where the decoder starts
//   bytes     rest        renormalization bytes, in the order the decoder consumes them
//
// The decoder trusts nothing: every count, table entry and read is bounded, the table must sum
// to exactly 2^p, and the stream must end exactly where the last symbol does with the state back
// at its initial value. Any violation throws EntropyError; loops are bounded by n and the input.

/** Thrown by decodeSymbols for a malformed stream. */
export class EntropyError extends Error {
  constructor(message: string) {
    super(`entropy stream: ${message}`);
    this.name = 'EntropyError';
  }
}

/** rANS state lower bound; the state lives in [RANS_L, 2^31) between symbols. */
const RANS_L = 1 << 23;
/**
 * Frequency precision range: tables sum to 2^p. p ≥ 8 leaves room for all 256 byte symbols;
 * p ≤ 15 keeps every state product below 2^31.
 */
const MIN_PRECISION = 8;
const MAX_PRECISION = 15;
const MAX_EG_ORDER = 15;
/** Longest run of leading zeros a table code can need: zigzag deltas are < 2^(MAX_PRECISION+2). */
const MAX_EG_ZEROS = MAX_PRECISION + 2;

function checkAlphabet(alphabet: number, what: string): void {
  if (!(Number.isInteger(alphabet) && alphabet >= 1 && alphabet <= 256)) throw new RangeError(`${what}: alphabet ${alphabet} must be an integer in 1..256`);
}

// ---- Frequency tables

/**
 * Scale symbol counts to frequencies summing to 2^p, every present symbol ≥ 1. Rounding drift is
 * settled one unit at a time on the most frequent symbols (`byCount`: present symbols, most
 * frequent first), where a unit matters least.
 */
function normalize(counts: Uint32Array, n: number, p: number, byCount: number[]): Uint32Array {
  const total = 2 ** p;
  const freq = new Uint32Array(counts.length);
  let sum = 0;
  for (const s of byCount) {
    freq[s] = Math.max(1, Math.round((counts[s] * total) / n));
    sum += freq[s];
  }
  // Terminates: the caller guarantees at most 2^p present symbols, so while sum > 2^p some has freq > 1.
  for (let i = 0; sum !== total; i = (i + 1) % byCount.length) {
    const s = byCount[i];
    if (sum < total) {
      freq[s]++;
      sum++;
    } else if (freq[s] > 1) {
      freq[s]--;
      sum--;
    }
  }
  return freq;
}

const zigzag = (d: number) => (d >= 0 ? 2 * d : -2 * d - 1);
const unzigzag = (z: number) => (z % 2 === 0 ? z / 2 : -(z + 1) / 2);

/** Number of significant bits of 1 ≤ w < 2^32. */
const bitLength = (w: number) => 32 - Math.clz32(w);

/** Bits of the order-k Exp-Golomb code of v ≥ 0: (len − k − 1) zeros, then v + 2^k in len bits. */
function egBits(v: number, k: number): number {
  return 2 * bitLength(v + 2 ** k) - k - 1;
}

/** The table's zigzag deltas and the Exp-Golomb order that codes them in the fewest bits. */
function tableCode(freq: Uint32Array): { deltas: Uint32Array; k: number; bits: number } {
  const deltas = new Uint32Array(freq.length);
  for (let s = 0; s < freq.length; s++) deltas[s] = zigzag(freq[s] - (s > 0 ? freq[s - 1] : 0));
  let best = { deltas, k: 0, bits: Infinity };
  for (let k = 0; k <= MAX_EG_ORDER; k++) {
    let bits = 0;
    for (let s = 0; s < deltas.length; s++) bits += egBits(deltas[s], k);
    if (bits < best.bits) best = { deltas, k, bits };
  }
  return best;
}

class BitWriter {
  private readonly bytes: number[] = [];
  private acc = 0;
  private used = 0;

  /** Append the low `count` bits of v (count ≤ 24, v < 2^count), most significant first. */
  write(v: number, count: number): void {
    for (let i = count - 1; i >= 0; i--) {
      this.acc = (this.acc << 1) | (Math.floor(v / 2 ** i) & 1);
      if (++this.used === 8) {
        this.bytes.push(this.acc);
        this.acc = 0;
        this.used = 0;
      }
    }
  }

  writeExpGolomb(v: number, k: number): void {
    const w = v + 2 ** k;
    const len = bitLength(w);
    this.write(0, len - k - 1);
    this.write(w, len);
  }

  /** The bits so far, zero-padded to a whole byte. */
  finish(): number[] {
    if (this.used > 0) this.bytes.push(this.acc << (8 - this.used));
    return this.bytes;
  }
}

class BitReader {
  private bit = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private pos: number,
  ) {}

  private readBit(): number {
    if (this.pos >= this.bytes.length) throw new EntropyError('frequency table runs past the end of the stream');
    const b = (this.bytes[this.pos] >> (7 - this.bit)) & 1;
    if (++this.bit === 8) {
      this.bit = 0;
      this.pos++;
    }
    return b;
  }

  readExpGolomb(k: number): number {
    let zeros = 0;
    while (this.readBit() === 0) {
      if (++zeros > MAX_EG_ZEROS) throw new EntropyError('frequency table code is too long');
    }
    let w = 1;
    for (let i = 0; i < zeros + k; i++) w = 2 * w + this.readBit();
    return w - 2 ** k;
  }

  /** Position of the first byte after the table; the pad bits must be zero. */
  end(): number {
    if (this.bit === 0) return this.pos;
    if (this.bytes[this.pos] & (0xff >> this.bit)) throw new EntropyError('frequency table padding is not zero');
    return this.pos + 1;
  }
}

// ---- Varints

function writeVarint(out: number[], v: number): void {
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

function readVarint(bytes: Uint8Array, pos: number): { value: number; pos: number } {
  let value = 0;
  for (let i = 0; i < 5; i++) {
    if (pos >= bytes.length) throw new EntropyError('symbol count is truncated');
    const b = bytes[pos++];
    value += (b & 0x7f) * 2 ** (7 * i);
    if (!(b & 0x80)) return { value, pos };
  }
  throw new EntropyError('symbol count is longer than 5 bytes');
}

// ---- Encoder

/**
 * Entropy-code `symbols` (each < alphabet ≤ 256) into a self-describing stream: the count and the
 * frequency table travel with the data. The precision of the table is chosen per stream to
 * minimize the estimated total size (a coarse table costs fewer bits than a fine one).
 */
export function encodeSymbols(symbols: Uint8Array, alphabet: number): Uint8Array {
  checkAlphabet(alphabet, 'encodeSymbols');
  const n = symbols.length;
  const head: number[] = [];
  writeVarint(head, n);
  if (n === 0) return Uint8Array.from(head);

  const counts = new Uint32Array(alphabet);
  for (let i = 0; i < n; i++) {
    const s = symbols[i];
    if (s >= alphabet) throw new RangeError(`encodeSymbols: symbol ${i} is ${s}, outside the alphabet 0..${alphabet - 1}`);
    counts[s]++;
  }
  const byCount: number[] = [];
  for (let s = 0; s < alphabet; s++) if (counts[s] > 0) byCount.push(s);
  byCount.sort((a, b) => counts[b] - counts[a] || a - b);

  // Pick the precision whose table plus estimated payload is smallest. Beyond 2^p ≥ 2n the
  // frequencies are as exact as the counts, and a finer table only costs more bits.
  const pMin = Math.max(MIN_PRECISION, bitLength(byCount.length - 1));
  const pMax = Math.min(MAX_PRECISION, Math.max(pMin, bitLength(n) + 1));
  let best: { p: number; freq: Uint32Array; table: ReturnType<typeof tableCode>; bits: number } | undefined;
  for (let p = pMin; p <= pMax; p++) {
    const freq = normalize(counts, n, p, byCount);
    const table = tableCode(freq);
    let bits = table.bits;
    for (let s = 0; s < alphabet; s++) if (counts[s] > 0) bits += counts[s] * (p - Math.log2(freq[s]));
    if (!best || bits < best.bits) best = { p, freq, table, bits };
  }
  const { p, freq, table } = best!;

  head.push((p - MIN_PRECISION) | (table.k << 4));
  const bw = new BitWriter();
  for (const v of table.deltas) bw.writeExpGolomb(v, table.k);
  head.push(...bw.finish());

  const start = new Uint32Array(alphabet);
  for (let s = 1; s < alphabet; s++) start[s] = start[s - 1] + freq[s - 1];

  // rANS codes last symbol first; bytes are emitted in reverse of the order the decoder reads them.
  // Every value below stays a non-negative int32, so the JIT keeps this loop in integer ops.
  let rev = new Uint8Array(64 + (n >> 1));
  let len = 0;
  let x = RANS_L;
  const shift = 31 - p;
  for (let i = n - 1; i >= 0; i--) {
    const s = symbols[i];
    const f = freq[s];
    // At most two bytes per symbol: x < 2^31 and the bound below is ≥ 2^(31−p) ≥ 2^16.
    if (len + 2 > rev.length) {
      const grown = new Uint8Array(2 * rev.length);
      grown.set(rev);
      rev = grown;
    }
    // Shrink x until coding s keeps it below 2^31, i.e. until x < f·2^(31−p).
    while (x >>> shift >= f) {
      rev[len++] = x & 0xff;
      x >>>= 8;
    }
    const q = (x / f) | 0;
    x = (q << p) + (x - q * f) + start[s];
  }

  const out = new Uint8Array(head.length + 4 + len);
  out.set(head);
  new DataView(out.buffer).setUint32(head.length, x, true);
  for (let i = 0; i < len; i++) out[head.length + 4 + i] = rev[len - 1 - i];
  return out;
}

// ---- Decoder

/**
 * Decode a stream written by encodeSymbols with the same alphabet. Throws EntropyError on any
 * malformed input, including a count above maxSymbols (checked before anything is allocated).
 */
export function decodeSymbols(bytes: Uint8Array, alphabet: number, maxSymbols: number): Uint8Array {
  checkAlphabet(alphabet, 'decodeSymbols');
  const head = readVarint(bytes, 0);
  const n = head.value;
  if (n > maxSymbols) throw new EntropyError(`${n} symbols exceed the limit of ${maxSymbols}`);
  let pos = head.pos;
  if (n === 0) {
    if (pos !== bytes.length) throw new EntropyError(`${bytes.length - pos} bytes after an empty stream`);
    return new Uint8Array(0);
  }

  if (pos >= bytes.length) throw new EntropyError('stream ends before its table parameters');
  const params = bytes[pos++];
  const p = (params & 0xf) + MIN_PRECISION;
  const k = params >> 4;
  if (p > MAX_PRECISION) throw new EntropyError(`precision ${p} exceeds ${MAX_PRECISION}`);
  const total = 2 ** p;

  const freq = new Uint32Array(alphabet);
  const start = new Uint32Array(alphabet);
  const br = new BitReader(bytes, pos);
  let sum = 0;
  let prev = 0;
  for (let s = 0; s < alphabet; s++) {
    const f = prev + unzigzag(br.readExpGolomb(k));
    if (!(f >= 0 && f <= total - sum)) throw new EntropyError(`frequency of symbol ${s} is ${f}, the table's total so far ${sum} leaves room for 0..${total - sum}`);
    freq[s] = f;
    start[s] = sum;
    sum += f;
    prev = f;
  }
  if (sum !== total) throw new EntropyError(`frequencies sum to ${sum}, not 2^${p}`);
  pos = br.end();

  const symbolAt = new Uint8Array(total);
  for (let s = 0; s < alphabet; s++) symbolAt.fill(s, start[s], start[s] + freq[s]);

  if (pos + 4 > bytes.length) throw new EntropyError('stream ends before its rANS state');
  let x = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(pos, true);
  pos += 4;
  if (x < RANS_L || x >= 2 ** 31) throw new EntropyError(`rANS state 0x${x.toString(16)} is outside [2^23, 2^31)`);

  const out = new Uint8Array(n);
  const mask = total - 1;
  for (let i = 0; i < n; i++) {
    const slot = x & mask;
    const s = symbolAt[slot];
    out[i] = s;
    // x stays below 2^31: freq·(x >>> p) + (slot − start) < freq·2^(31−p) ≤ 2^31.
    x = freq[s] * (x >>> p) + slot - start[s];
    while (x < RANS_L) {
      if (pos >= bytes.length) throw new EntropyError(`stream is truncated after ${i + 1} of ${n} symbols`);
      x = (x << 8) | bytes[pos++];
    }
  }
  if (pos !== bytes.length) throw new EntropyError(`${bytes.length - pos} bytes left after the last symbol`);
  if (x !== RANS_L) throw new EntropyError('final rANS state is wrong: the stream is corrupted');
  return out;
}
