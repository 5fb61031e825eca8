// Who may register (ARCHITECTURE §6: identities are cheap, so they must at least be real): every
// connection gets a fresh nonce; a peer proves it holds its session key by signing that nonce, and,
// when it names an account to be paid at, that the account signed its key for this session. A key
// registers once; an account takes part as one live peer at a time. An address (a household, a
// server) holds at most MAX_PEERS_PER_ADDRESS live peers and registers at most
// MAX_REGISTRATIONS_PER_MINUTE times a minute: one machine cannot fill a stage with squatters that
// crowd honest peers out of each other's views. Peers on 127.0.0.1 (a local swarm) are one machine
// by design and carry no address; any other loopback address (127.0.0.2, …) is an address like any.
import { randomBytes } from 'node:crypto';
import { verifyMessage } from 'viem';
import { fromHex } from '../shared/base/hex.js';
import { KeyRing, accountMessage, keyChallenge } from '../shared/swarm/identity.js';
import { weakKeyProblem } from '../shared/swarm/weak-keys.js';
import type { ClientMessageOf } from '../shared/swarm/protocol.js';
import type { PeerRecord } from './roster.js';

/** Live peers one address may hold in a run. */
export const MAX_PEERS_PER_ADDRESS = 4;
/** Registrations one address may make in a minute. */
export const MAX_REGISTRATIONS_PER_MINUTE = 12;

/** The address a peer is known by: the remote IP, IPv4 written plainly; none for the local swarm's 127.0.0.1 and ::1. */
export function peerAddress(remote: string | undefined): string | undefined {
  const ip = remote?.replace(/^::ffff:/, '');
  if (!ip || ip === '::1' || ip === '127.0.0.1') return undefined;
  return ip;
}

export class Registrar<Conn extends object> {
  private readonly nonces = new WeakMap<Conn, string>();
  private readonly keys = new KeyRing();
  /** When each address last registered (within the last minute). */
  private readonly recent = new Map<string, number[]>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The nonce `conn`'s registration must sign (sent in its `hello`). */
  nonceFor(conn: Conn): string {
    const nonce = randomBytes(16).toString('hex');
    this.nonces.set(conn, nonce);
    return nonce;
  }

  /**
   * Why `msg` may not register on `conn` from `address` (peerAddress), or undefined. `peers`: every
   * record, `live`: the peers not gone. Then, right before placing it, ask `full`.
   */
  async problem(
    conn: Conn,
    msg: ClientMessageOf<'register'>,
    peers: readonly Readonly<PeerRecord>[],
    live: readonly Readonly<PeerRecord>[],
    address?: string,
  ): Promise<string | undefined> {
    const nonce = this.nonces.get(conn);
    if (!nonce) return 'this connection was given no nonce to sign';
    const hurried = address && this.hurried(address);
    if (hurried) return hurried;
    const weak = /^[0-9a-f]{64}$/i.test(msg.key) ? weakKeyProblem(fromHex(msg.key)) : 'it is not 64 hex digits';
    if (weak) return `the key proves nothing: ${weak}`;
    if (!(await this.keys.verify(msg.key, fromHex(msg.keyProof), keyChallenge(nonce)))) return "the key proof is not this connection's nonce signed by the key";
    if (peers.some((p) => p.key === msg.key)) return 'this key is already registered: every session makes its own key';
    if (!msg.account) return undefined;
    if (!msg.accountProof) return `account ${msg.account} given without its signature (accountProof)`;
    const valid = await verifyMessage({ address: msg.account as `0x${string}`, message: accountMessage(msg.key, nonce), signature: msg.accountProof as `0x${string}` }).catch(
      () => false,
    );
    if (!valid) return `the account proof is not ${msg.account}'s signature of this key and session`;
    const other = live.find((p) => p.account?.toLowerCase() === msg.account!.toLowerCase());
    if (other) return `account ${msg.account} is already taking part as ${other.peerId}: one live peer per account`;
    return undefined;
  }

  /**
   * Why `address` may not take part with one more peer (`live`: the peers not gone), if it may not.
   * Asked again right before placing: registrations checked side by side must not all fit one place.
   */
  full(address: string | undefined, live: readonly Readonly<PeerRecord>[]): string | undefined {
    const here = address === undefined ? 0 : live.filter((p) => p.address === address).length;
    return here >= MAX_PEERS_PER_ADDRESS ? `${address} already takes part with ${here} peers; at most ${MAX_PEERS_PER_ADDRESS} per address` : undefined;
  }

  /** Why `address` may not register again this minute, counting this attempt (the last few kept: a flood must not grow the list). */
  private hurried(address: string): string | undefined {
    const t = this.now();
    const times = [...(this.recent.get(address) ?? []).filter((at) => t - at < 60_000), t].slice(-(MAX_REGISTRATIONS_PER_MINUTE + 1));
    this.recent.set(address, times);
    for (const [a, ts] of this.recent) if (ts.every((at) => t - at >= 60_000)) this.recent.delete(a);
    return times.length > MAX_REGISTRATIONS_PER_MINUTE ? `${address} registered more than ${MAX_REGISTRATIONS_PER_MINUTE} times in the last minute` : undefined;
  }
}
