// Who may register (ARCHITECTURE §6: identities are cheap, so they must at least be real): every
// connection gets a fresh nonce; a peer proves it holds its session key by signing that nonce, and,
// when it names an account to be paid at, that the account signed its key for this session. A key
// registers once; an account takes part as one live peer at a time.
import { randomBytes } from 'node:crypto';
import { verifyMessage } from 'viem';
import { fromHex } from '../shared/base/hex.js';
import { KeyRing, accountMessage, keyChallenge } from '../shared/swarm/identity.js';
import type { ClientMessageOf } from '../shared/swarm/protocol.js';
import type { PeerRecord } from './roster.js';

export class Registrar<Conn extends object> {
  private readonly nonces = new WeakMap<Conn, string>();
  private readonly keys = new KeyRing();

  /** The nonce `conn`'s registration must sign (sent in its `hello`). */
  nonceFor(conn: Conn): string {
    const nonce = randomBytes(16).toString('hex');
    this.nonces.set(conn, nonce);
    return nonce;
  }

  /** Why `msg` may not register on `conn`, or undefined. `peers`: every record, `live`: the peers not gone. */
  async problem(conn: Conn, msg: ClientMessageOf<'register'>, peers: readonly Readonly<PeerRecord>[], live: readonly Readonly<PeerRecord>[]): Promise<string | undefined> {
    const nonce = this.nonces.get(conn);
    if (!nonce) return 'this connection was given no nonce to sign';
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
}
