// Character-level corpus: vocabulary, train/validation split and a deterministic batch order.
// Pure: the text comes in as a string, so Node, a browser and tests use the same code.
import { rng } from '../base/random.js';

export interface CharCorpus {
  vocab: string[];
  train: Uint16Array;
  val: Uint16Array;
}

/** Vocabulary = the sorted distinct characters; the last `valFraction` of the text is validation. */
export function charCorpus(text: string, valFraction = 0.1): CharCorpus {
  const chars = Array.from(text);
  if (chars.length < 2) throw new Error('the corpus is empty: it needs at least two characters');
  const vocab = [...new Set(chars)].sort();
  if (vocab.length > 65535) throw new Error(`the corpus has ${vocab.length} distinct characters; at most 65535 are supported`);
  const index = new Map(vocab.map((c, i) => [c, i]));
  const ids = Uint16Array.from(chars, (c) => index.get(c)!);
  const cut = Math.floor(ids.length * (1 - valFraction));
  return { vocab, train: ids.subarray(0, cut), val: ids.subarray(cut) };
}

/**
 * Microbatch `index` of a split: `batch` windows of `seq` tokens at offsets drawn from a seeded
 * stream, targets shifted by one. The same (seed, index) gives the same batch on every peer.
 */
export function sampleBatch(ids: Uint16Array, batch: number, seq: number, seed: number, index: number): { tokens: Uint32Array; targets: Uint32Array } {
  if (ids.length < seq + 1) throw new Error(`the split holds ${ids.length} tokens, fewer than a window of ${seq + 1}`);
  const rand = rng((seed * 0x9e3779b1 + index * 0x85ebca6b) >>> 0);
  const tokens = new Uint32Array(batch * seq);
  const targets = new Uint32Array(batch * seq);
  for (let b = 0; b < batch; b++) {
    const start = Math.floor(rand() * (ids.length - seq - 1));
    for (let t = 0; t < seq; t++) {
      tokens[b * seq + t] = ids[start + t];
      targets[b * seq + t] = ids[start + t + 1];
    }
  }
  return { tokens, targets };
}

/** Token ids of `text` in the corpus vocabulary; characters the model never saw are an error. */
export function encodeText(corpus: Pick<CharCorpus, 'vocab'>, text: string): Uint32Array {
  const index = new Map(corpus.vocab.map((c, i) => [c, i]));
  const chars = Array.from(text);
  const unknown = [...new Set(chars.filter((c) => !index.has(c)))];
  if (unknown.length)
    throw new Error(
      `the model has no token for ${unknown
        .slice(0, 8)
        .map((c) => JSON.stringify(c))
        .join(', ')}${unknown.length > 8 ? ` and ${unknown.length - 8} more` : ''}`,
    );
  return Uint32Array.from(chars, (c) => index.get(c)!);
}

export function decodeText(corpus: Pick<CharCorpus, 'vocab'>, ids: ArrayLike<number>): string {
  return Array.from(ids, (i) => corpus.vocab[i] ?? '\uFFFD').join('');
}
