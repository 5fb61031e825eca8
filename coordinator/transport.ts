// The coordinator's WebSocket transport: accepts connections, turns every text frame into a
// validated client message, answers bad frames with an error (closing a socket that keeps sending
// them) and validates every message out. It carries control messages only, JSON text frames under
// MAX_MESSAGE_BYTES: weights and tensors travel peer-to-peer, so a binary frame is a client bug,
// answered with an error and counted, never processed. It knows nothing of runs or peers.
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { type ClientMessage, MAX_MESSAGE_BYTES, type ServerMessage } from '../shared/swarm/protocol.js';
import { encodeServerMessage, parseClientMessage } from '../shared/swarm/parse.js';

/** One client connection; `tag` is whatever the owner attaches (e.g. the peer id once registered). */
export interface Conn {
  readonly id: number;
  tag?: string;
  /** When its bad frames of the last BAD_WINDOW_MS came (at most maxBad of them). */
  readonly bad: number[];
  readonly ws: WebSocket;
}

export interface TransportCounters {
  messagesIn: number;
  messagesOut: number;
  /** Frames answered with an error (malformed, oversized, binary, or refused by the owner). */
  badMessages: number;
  binaryFrames: number;
  binaryBytesReceived: number;
}

export interface TransportHandlers {
  /** A connection opened (e.g. to greet it). */
  open?(conn: Conn): void;
  message(conn: Conn, msg: ClientMessage): void;
  close(conn: Conn): void;
}

/** ws closes a connection outright above this; between MAX_MESSAGE_BYTES and here we answer with an error instead. */
const HARD_PAYLOAD_BYTES = 4 * MAX_MESSAGE_BYTES;
/**
 * Most bytes waiting for one client to read (ws would queue without limit for a socket that never
 * reads, e.g. one that signals itself and reads nothing). Kernel buffers hold megabytes before the
 * first byte waits here, so a reading peer, even one whose event loop is blocked compiling kernels
 * for a while, stays far below it.
 */
const MAX_BUFFERED_BYTES = 128 * MAX_MESSAGE_BYTES;
/**
 * Bad frames count against a socket for this long: a client that keeps sending them is closed, but
 * a long-lived peer's occasional refused message (a signal racing a neighbour's departure) is
 * forgiven instead of adding up over a run of hours.
 */
const BAD_WINDOW_MS = 60_000;
/** A socket closed for misbehaving that does not answer the close handshake is dropped after this. */
const CLOSE_GRACE_MS = 1000;

export class Transport {
  readonly counters: TransportCounters = { messagesIn: 0, messagesOut: 0, badMessages: 0, binaryFrames: 0, binaryBytesReceived: 0 };
  readonly conns = new Set<Conn>();
  url?: string;
  private wss?: WebSocketServer;
  private seq = 0;

  constructor(
    private readonly handlers: TransportHandlers,
    private readonly log: (line: string) => void,
    /** Bad frames one socket may send within `badWindowMs` before it is closed. */
    private readonly maxBad = 20,
    private readonly badWindowMs = BAD_WINDOW_MS,
  ) {}

