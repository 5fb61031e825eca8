// Who a peer is, provably. Each session makes an Ed25519 key (WebCrypto: the same code in Node, a
// tab and Electron); the coordinator's `hello` gives every connection a fresh nonce, and the peer
// registers with its public key, the nonce signed by that key (it holds the key, and the proof
// cannot be replayed on another connection) and, when it names an account to be paid at, the
// account's EIP-191 signature binding the account to this key and this nonce (nobody can register
// under an account they do not hold). The key then signs what the peer sends its neighbours. Keys
// under which trivial signatures verify prove nothing and verify nothing (weak-keys.ts).
import { fromHex, toHex } from '../base/hex.js';
import { weakKeyProblem } from './weak-keys.js';

const ED25519 = { name: 'Ed25519' } as const;

/** The text an account signs (personal_sign) to be paid for the work of the peer holding `key`. */
export function accountMessage(key: string, nonce: string): string {
  return `Join the training swarm as peer key ${key} (session ${nonce})`;
}

/** The bytes a peer's key signs to prove it holds the key on this connection. */
export function keyChallenge(nonce: string): Uint8Array {
  return new TextEncoder().encode(`swarm peer key for session ${nonce}`);
}

/** This session's signing key. */
export class PeerKey {
  private constructor(
    private readonly privateKey: CryptoKey,
    /** The raw 32-byte public key as 64 hex digits. */
    readonly publicHex: string,
  ) {}

  static async generate(): Promise<PeerKey> {
    const k = (await crypto.subtle.generateKey(ED25519, false, ['sign', 'verify'])) as CryptoKeyPair;
    const raw = new Uint8Array(await crypto.subtle.exportKey('raw', k.publicKey));
    return new PeerKey(k.privateKey, toHex(raw));
  }

  async sign(bytes: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(await crypto.subtle.sign(ED25519, this.privateKey, bytes as Uint8Array<ArrayBuffer>));
  }
}

/** Public keys by their hex, imported once. */
export class KeyRing {
  private readonly keys = new Map<string, Promise<CryptoKey | undefined>>();

  /** Whether `sig` is `publicHex`'s signature of `bytes`. Never throws (a malformed key verifies nothing). */
  async verify(publicHex: string, sig: Uint8Array, bytes: Uint8Array): Promise<boolean> {
    const key = await this.key(publicHex);
    if (!key || sig.length !== 64) return false;
    try {
      return await crypto.subtle.verify(ED25519, key, sig as Uint8Array<ArrayBuffer>, bytes as Uint8Array<ArrayBuffer>);
    } catch {
      return false;
    }
  }

  forget(publicHex: string): void {
    this.keys.delete(publicHex);
  }

  private key(publicHex: string): Promise<CryptoKey | undefined> {
    let k = this.keys.get(publicHex);
    if (!k) {
      k = importKey(publicHex);
      this.keys.set(publicHex, k);
    }
    return k;
  }
}

async function importKey(publicHex: string): Promise<CryptoKey | undefined> {
  try {
    const raw = fromHex(publicHex);
    if (weakKeyProblem(raw)) return undefined;
    return await crypto.subtle.importKey('raw', raw as Uint8Array<ArrayBuffer>, ED25519, false, ['verify']);
  } catch {
    return undefined;
  }
}
