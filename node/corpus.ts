// Training text from a file (Node): the bytes, described as the run config records them.
import { readFile } from 'node:fs/promises';
import { describeText } from '../shared/run/derive.js';

export const DEFAULT_DATA = new URL('../data/tinyshakespeare.txt', import.meta.url).pathname;

export async function loadText(path: string): Promise<{ text: string; sha256: string; chars: number }> {
  let raw: Uint8Array;
  try {
    raw = new Uint8Array(await readFile(path));
  } catch (e) {
    throw new Error(`cannot read the training text ${path}: ${(e as Error).message}`);
  }
  return describeText(raw, path);
}
