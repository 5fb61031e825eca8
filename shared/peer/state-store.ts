// The stage states a peer keeps on its own machine (host storage): one at each averaging point,
// and the one it stops at when it leaves. A returning peer offers them when it registers, so a
// stage whose every other peer is gone comes back from here. Keys name the run, the stage, the
// step and the parameters' hash, so the offer needs no reading of the states themselves.
import type { Checkpoint } from '../engine/checkpoint.js';
import type { HeldState } from '../swarm/protocol.js';
import type { PeerStorage } from './host.js';
import { type StageSnapshot, type StateMeta, paramsHash, readSnapshot } from './state-sync.js';

/** States kept per run and stage; older ones are deleted. */
const KEEP = 2;
/** States offered at registration (the protocol's cap). */
const OFFER = 16;

const stateKey = (runId: string, stage: number, step: number, hash: string) => `states/${encodeURIComponent(runId)}/${stage}/${step}-${hash}.ckpt`;

function parseKey(key: string): HeldState | undefined {
  const m = /^states\/([^/]+)\/(\d+)\/(\d+)-([0-9a-f]{64})\.ckpt$/.exec(key);
  if (!m) return undefined;
  return { runId: decodeURIComponent(m[1]), stage: Number(m[2]), step: Number(m[3]), hash: m[4] };
}

/** Every state kept, newest first (at most the protocol's cap). */
export async function heldStates(storage: PeerStorage): Promise<HeldState[]> {
  const all = (await storage.list('states/')).flatMap((k) => parseKey(k) ?? []);
  return all.sort((a, b) => b.step - a.step).slice(0, OFFER);
}

/** Keep `s` and forget all but the newest few states of its run and stage. */
export async function keepState(storage: PeerStorage, s: StageSnapshot, runId: string): Promise<void> {
  await storage.put(stateKey(runId, s.stage, s.step, s.paramsHash), s.bytes);
  const mine = (await storage.list(`states/${encodeURIComponent(runId)}/${s.stage}/`)).flatMap((k) => {
    const h = parseKey(k);
    return h ? [{ key: k, step: h.step }] : [];
  });
  mine.sort((a, b) => b.step - a.step);
  for (const old of mine.slice(KEEP)) await storage.delete(old.key);
}

/** A kept state, checked against the hash it was offered under. */
export async function loadHeld(storage: PeerStorage, meta: StateMeta, step: number, hash: string): Promise<Checkpoint<StateMeta>> {
  const bytes = await storage.get(stateKey(meta.runId, meta.stage, step, hash));
  if (!bytes) throw new Error(`this peer no longer has stage ${meta.stage}'s state at step ${step}`);
  const c = readSnapshot(bytes, meta);
  const got = await paramsHash(c.params);
  if (got !== hash || c.step !== step)
    throw new Error(`the kept state of stage ${meta.stage} at step ${step} is corrupted (hash ${got.slice(0, 12)}…, expected ${hash.slice(0, 12)}…)`);
  return c;
}
