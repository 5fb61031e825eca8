// The messages both sides of e2e/rtc-browser.test.ts send, generated from a seed so the receiver
// can rebuild what it should get and compare byte for byte (imported by the tab and by Node).
import { rng } from '../../shared/base/random.js';
import { DEFAULT_CHUNK } from '../../shared/wire/link.js';

/** The project's seeded generator as u32s: the payloads only need to be reproducible, not random. */
function generator(seed: number): () => number {
  const next = rng(seed);
  return () => Math.floor(next() * 2 ** 32);
}

function bytes(next: () => number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = next() & 0xff;
  return b;
}

export const BIG_MESSAGE = 200 * 1024;
const SMALL_MESSAGES = 300;
const CHUNK_BODY = DEFAULT_CHUNK - 12; // ChunkedLink's payload per chunk

/**
 * A 200 KB message (4 chunks), sizes on either side of one chunk's body, an empty message, then
 * many small ones of random sizes.
 */
export function payloads(seed: number): Uint8Array[] {
  const next = generator(seed);
  const sizes = [BIG_MESSAGE, CHUNK_BODY, CHUNK_BODY + 1, 0, 1];
  for (let i = 0; i < SMALL_MESSAGES; i++) sizes.push(1 + (next() % 2048));
  return sizes.map((n) => bytes(next, n));
}

/** Where `got` first differs from `want`, or undefined when they are byte-identical. */
export function difference(got: Uint8Array | undefined, want: Uint8Array): string | undefined {
  if (!got) return 'missing';
  if (got.length !== want.length) return `${got.length} bytes instead of ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) return `byte ${i} is ${got[i]} instead of ${want[i]}`;
  }
  return undefined;
}

/** Compares every received message with the expected ones; an empty list means all arrived intact. */
export function compare(got: Uint8Array[], want: Uint8Array[]): string[] {
  const problems: string[] = [];
  if (got.length !== want.length) problems.push(`${got.length} messages instead of ${want.length}`);
  want.forEach((w, i) => {
    const d = difference(got[i], w);
    if (d) problems.push(`message ${i}: ${d}`);
  });
  return problems;
}

/** Flood messages carry their sequence number in every byte, so a receiver can check order and content. */
export function floodMessage(index: number, size: number): Uint8Array {
  return new Uint8Array(size).fill(index & 0xff);
}

export const TAB_SEED = 1;
export const NODE_SEED = 2;
