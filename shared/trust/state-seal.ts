// A replica signs every stage state it gives a joiner or an heir: which run and stage, which step,
// and the SHA-256 of the parameters it sends, computed from the bytes that go out. A joiner that
// finds the state is not the one the stage's replicas agreed on shows the coordinator this
// signature, never the state: the sender cannot deny what it gave, the joiner cannot invent it,
// and the coordinator sets it against the hash the sender itself reported for that step.
//
//   signed = "SWSS" ‖ stage u32le ‖ step u32le ‖ sha256(params) ‖ runId ‖ 0x00 ‖ from   (ids UTF-8)
import { fromHex, toHex } from '../base/hex.js';
import type { KeyRing, PeerKey } from '../swarm/identity.js';
import type { StateSeal } from '../swarm/protocol.js';

export type StateFacts = Omit<StateSeal, 'sig'>;

/** The bytes the sender signs. */
export function stateSealMessage(runId: string, f: StateFacts): Uint8Array {
  const ids = new TextEncoder().encode(`${runId}\0${f.from}`);
  const out = new Uint8Array(4 + 4 + 4 + 32 + ids.length);
  const view = new DataView(out.buffer);
  out.set([0x53, 0x57, 0x53, 0x53]);
  view.setUint32(4, f.stage, true);
  view.setUint32(8, f.step, true);
  out.set(fromHex(f.hash), 12);
  out.set(ids, 44);
  return out;
}

export async function signState(key: PeerKey, runId: string, f: StateFacts): Promise<StateSeal> {
  return { ...f, sig: toHex(await key.sign(stateSealMessage(runId, f))) };
}

/** Whether `s` is `senderKey`'s signature of its facts in run `runId`. Never throws. */
export function verifyStateSeal(s: StateSeal, runId: string, keys: KeyRing, senderKey: string | undefined): Promise<boolean> {
  if (!senderKey || !/^[0-9a-f]{64}$/.test(s.hash) || !/^[0-9a-f]{128}$/.test(s.sig)) return Promise.resolve(false);
  return keys.verify(senderKey, fromHex(s.sig), stateSealMessage(runId, s));
}
