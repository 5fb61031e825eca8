// Poisoned state sync (issue 19, attack 7): a replica signs every state it gives (shared/trust/
// state-seal.ts), computed from the bytes that go out; a joiner refuses a state not signed by its
// sender, and shows the coordinator the seal of one it refused. The coordinator (coordinator/claims.ts
// with stage-states.ts, real Ed25519 keys) convicts the signer only when the seal contradicts what
// the signer itself reported for that step and no other member reported that hash, or names a step
// past the last commit; a seal never made convicts the one who shows it.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { poisonedState } from '../bench/adversary.js';
import { Claims } from '../coordinator/claims.js';
import { StageStates } from '../coordinator/stage-states.js';
import { type StageSnapshot, StateExchange, paramsHash, snapshotOf } from '../shared/peer/state-sync.js';
import { KeyRing, PeerKey } from '../shared/swarm/identity.js';
import type { StateSeal } from '../shared/swarm/protocol.js';
import { signState, verifyStateSeal } from '../shared/trust/state-seal.js';
import { testRun } from './test-run.js';

const run = testRun();
const H = 'a'.repeat(64);
const D = 'd'.repeat(64);
const P = 'f'.repeat(64);

describe('state seals at the coordinator', async () => {
  const keys = { m: await PeerKey.generate(), a: await PeerKey.generate(), d: await PeerKey.generate(), n: await PeerKey.generate(), b: await PeerKey.generate() };
  type Who = keyof typeof keys;
  const stages = new StageStates(2);
  // At the averaging after step 4, m and a agree on H; d drifted to D.
  for (const [who, hash] of [
    ['m', H],
    ['a', H],
    ['d', D],
  ] as const)
    stages.vote(0, 4, hash, who, 0);
  const lastStep = 4;
  const claims = new Claims({
    run,
    keyOf: (id) => keys[id as Who]?.publicHex,
    stepOfRound: () => undefined,
    stateLie: (s) => stages.contradiction(s.stage, s.step, s.hash, s.from, lastStep),
    log: () => {},
  });
  const signed = (who: Who, step: number, hash: string) => signState(keys[who], run.runId, { from: who, stage: 0, step, hash });

  it('convict a signer whose state contradicts the hash it reported for that step, or is past the last commit', async () => {
    expect(await claims.state('b', await signed('m', 4, P), true)).toEqual({
      kind: 'guilty',
      verdict: { guilty: 'm', reason: `it gave a state of stage 0 at step 4 hashing to ${P.slice(0, 12)}…, having reported ${H.slice(0, 12)}… for that step` },
    });
    expect(await claims.state('b', await signed('m', 8, H), false)).toEqual({
      kind: 'guilty',
      verdict: { guilty: 'm', reason: "it gave a state of stage 0 at step 8, past the run's last commit (step 4)" },
    });
  });

  it('prove nothing against an honest signer: its own hash, a drifted replica’s own or the one it loaded again, or a step it reported nothing for', async () => {
    expect(await claims.state('b', await signed('m', 4, H), false)).toEqual({ kind: 'clean' });
    expect((await claims.state('b', await signed('m', 4, H), true)).kind).toBe('unproven');
    expect((await claims.state('b', await signed('d', 4, D), true)).kind).toBe('unproven');
    expect((await claims.state('b', await signed('d', 4, H), true)).kind).toBe('unproven');
    expect((await claims.state('b', await signed('n', 4, P), true)).kind).toBe('unproven');
    expect((await claims.state('b', await signed('m', 3, P), true)).kind).toBe('unproven');
  });

  it('convict the one who shows a seal its signer never made: another key, or another run', async () => {
    const forged: StateSeal = { ...(await signed('b', 4, P)), from: 'm' };
    expect(await claims.state('b', forged, true)).toEqual({
      kind: 'guilty',
      verdict: { guilty: 'b', reason: 'it showed a seal of a state m never signed (stage 0, step 4)' },
    });
    const otherRun = await signState(keys.m, 'another-run', { from: 'm', stage: 0, step: 4, hash: P });
    expect(await claims.state('b', otherRun, true)).toMatchObject({ kind: 'guilty', verdict: { guilty: 'b' } });
  });
});

describe('signed state transfers between two peers', async () => {
  const replicaKey = await PeerKey.generate();
  const ring = new KeyRing();
  const state = { step: 4, params: Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)), m: new Float32Array(64), v: new Float32Array(64).fill(1e-4) };
  const snapshot = await snapshotOf(state, { runId: run.runId, stage: 0 });

  /** A replica serving `offer`, with `onWire` to tamper what it sends, and a joiner fetching from it. */
  function pair(offer: () => StageSnapshot, onWire: (b: Uint8Array) => Uint8Array = (b) => b) {
    const meta = () => ({ runId: run.runId, stage: 0 });
    const verify = (runId: string, s: StateSeal) => verifyStateSeal(s, runId, ring, s.from === 'r' ? replicaKey.publicHex : undefined);
    let joiner: StateExchange | undefined;
    const replica = new StateExchange({
      meta,
      send: (_to, b) => void joiner!.onMessage('r', onWire(b)),
      offer,
      seal: (runId, f) => signState(replicaKey, runId, { ...f, from: 'r' }),
      verify,
      log: () => {},
    });
    joiner = new StateExchange({
      meta,
      send: (_to, b) => void replica.onMessage('j', b),
      offer: () => undefined,
      seal: () => Promise.reject(new Error('unused')),
      verify,
      log: () => {},
    });
    return joiner;
  }

  it('a joiner gets the state with its sender’s seal of the parameters it got', async () => {
    const got = await pair(() => snapshot).fetch('r', 0, 5000);
    expect(got.state.params).toEqual(state.params);
    expect(got.seal).toMatchObject({ from: 'r', stage: 0, step: 4, hash: await paramsHash(state.params) });
  });

  it('a poisoned state is sealed as what it is: the seal names the poisoned parameters’ hash, which proves the lie', async () => {
    const got = await pair(() => poisonedState(snapshot)).fetch('r', 0, 5000);
    expect(got.seal.hash).toBe(await paramsHash(got.state.params));
    expect(got.seal.hash).not.toBe(snapshot.paramsHash);
  });

  it('a state changed after it was signed is refused as not signed by its sender', async () => {
    // One parameter changed on the wire, and the wire's SHA-256 made again: only the signature tells.
    const rewrite = (b: Uint8Array) => {
      if (b[5] !== 2) return b;
      const out = b.slice();
      const at = Buffer.from(out).indexOf(Buffer.from(Float32Array.of(state.params[5]).buffer));
      new DataView(out.buffer).setFloat32(at, 7, true);
      out.set(createHash('sha256').update(out.subarray(112)).digest(), 16);
      return out;
    };
    await expect(pair(() => snapshot, rewrite).fetch('r', 0, 5000)).rejects.toThrow(/^r's state is not signed by r$/);
  });
});
