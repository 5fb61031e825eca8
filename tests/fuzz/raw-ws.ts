// A WebSocket client written by hand over TCP, to send what no WebSocket library would: unmasked
// and reserved-opcode frames, invalid UTF-8, lengths above any cap, half a frame or half a
// handshake, fragments that never end. Of what the server sends it keeps text frames and the close code.
import { randomBytes } from 'node:crypto';
import { type Socket, connect } from 'node:net';

export const OP = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9 } as const;

export interface FrameOptions {
  fin?: boolean;
  mask?: boolean;
  rsv?: number;
  /** Announce this payload length instead of the real one (only the header claims it). */
  claim?: bigint;
}

/** One frame as a client would put it on the wire (masked unless told otherwise). */
export function encodeFrame(opcode: number, payload: Buffer, o: FrameOptions = {}): Buffer {
  const mask = o.mask ?? true;
  const len = o.claim ?? BigInt(payload.length);
  const head = [((o.fin ?? true) ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode];
  const m = mask ? 0x80 : 0;
  if (len < 126n) head.push(m | Number(len));
  else if (len < 65536n) head.push(m | 126, Number(len >> 8n), Number(len & 255n));
  else {
    head.push(m | 127);
    for (let i = 7; i >= 0; i--) head.push(Number((len >> BigInt(8 * i)) & 255n));
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, body]);
}

export function handshake(port: number): string {
  const key = randomBytes(16).toString('base64');
  return `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

export class RawClient {
  /** The code of the server's close frame, once it came; null if the socket ended without one. */
  readonly closed: Promise<number | null>;
  /** Payloads of the server's text frames. */
  readonly texts: string[] = [];
  private buf = Buffer.alloc(0);
  private upgraded?: () => void;
  private code: number | null = null;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d) => this.onData(d));
    // The server may reset a socket it cut off while we still write: that is the expected outcome.
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', () => resolve(this.code)));
  }

  /** Connect over TCP; with `upgrade`, complete the WebSocket handshake first. */
  static async open(port: number, upgrade = true): Promise<RawClient> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawClient(socket);
    if (!upgrade) return c;
    const upgraded = new Promise<void>((resolve) => (c.upgraded = resolve));
    socket.write(handshake(port));
    await Promise.race([upgraded, c.closed.then(() => Promise.reject(new Error('closed during the handshake')))]);
    return c;
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    if (this.upgraded) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (this.buf.subarray(0, 12).toString() === 'HTTP/1.1 101') this.upgraded();
      this.upgraded = undefined;
      this.buf = this.buf.subarray(end + 4);
    }
    this.readFrames();
  }

  /** Server frames are unmasked and unfragmented: text payloads and a close frame's code are kept. */
  private readFrames(): void {
    while (this.buf.length >= 2) {
      let len = this.buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        at = 10;
      }
      if (this.buf.length < at + len) return;
      const op = this.buf[0] & 0x0f;
      if (op === OP.text) this.texts.push(this.buf.subarray(at, at + len).toString('utf8'));
      if (op === OP.close) this.code = len >= 2 ? this.buf.readUInt16BE(at) : 1005;
      this.buf = this.buf.subarray(at + len);
    }
  }
}
