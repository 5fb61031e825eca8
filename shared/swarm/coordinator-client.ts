// A peer's connection to the coordinator. Environment-agnostic: the WebSocket constructor is handed
// in (the browser's `WebSocket`, or `WebSocket` from the `ws` package in Node), so the same client
// runs in a tab, in Electron's renderer and in a headless worker.
//
// Every message is validated both ways: outgoing ones before they hit the wire (a bad one is our
// bug and throws), incoming ones on arrival (a bad one is reported as an `invalid` event, never
// thrown into the socket's event loop).
import { type PeerKey, accountMessage, keyChallenge } from './identity.js';
import type { ClientMessage, ClientMessageOf, ServerMessage, ServerMessageOf, ServerMessageType } from './protocol.js';
import { toHex } from '../base/hex.js';
import { encodeClientMessage, parseServerMessage } from './parse.js';
import { coordinatorUrlProblem } from './coordinator-url.js';

/**
 * The part of the WebSocket API both the browser and `ws` implement. Handler parameters are typed
 * `never` so that both implementations' differently-typed event objects are assignable; the client
 * reads only `data`, `code` and `reason` from them.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: never) => void) | null;
  onmessage: ((ev: never) => void) | null;
  onclose: ((ev: never) => void) | null;
  onerror: ((ev: never) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Events: one per server message type, plus the socket closing and a server message that failed validation. */
export type CoordinatorClientEvents = { [K in ServerMessageType]: ServerMessageOf<K> } & {
  close: { code: number; reason: string };
  invalid: { error: string };
};

/** What a peer registers with, besides the proofs the client makes from its identity. */
export type RegisterInfo = Omit<ClientMessageOf<'register'>, 'type' | 'key' | 'keyProof' | 'account' | 'accountProof'>;

/** Who registers: this session's key, and the account it is paid at (which signs to prove it). */
export interface PeerIdentity {
  key: PeerKey;
  account?: { address: `0x${string}`; signMessage(message: string): Promise<`0x${string}`> };
}

const OPEN = 1;

/** Why a socket to `url` never opened, as a sentence (`detail`: what Node's ws said; a browser says nothing). */
function notReached(url: string, detail: string | undefined): string {
  if (detail && /certificate|self[- ]signed|CERT_|altnames|SSL|TLS/i.test(detail)) return `the coordinator at ${url} has no valid certificate: ${detail}`;
  if (detail?.includes('Unexpected server response: 403')) return `the coordinator at ${url} refused the connection: pages from this origin may not join its run`;
  if (detail) return `the coordinator at ${url} is unreachable: ${detail}`;
  return `the coordinator at ${url} could not be reached: it is down or unreachable from here${url.startsWith('wss:') ? ', or its certificate is not valid' : ''}`;
}
/** Messages kept for types nobody listens to yet (see `on`). */
const MAX_PENDING = 256;

export class CoordinatorClient {
  /** Set once the coordinator welcomed us. */
  peerId?: string;
  private ws?: WebSocketLike;
  private readonly handlers = new Map<keyof CoordinatorClientEvents, Set<(ev: never) => void>>();
  private pending: ServerMessage[] = [];

  constructor(
    private readonly url: string,
    private readonly WebSocketImpl: WebSocketConstructor,
  ) {}

  get connected(): boolean {
    return this.ws?.readyState === OPEN;
  }

