// A link is a reliable, ordered, message-oriented byte pipe between two peers (a WebRTC data
// channel in production, an in-memory pair in tests). Large frames are split into chunks because
// data channels cap message size; chunks carry (message id, index, count) and are reassembled.

export interface Link {
  send(bytes: Uint8Array): void;
  onMessage(handler: (bytes: Uint8Array) => void): void;
  readonly bytesSent: number;
  readonly bytesReceived: number;
}

/** Raw transport underneath a ChunkedLink: one call per message, no size guarantees beyond max. */
export interface RawChannel {
  send(bytes: Uint8Array): void;
  onMessage(handler: (bytes: Uint8Array) => void): void;
}

const CHUNK_HEADER = 12; // u32 message id, u32 index, u32 count
/** 64 KiB is below every data channel implementation's message limit. */
export const DEFAULT_CHUNK = 64 * 1024;
/** By default a peer cannot make us buffer more than this for one message. */
const MAX_MESSAGE = 256 * 1024 * 1024;

export class ChunkedLink implements Link {
  bytesSent = 0;
  bytesReceived = 0;
  private nextId = 0;
  private partial: { id: number; count: number; parts: Uint8Array[]; size: number } | undefined;
  private handler: (bytes: Uint8Array) => void = () => {};

  constructor(
    private readonly raw: RawChannel,
    private readonly chunk = DEFAULT_CHUNK,
    /** Malformed chunk streams are reported here and dropped, never thrown into the transport. */
    private readonly onError: (e: Error) => void = () => {},
    /** Largest message the other side may make us reassemble (lowered once it is known what the peer may send). */
    public maxMessage = MAX_MESSAGE,
  ) {
    raw.onMessage((b) => this.receive(b));
  }

  send(bytes: Uint8Array): void {
    const body = this.chunk - CHUNK_HEADER;
    const count = Math.max(1, Math.ceil(bytes.length / body));
    const id = this.nextId++ >>> 0;
    for (let i = 0; i < count; i++) {
      const part = bytes.subarray(i * body, Math.min(bytes.length, (i + 1) * body));
      const msg = new Uint8Array(CHUNK_HEADER + part.length);
      const v = new DataView(msg.buffer);
      v.setUint32(0, id, true);
      v.setUint32(4, i, true);
      v.setUint32(8, count, true);
      msg.set(part, CHUNK_HEADER);
      this.raw.send(msg);
      this.bytesSent += msg.length;
    }
  }

  onMessage(handler: (bytes: Uint8Array) => void): void {
    this.handler = handler;
  }

  private receive(msg: Uint8Array): void {
    this.bytesReceived += msg.length;
    if (msg.length < CHUNK_HEADER) return this.onError(new Error(`chunk of ${msg.length} bytes is shorter than its header`));
    const v = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
    const [id, index, count] = [v.getUint32(0, true), v.getUint32(4, true), v.getUint32(8, true)];
    const part = msg.subarray(CHUNK_HEADER);
    if (index === 0) {
      if (this.partial) this.onError(new Error(`message ${this.partial.id} was cut off by message ${id}`));
      if (count === 0 || (count - 1) * (this.chunk - CHUNK_HEADER) >= this.maxMessage) {
        this.partial = undefined;
        return this.onError(new Error(`message ${id} claims ${count} chunks`));
      }
      this.partial = { id, count, parts: [], size: 0 };
    }
    const p = this.partial;
    if (!p || p.id !== id || p.parts.length !== index || p.count !== count) {
      this.partial = undefined;
      return this.onError(new Error(`chunk ${index}/${count} of message ${id} arrived out of order`));
    }
    p.parts.push(part.slice());
    p.size += part.length;
    if (p.size > this.maxMessage) {
      this.partial = undefined;
      return this.onError(new Error(`message ${id} exceeds ${this.maxMessage} bytes`));
    }
    if (p.parts.length < p.count) return;
    this.partial = undefined;
    const whole = new Uint8Array(p.size);
    let o = 0;
    for (const q of p.parts) {
      whole.set(q, o);
      o += q.length;
    }
    this.handler(whole);
  }
}

/** Two in-memory channels wired to each other, delivering asynchronously like a real network. */
export function memoryChannelPair(): [RawChannel, RawChannel] {
  const handlers: ((b: Uint8Array) => void)[] = [() => {}, () => {}];
  const make = (me: number): RawChannel => ({
    send: (bytes) => {
      const copy = bytes.slice();
      queueMicrotask(() => handlers[1 - me](copy));
    },
    onMessage: (h) => {
      handlers[me] = h;
    },
  });
  return [make(0), make(1)];
}

export function memoryLinkPair(chunk = DEFAULT_CHUNK): [Link, Link] {
  const [a, b] = memoryChannelPair();
  return [new ChunkedLink(a, chunk), new ChunkedLink(b, chunk)];
}
