// Sealed frames (shared/trust/seal.ts) with real Ed25519 keys: what a seal proves, and everything a
// forger or a replaying peer could try that it must not prove.
import { describe, expect, it } from 'vitest';
import { KeyRing, PeerKey } from '../shared/swarm/identity.js';
import { FrameKind, encodeFrame } from '../shared/wire/frame.js';
import { SEAL_BYTES, seal, unseal, verifySeal } from '../shared/trust/seal.js';

const frame = (step = 7, mb = 2) =>
  encodeFrame({ kind: FrameKind.Activation, tag: step, microbatch: mb, rows: 4, cols: 3, dtype: 'int8', tensor: Float32Array.from({ length: 12 }, (_, i) => i - 5) });

describe('sealed frames', () => {
  it('a sealed frame opens for its receiver with its sender key, and its seal is checkable by anyone holding that key', async () => {
    const alice = await PeerKey.generate();
    const keys = new KeyRing();
    const f = frame();
    const { bytes, seal: s } = await seal(f, alice, 'alice', 'bob');
    expect(bytes.length).toBe(f.length + SEAL_BYTES);
    expect(s).toMatchObject({ kind: FrameKind.Activation, tag: 7, microbatch: 2, from: 'alice', to: 'bob' });
    const opened = await unseal(bytes, keys, alice.publicHex, 'alice', 'bob');
    expect(opened.ok).toBe(true);
    if (opened.ok) {
      expect([...opened.frame]).toEqual([...f]);
      expect(opened.seal).toEqual(s);
    }
    expect(await verifySeal(s, keys, alice.publicHex)).toBe(true);
  });

  it('refuses a changed byte, another sender or receiver, another key, and a seal whose facts were edited', async () => {
    const alice = await PeerKey.generate();
    const mallory = await PeerKey.generate();
    const keys = new KeyRing();
    const { bytes, seal: s } = await seal(frame(), alice, 'alice', 'bob');
    for (const i of [0, 5, 8, 12, 40, bytes.length - 70, bytes.length - 1]) {
      const bad = bytes.slice();
      bad[i] ^= 1;
      expect((await unseal(bad, keys, alice.publicHex, 'alice', 'bob')).ok, `byte ${i} flipped`).toBe(false);
    }
    // Forwarded to someone else, or claimed to come from someone else.
    expect(await unseal(bytes, keys, alice.publicHex, 'alice', 'carol')).toEqual({ ok: false, error: "the frame's seal is not alice's signature" });
    expect((await unseal(bytes, keys, mallory.publicHex, 'mallory', 'bob')).ok).toBe(false);
    expect(await unseal(bytes, keys, undefined, 'alice', 'bob')).toEqual({ ok: false, error: 'no key known for alice' });
    expect((await unseal(bytes.subarray(0, 40), keys, alice.publicHex, 'alice', 'bob')).ok).toBe(false);
    // A receiver reporting the seal under another tag, microbatch, hash or sender proves nothing.
    for (const edit of [{ tag: 8 }, { microbatch: 3 }, { kind: FrameKind.Gradient }, { hash: 'ab'.repeat(32) }, { from: 'carol' }, { sig: '00'.repeat(64) }, { sig: 'zz' }]) {
      expect(await verifySeal({ ...s, ...edit }, keys, alice.publicHex), JSON.stringify(edit)).toBe(false);
    }
    expect(await verifySeal(s, keys, mallory.publicHex)).toBe(false);
    expect(await verifySeal(s, keys, 'not a key')).toBe(false);
  });

  it('old content under a new tag needs a new seal: the replayed bytes open only as the old frame', async () => {
    const alice = await PeerKey.generate();
    const keys = new KeyRing();
    const old = await seal(frame(3, 0), alice, 'alice', 'bob');
    const opened = await unseal(old.bytes, keys, alice.publicHex, 'alice', 'bob');
    expect(opened.ok && opened.seal.tag).toBe(3);
    // Re-stamping the header breaks the seal.
    const restamped = old.bytes.slice();
    new DataView(restamped.buffer).setUint32(8, 9, true);
    expect((await unseal(restamped, keys, alice.publicHex, 'alice', 'bob')).ok).toBe(false);
  });
});
