// A contributor's proofs, kept on its own machine as each epoch settles (ledger/proof-file.ts): the
// peer session appends every `settled` message the coordinator sends it, so the contributor can
// claim later with the file alone. An unreadable old file is set aside, never overwritten.
import { type ChainCoordinates, type ProofFile, type SavedEpoch, encodeProofFile, proofsKey, readProofFile, withEpoch } from '../ledger/proof-file.js';
import type { PeerStorage } from './host.js';

/** Append `epoch` to the account's proofs for `chain`'s run; returns the key it is kept under. */
export async function keepProof(storage: PeerStorage, chain: ChainCoordinates, epoch: SavedEpoch, log: (line: string) => void): Promise<string> {
  const key = proofsKey(epoch.account, chain.runId);
  const bytes = await storage.get(key);
  let old: ProofFile | undefined;
  if (bytes) {
    try {
      old = readProofFile(bytes, key);
    } catch (e) {
      const aside = `${key}.unreadable-${Date.now()}`;
      await storage.put(aside, bytes);
      log(`${(e as Error).message}; kept it as ${aside} and started the file anew`);
    }
  }
  await storage.put(key, encodeProofFile(withEpoch(old, chain, epoch)));
  return key;
}
