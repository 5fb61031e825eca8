// Sizes of JSON text, checked on every message before it is parsed or sent.

/** UTF-8 length of the JSON text of `v`, or undefined when `v` is not JSON (undefined, BigInt, cycles). */
export function jsonBytes(v: unknown): number | undefined {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? undefined : utf8Length(s);
  } catch {
    return undefined;
  }
}

/** UTF-8 byte count without TextEncoder allocations (the cap check runs on every message). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}
