// A response body from a server nobody vouches for (a URL a run lists on chain), read only up to a
// limit: a hostile or broken server could otherwise send without end and fill memory, or the disk
// the bytes are written to.

/** The body's bytes; undefined as soon as they pass `maxBytes` (the rest is cancelled, never read). */
export async function readAtMost(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<Uint8Array | undefined> {
  const chunks: Uint8Array[] = [];
  const reader = body.getReader();
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > maxBytes) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
