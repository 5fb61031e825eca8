// Ed25519 public keys that prove nothing. A point of small order (one of the curve's 8 torsion
// points) makes R + [k]A land back in that small group whatever the message, so a signature made of
// a torsion point and S = 0 verifies for a share of all messages under it; measured here, Node's
// WebCrypto accepted the all-zero key with the all-zero signature on a coordinator's random nonce
// about half the time. A peer registering with such a key could disown every frame it sealed
// (anyone could have made them), and register again and again. So such keys, and encodings of a
// coordinate ≥ p (one point under two names), are refused before any signature is checked.
//
// Arithmetic: twisted Edwards −x² + y² = 1 + d·x²·y² over p = 2²⁵⁵ − 19 in affine coordinates with
// BigInt; slow next to a library, but it runs once per key.

const P = 2n ** 255n - 19n;
const D = mod(-121665n * inverse(121666n));
/** √−1 mod p. */
const I = power(2n, (P - 1n) / 4n);

function mod(a: bigint): bigint {
  const r = a % P;
  return r < 0n ? r + P : r;
}

function power(b: bigint, e: bigint): bigint {
  let r = 1n;
  let x = mod(b);
  for (let k = e; k > 0n; k >>= 1n) {
    if (k & 1n) r = mod(r * x);
    x = mod(x * x);
  }
  return r;
}

function inverse(a: bigint): bigint {
  return power(a, P - 2n);
}

type Point = { x: bigint; y: bigint };

/** The point a 32-byte encoding names, or undefined when it names none (or names one non-canonically). */
function decode(bytes: Uint8Array): Point | undefined {
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? bytes[i] & 0x7f : bytes[i]);
  const odd = (bytes[31] & 0x80) !== 0;
  if (y >= P) return undefined;
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  const x2 = mod(u * inverse(v));
  let x = power(x2, (P + 3n) / 8n);
  if (mod(x * x) !== x2) x = mod(x * I);
  if (mod(x * x) !== x2) return undefined;
  if (x === 0n && odd) return undefined; // −0: a second name for x = 0
  if ((x & 1n) !== (odd ? 1n : 0n)) x = P - x;
  return { x, y };
}

function double(a: Point): Point {
  const xy = mod(a.x * a.y);
  const t = mod(D * xy * xy);
  return { x: mod(2n * xy * inverse(1n + t)), y: mod((a.y * a.y + a.x * a.x) * inverse(mod(1n - t))) };
}

/** Why a raw Ed25519 public key proves nothing, or undefined for a key that does. */
export function weakKeyProblem(raw: Uint8Array): string | undefined {
  if (raw.length !== 32) return `a key is 32 bytes, not ${raw.length}`;
  const a = decode(raw);
  if (!a) return 'it is not the encoding of a curve point';
  const eight = double(double(double(a)));
  if (eight.x === 0n && eight.y === 1n) return 'it is a point of small order, under which trivial signatures verify';
  return undefined;
}