  /**
   * Open the socket, wait for the coordinator's `hello`, register with proofs made for its nonce,
   * and resolve with our peer id on `welcome`. Rejects with the coordinator's error (e.g. the
   * swarm is full), on a close before welcome, or after `timeoutMs`. Register handlers (at least
   * for `assign`) before calling this or right after it resolves; messages that arrive with no
   * handler for their type are kept and delivered when one is added.
   */
  connect(register: RegisterInfo, identity: PeerIdentity, opts: { timeoutMs?: number } = {}): Promise<Pick<ServerMessageOf<'welcome'>, 'peerId' | 'chain' | 'iceServers'>> {
    if (this.ws) return Promise.reject(new Error('CoordinatorClient.connect called twice'));
    const refused = coordinatorUrlProblem(this.url);
    if (refused) return Promise.reject(new Error(refused));
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const ws = new this.WebSocketImpl(this.url);
      this.ws = ws;
      let welcomed = false;
      let failed = false;
      const fail = (e: Error): void => {
        if (welcomed || failed) return;
        failed = true;
        clearTimeout(timer);
        reject(e);
        ws.close();
      };
      const timer = setTimeout(() => fail(new Error(`no welcome from ${this.url} within ${timeoutMs} ms`)), timeoutMs);
      const hello = (nonce: string) =>
        registerMessage(register, identity, nonce).then(
          (m) => {
            const enc = encodeClientMessage(m);
            if (!enc.ok) return fail(new Error(enc.error));
            if (ws.readyState === OPEN) ws.send(enc.text);
          },
          (e: Error) => fail(new Error(`could not sign the registration: ${e.message}`)),
        );

      ws.onmessage = (ev: { data: unknown }) => {
        if (typeof ev.data !== 'string') return this.emit('invalid', { error: 'the coordinator sent a binary frame' });
        const parsed = parseServerMessage(ev.data);
        if (!parsed.ok) return this.emit('invalid', { error: parsed.error });
        const msg = parsed.msg;
        if (!welcomed && !failed) {
          if (msg.type === 'hello') return void hello(msg.nonce);
          if (msg.type === 'welcome') {
            welcomed = true;
            clearTimeout(timer);
            this.peerId = msg.peerId;
            resolve({ peerId: msg.peerId, chain: msg.chain, iceServers: msg.iceServers });
          } else if (msg.type === 'error') {
            fail(new Error(`coordinator refused registration: ${msg.message}`));
          }
        }
        this.dispatch(msg);
      };
      // Node's ws says why a socket failed; the browser says nothing, and the close event that follows carries the code.
      let why: string | undefined;
      let opened = false;
      ws.onopen = () => {
        opened = true;
      };
      ws.onerror = (ev: { message?: unknown }) => {
        if (typeof ev.message === 'string' && ev.message) why = ev.message;
      };
      ws.onclose = (ev: { code?: number; reason?: string }) => {
        const code = ev.code ?? 1006;
        const reason = ev.reason ?? '';
        fail(new Error(opened ? `connection to ${this.url} closed before welcome (code ${code}${reason ? `: ${reason}` : ''})` : notReached(this.url, why)));
        this.emit('close', { code, reason });
      };
    });
  }

  /**
   * Listen for one message type (or `close` / `invalid`). Returns an unsubscribe function. Messages
   * of this type that arrived before anyone listened are delivered right after (in a microtask).
   */
  on<K extends keyof CoordinatorClientEvents>(type: K, handler: (ev: CoordinatorClientEvents[K]) => void): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    const fn = handler as (ev: never) => void;
    set.add(fn);
    const queued = this.pending.filter((m) => m.type === type);
    if (queued.length) {
      this.pending = this.pending.filter((m) => m.type !== type);
      queueMicrotask(() => {
        for (const m of queued) if (set.has(fn)) handler(m as CoordinatorClientEvents[K]);
      });
    }
    return () => set.delete(fn);
  }

  /**
   * Validate and send. Throws on an invalid message (a caller bug: e.g. a NaN loss must be left
   * out, not sent). Returns false, sending nothing, when the socket is not open.
   */
  send(msg: ClientMessage): boolean {
    const enc = encodeClientMessage(msg);
    if (!enc.ok) throw new Error(enc.error);
    if (!this.ws || this.ws.readyState !== OPEN) return false;
    this.ws.send(enc.text);
    return true;
  }

  close(code = 1000, reason = 'bye'): void {
    this.ws?.close(code, reason);
  }

  private dispatch(msg: ServerMessage): void {
    const set = this.handlers.get(msg.type);
    if (!set?.size) {
      this.pending.push(msg);
      if (this.pending.length > MAX_PENDING) this.pending.shift();
      return;
    }
    this.emit(msg.type, msg as CoordinatorClientEvents[typeof msg.type]);
  }

  private emit<K extends keyof CoordinatorClientEvents>(type: K, ev: CoordinatorClientEvents[K]): void {
    for (const h of [...(this.handlers.get(type) ?? [])]) (h as (e: CoordinatorClientEvents[K]) => void)(ev);
  }
}

/** The register message for the connection whose `hello` carried `nonce`. */
export async function registerMessage(info: RegisterInfo, identity: PeerIdentity, nonce: string): Promise<ClientMessageOf<'register'>> {
  const key = identity.key.publicHex;
  const keyProof = toHex(await identity.key.sign(keyChallenge(nonce)));
  const a = identity.account;
  return {
    type: 'register',
    ...info,
    key,
    keyProof,
    ...(a && { account: a.address, accountProof: await a.signMessage(accountMessage(key, nonce)) }),
  };
}
