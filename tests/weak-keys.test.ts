// Ed25519 keys under which trivial signatures verify (shared/swarm/weak-keys.ts): WebCrypto here
// takes the all-zero signature under the all-zero key for some messages (shown below), so the
// project refuses such keys itself: every torsion point and every non-canonical encoding, and no
// key a session really makes.
import { describe, expect, it } from 'vitest';
import { fromHex, toHex } from '../shared/base/hex.js';
import { KeyRing, PeerKey } from '../shared/swarm/identity.js';
import { weakKeyProblem } from '../shared/swarm/weak-keys.js';
import { Rng } from './fuzz/rng.js';

const ED25519 = { name: 'Ed25519' } as const;
const SMALL = 'it is a point of small order, under which trivial signatures verify';
/** The little-endian encoding of y with the sign bit of x. */
const encode = (y: bigint, odd = false) => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((y >> BigInt(8 * i)) & 0xffn);
  if (odd) out[31] |= 0x80;
  return out;
};
const P = 2n ** 255n - 19n;

describe('weak keys', () => {
  it('WebCrypto alone takes the all-zero signature under the all-zero key for some messages', async () => {
    const key = await crypto.subtle.importKey('raw', new Uint8Array(32), ED25519, false, ['verify']);
    const rng = new Rng(5);
    let verified = 0;
    for (let i = 0; i < 32; i++) {
      const msg = new TextEncoder().encode(`swarm peer key for session ${rng.hex(32)}`);
      if (await crypto.subtle.verify(ED25519, key, new Uint8Array(64), msg)) verified++;
    }
    expect(verified).toBeGreaterThan(0);
    // Through the project's key ring, never.
    const ring = new KeyRing();
    expect(await ring.verify('00'.repeat(32), new Uint8Array(64), new TextEncoder().encode('anything'))).toBe(false);
  });

  it('refuses the torsion points by name: the identity, its negation, the points of order 4', () => {
    expect(weakKeyProblem(encode(1n))).toBe(SMALL); // (0, 1), order 1
    expect(weakKeyProblem(encode(P - 1n))).toBe(SMALL); // (0, −1), order 2
    expect(weakKeyProblem(encode(0n))).toBe(SMALL); // (√−1, 0), order 4
    expect(weakKeyProblem(encode(0n, true))).toBe(SMALL); // (−√−1, 0)
  });

  it('refuses the order-8 points, derived here: doubling one gives y = 0, so x² = −y² and d·y⁴ + 2y² − 1 = 0', () => {
    const m = (a: bigint) => ((a % P) + P) % P;
    const pow = (b: bigint, e: bigint): bigint => (e === 0n ? 1n : m((e & 1n ? b : 1n) * pow(m(b * b), e >> 1n)));
    const sqrt = (a: bigint): bigint | undefined => {
      const r = [pow(a, (P + 3n) / 8n), m(pow(a, (P + 3n) / 8n) * pow(2n, (P - 1n) / 4n))].find((x) => m(x * x) === m(a));
      return r;
    };
    const d = m(-121665n * pow(121666n, P - 2n));
    const root = sqrt(m(1n + d))!;
    const ys = [m(-1n + root), m(-1n - root)]
      .map((n) => m(n * pow(d, P - 2n)))
      .flatMap((y2) => {
        const y = sqrt(y2);
        return y === undefined ? [] : [y, m(-y)];
      });
    expect(ys).toHaveLength(2); // two y values, each with two x: the four points of order 8
    for (const y of ys) {
      expect(weakKeyProblem(encode(y))).toBe(SMALL);
      expect(weakKeyProblem(encode(y, true))).toBe(SMALL);
    }
    // Random encodings are points of large order or no points at all.
    const rng = new Rng(11);
    for (let i = 0; i < 100; i++) expect([undefined, 'it is not the encoding of a curve point']).toContain(weakKeyProblem(new Uint8Array(32).map(() => rng.int(0, 256))));
  });

  it('refuses non-canonical encodings (y ≥ p, or −0) and wrong lengths, and takes every key a session makes', async () => {
    expect(weakKeyProblem(encode(P + 1n))).toBe('it is not the encoding of a curve point'); // 1 under a second name
    expect(weakKeyProblem(encode(1n, true))).toBe('it is not the encoding of a curve point'); // x = −0
    expect(weakKeyProblem(new Uint8Array(31))).toBe('a key is 32 bytes, not 31');
    for (let i = 0; i < 20; i++) {
      const k = await PeerKey.generate();
      expect(weakKeyProblem(fromHex(k.publicHex))).toBeUndefined();
      const msg = new TextEncoder().encode(`message ${i}`);
      expect(await new KeyRing().verify(k.publicHex, await k.sign(msg), msg)).toBe(true);
    }
    expect(toHex(encode(1n))).toBe(`01${'00'.repeat(31)}`);
  });
});
