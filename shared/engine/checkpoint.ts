// A block's training state as bytes: a versioned header (JSON) and the flat parameter, Adam m
// and Adam v arrays. Pure, so Node writes it to a file and a browser to IndexedDB.
const MAGIC = 0x53574b31; // "SWK1"

export interface TrainState {
  step: number;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export interface Checkpoint<Meta> extends TrainState {
  meta: Meta;
}

export function encodeCheckpoint<Meta>(c: Checkpoint<Meta>): Uint8Array {
  const n = c.params.length;
  if (c.m.length !== n || c.v.length !== n) throw new Error('checkpoint: params, m and v differ in length');
  const header = new TextEncoder().encode(JSON.stringify({ step: c.step, floats: n, meta: c.meta }));
  const pad = (4 - (header.length % 4)) % 4;
  const out = new Uint8Array(12 + header.length + pad + 12 * n);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, header.length, true);
  view.setUint32(8, n, true);
  out.set(header, 12);
  const body = new Float32Array(out.buffer, 12 + header.length + pad, 3 * n);
  body.set(c.params, 0);
  body.set(c.m, n);
  body.set(c.v, 2 * n);
  return out;
}

export function decodeCheckpoint<Meta>(bytes: Uint8Array): Checkpoint<Meta> {
  const fail = (why: string): never => {
    throw new Error(`not a valid checkpoint: ${why}`);
  };
  if (bytes.length < 12) fail('too short');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) fail('wrong magic number');
  const hlen = view.getUint32(4, true);
  const n = view.getUint32(8, true);
  const pad = (4 - (hlen % 4)) % 4;
  if (bytes.length !== 12 + hlen + pad + 12 * n) fail(`length ${bytes.length} does not match its header`);
  let header: { step: number; floats: number; meta: Meta };
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + hlen)));
  } catch {
    return fail('unreadable header');
  }
  if (header.floats !== n || !Number.isInteger(header.step) || header.step < 0) fail('inconsistent header');
  // Copy out: the input may be a view into a larger (pooled) buffer at any alignment.
  const body = new Float32Array(new Uint8Array(bytes.subarray(12 + hlen + pad)).buffer);
  for (let i = 0; i < body.length; i++) if (!Number.isFinite(body[i])) fail(`value ${i} is ${body[i]}`);
  return { step: header.step, meta: header.meta, params: body.slice(0, n), m: body.slice(n, 2 * n), v: body.slice(2 * n) };
}