  /** Start listening; resolves with the bound port (0 picks a free one). */
  async listen(port: number, host: string): Promise<number> {
    if (this.wss) throw new Error('the coordinator is already listening');
    const wss = new WebSocketServer({ port, host, maxPayload: HARD_PAYLOAD_BYTES });
    this.wss = wss;
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve);
      wss.once('error', reject);
    });
    wss.on('error', (e) => this.log(`server error: ${e.message}`));
    wss.on('connection', (ws) => this.onConnection(ws));
    const actual = (wss.address() as AddressInfo).port;
    this.url = `ws://${host}:${actual}`;
    return actual;
  }

  /** Close every connection (a peer that ignores the close handshake is cut after 1 s) and the server. */
  async close(): Promise<void> {
    const closing = [...this.conns].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.ws.readyState === WebSocket.CLOSED) return resolve();
          c.ws.once('close', () => resolve());
          c.ws.close(1001, 'coordinator shutting down');
          setTimeout(() => {
            c.ws.terminate();
            resolve();
          }, 1000).unref();
        }),
    );
    await Promise.all(closing);
    const wss = this.wss;
    if (wss) await new Promise<void>((resolve) => wss.close(() => resolve()));
  }

  send(conn: Conn, msg: ServerMessage): void {
    const enc = encodeServerMessage(msg);
    if (!enc.ok) {
      // Our own bug: refuse to put an invalid message on the wire rather than crash.
      this.log(`BUG: not sending an invalid ${msg.type}: ${enc.error}`);
      return;
    }
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    if (conn.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.log(`dropping ${this.name(conn)}: ${conn.ws.bufferedAmount} bytes are waiting for it to read`);
      return conn.ws.terminate();
    }
    conn.ws.send(enc.text);
    this.counters.messagesOut++;
  }

  /** Answer a bad frame with an error; a socket that keeps sending them is closed. */
  reject(conn: Conn, message: string, ref?: string): void {
    // An answer that comes after the socket closed (a check that took a while) is told nobody and counts for nothing.
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    this.counters.badMessages++;
    const now = Date.now();
    while (conn.bad.length > 0 && now - conn.bad[0] > this.badWindowMs) conn.bad.shift();
    conn.bad.push(now);
    this.log(`rejected from ${this.name(conn)}: ${message.slice(0, 300)}`);
    this.send(conn, { type: 'error', message: message.slice(0, 1024), ...(ref ? { ref: ref.slice(0, 64) } : {}) });
    if (conn.bad.length < this.maxBad) return;
    this.send(conn, { type: 'error', message: `closing the connection after ${conn.bad.length} bad messages` });
    conn.ws.close(1008, 'too many bad messages');
    setTimeout(() => this.terminate(conn), CLOSE_GRACE_MS).unref();
  }

  /** Drop a connection now (a peer declared lost must not linger half-alive). */
  terminate(conn: Conn): void {
    if (conn.ws.readyState === WebSocket.OPEN || conn.ws.readyState === WebSocket.CONNECTING) conn.ws.terminate();
  }

  private name(conn: Conn): string {
    return conn.tag ?? `socket ${conn.id}`;
  }

  private onConnection(ws: WebSocket): void {
    const conn: Conn = { id: ++this.seq, ws, bad: [] };
    this.conns.add(conn);
    ws.on('message', (data, isBinary) => this.onFrame(conn, data, isBinary));
    // ws reports protocol violations (e.g. a frame above maxPayload) here, then closes the socket.
    ws.on('error', (e) => this.log(`socket error from ${this.name(conn)}: ${e.message}`));
    ws.on('close', () => {
      this.conns.delete(conn);
      this.handlers.close(conn);
    });
    this.handlers.open?.(conn);
  }

  private onFrame(conn: Conn, data: RawData, isBinary: boolean): void {
    // ws still delivers what a closing socket sent: a connection cut off (or shutting down) is not listened to any more.
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    this.counters.messagesIn++;
    const bytes = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data instanceof ArrayBuffer ? data.byteLength : data.length;
    if (isBinary) {
      this.counters.binaryFrames++;
      this.counters.binaryBytesReceived += bytes;
      return this.reject(conn, `binary frames are not accepted (got ${bytes} bytes): the coordinator carries JSON control messages only; tensors go peer-to-peer`);
    }
    // Check before decoding so an oversized frame costs no string allocation.
    if (bytes > MAX_MESSAGE_BYTES) return this.reject(conn, `message is ${bytes} bytes, above the ${MAX_MESSAGE_BYTES}-byte limit`);
    const text = (Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)).toString('utf8');
    const parsed = parseClientMessage(text);
    if (!parsed.ok) return this.reject(conn, parsed.error);
    this.handlers.message(conn, parsed.msg);
  }
}
