// What the coordinator can prove about a peer from seals alone (shared/wire/seal.ts), without seeing
// a tensor: a report citing a seal its sender never made is a lie of the reporter; two different
// frames one sender sealed for the same slot are the sender's equivocation. Keys are those peers
// registered with (kept after they are gone, so late evidence still checks).
import { KeyRing } from '../shared/swarm/identity.js';
import type { Seal } from '../shared/swarm/protocol.js';
import { verifySeal } from '../shared/wire/seal.js';

export type Verdict = { guilty: string; reason: string } | undefined;

export class Evidence {
  private readonly keys = new KeyRing();

  constructor(private readonly keyOf: (peerId: string) => string | undefined) {}

  /** The first of `seals`, reported by `reporter` as received, whose signature its sender never made. */
  async forged(reporter: string, seals: readonly Seal[]): Promise<Verdict> {
    for (const s of seals) {
      const key = this.keyOf(s.from);
      if (s.to !== reporter || !key || !(await verifySeal(s, this.keys, key))) {
        return { guilty: reporter, reason: `its report cites a seal ${s.from} never made (kind ${s.kind}, round ${s.step}, microbatch ${s.microbatch})` };
      }
    }
    return undefined;
  }

  /** Who is to blame for a claimed equivocation: the sender if both seals are its, else the reporter. */
  async equivocation(reporter: string, [a, b]: readonly [Seal, Seal]): Promise<Verdict> {
    const forged = await this.forged(reporter, [a, b]);
    if (forged) return forged;
    const sameSlot = a.from === b.from && a.kind === b.kind && a.step === b.step && a.microbatch === b.microbatch;
    if (!sameSlot || a.hash === b.hash) return { guilty: reporter, reason: 'its equivocation claim names two seals of different slots, or one frame twice' };
    return { guilty: a.from, reason: `sealed two different frames for round ${a.step} microbatch ${a.microbatch} (kind ${a.kind}) to ${reporter}` };
  }
}
