// The coordinator's WebSocket transport: accepts connections, turns every text frame into a
// validated client message, answers bad frames with an error (closing a socket that keeps sending
// them) and validates every message out. It carries control messages only, JSON text frames under
// MAX_MESSAGE_BYTES: weights and tensors travel peer-to-peer, so a binary frame is a client bug,
// answered with an error and counted, never processed. It knows nothing of runs or peers: a plain
// HTTP GET is answered with one of the public documents its owner hands it (the run's spec), any
// other plain request is told to upgrade.
// It owns its HTTP server and every socket on it, upgraded or not, so closing never waits on a
// client: a half-sent handshake or a peer that never reads would otherwise keep a finished
// coordinator's process alive for minutes.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { type ClientMessage, MAX_MESSAGE_BYTES, type ServerMessage } from '../shared/swarm/protocol.js';
import { encodeServerMessage, parseClientMessage } from '../shared/swarm/parse.js';
import { originProblem } from './origins.js';

/** One client connection; `tag` is whatever the owner attaches (e.g. the peer id once registered). */
export interface Conn {
  readonly id: number;
  tag?: string;
  /** When its bad frames of the last BAD_WINDOW_MS came (at most maxBad of them). */
  readonly bad: number[];
  readonly ws: WebSocket;
  /** The remote IP address, as the socket reports it. */
  readonly address?: string;
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

/** Who may connect, and how: TLS (wss://) with a certificate and its key, PEM; pages from other origins allowed (origins.ts). */
export interface Access {
  tls?: { cert: string; key: string };
  origins?: readonly string[];
}

/** A public document served at a path to plain HTTP GETs, to any page (its owner publishes it to anyone). */
export interface PublicDocument {
  contentType: string;
  body: string;
}

/** The public documents by path (e.g. `/run.json`), or that a plain request is told to upgrade. */
function plainHttp(documents: Readonly<Record<string, PublicDocument>>): http.RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const doc = (req.method === 'GET' || req.method === 'HEAD') && Object.hasOwn(documents, path) ? documents[path] : undefined;
    if (doc) {
      const length = Buffer.byteLength(doc.body);
      res.writeHead(200, { 'content-type': doc.contentType, 'content-length': length, 'access-control-allow-origin': '*', 'cache-control': 'no-store' }).end(doc.body);
      return;
    }
    // Anything else is told to upgrade, as ws's own server would.
    res.writeHead(426, { 'content-type': 'text/plain' }).end(http.STATUS_CODES[426]);
  };
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
/**
 * A socket closed for misbehaving, or on shutdown, that does not answer the close handshake is
 * dropped after this; after as long again close() stops waiting for anything.
 */
const CLOSE_GRACE_MS = 1000;

/** Resolves when `p` does or after `ms`, whichever comes first. */
function atMost(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    void p.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export class Transport {
  readonly counters: TransportCounters = { messagesIn: 0, messagesOut: 0, badMessages: 0, binaryFrames: 0, binaryBytesReceived: 0 };
  readonly conns = new Set<Conn>();
  url?: string;
  private wss?: WebSocketServer;
  private server?: http.Server;
  /** Every TCP connection of the server, and those of them that asked for a WebSocket. */
  private readonly sockets = new Set<Socket>();
  private readonly upgraded = new WeakSet<Socket>();
  private closing?: Promise<void>;
  private seq = 0;

  constructor(
    private readonly handlers: TransportHandlers,
    private readonly log: (line: string) => void,
    /** Bad frames one socket may send within `badWindowMs` before it is closed. */
    private readonly maxBad = 20,
    private readonly badWindowMs = BAD_WINDOW_MS,
  ) {}

  /** Start listening, serving `documents` to plain GETs; resolves with the bound port (0 picks a free one). */
  async listen(port: number, host: string, access: Access = {}, documents: Readonly<Record<string, PublicDocument>> = {}): Promise<number> {
    if (this.server) throw new Error('the coordinator is already listening');
    const plain = plainHttp(documents);
    const server = access.tls ? https.createServer({ cert: access.tls.cert, key: access.tls.key }, plain) : http.createServer(plain);
    this.server = server;
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    // Registered before ws's own listener, so a handshake that completes while closing is cut, not answered.
    server.on('upgrade', (_req, socket: Socket) => (this.closing ? socket.destroy() : this.upgraded.add(socket)));
    const verifyClient = ({ origin }: { origin?: string }, done: (ok: boolean, code?: number, message?: string) => void): void => {
      const why = originProblem(origin || undefined, access.origins ?? []);
      if (why) this.log(`refused a handshake: ${why}`);
      done(!why, 403, 'Origin Not Allowed');
    };
    const wss = new WebSocketServer({ server, maxPayload: HARD_PAYLOAD_BYTES, verifyClient });
    this.wss = wss;
    // ws passes the server's errors on to wss (which throws without a listener).
    await new Promise<void>((resolve, reject) => {
      wss.once('error', reject);
      server.listen(port, host, () => {
        wss.off('error', reject);
        resolve();
      });
    });
    wss.on('error', (e) => this.log(`server error: ${e.message}`));
    wss.on('connection', (ws, req) => this.onConnection(ws, req.socket.remoteAddress));
    const actual = (server.address() as AddressInfo).port;
    this.url = `${access.tls ? 'wss' : 'ws'}://${host.includes(':') ? `[${host}]` : host}:${actual}`;
    return actual;
  }

  /**
   * Stop listening and close every connection. A socket that never finished its handshake is cut at
   * once; a peer that ignores the close handshake is cut after CLOSE_GRACE_MS; whatever a client
   * does, this resolves within about twice that.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const server = this.server;
    if (!server) return;
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    // Closing wss takes its error forwarding off the server: a late error is logged here instead.
    this.wss?.close();
    server.on('error', (e) => this.log(`server error while closing: ${e.message}`));
    for (const socket of this.sockets) if (!this.upgraded.has(socket)) socket.destroy();
    const conns = [...this.conns];
    const closed = Promise.all(conns.map((c) => (c.ws.readyState === WebSocket.CLOSED ? undefined : new Promise<void>((resolve) => c.ws.once('close', () => resolve())))));
    for (const c of conns) c.ws.close(1001, 'coordinator shutting down');
    await atMost(closed, CLOSE_GRACE_MS);
    for (const socket of this.sockets) socket.destroy();
    await atMost(Promise.all([closed, stopped]), CLOSE_GRACE_MS);
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

  private onConnection(ws: WebSocket, address: string | undefined): void {
    const conn: Conn = { id: ++this.seq, ws, bad: [], address };
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
