// What the coordinator can prove about a peer from seals alone (seal.ts), without seeing
// a tensor: a report citing a seal its sender never made is a lie of the reporter; two different
// frames one sender sealed for the same slot are the sender's equivocation. Keys are those peers
// registered with (kept after they are gone, so late evidence still checks).
import { boundaryWidth } from '../engine/model.js';
import { implausible } from './norm-band.js';
import { KeyRing } from '../swarm/identity.js';
import type { Seal } from '../swarm/protocol.js';
import { runStageConfigs } from '../run/derive.js';
import { dtypeOf } from '../wire/codec.js';
import { type Frame, HEADER_BYTES, decodeFrame, isTrainingKind } from '../wire/frame.js';
import { verifySeal } from './seal.js';
import { sha256Hex } from '../base/hex.js';
import type { RunConfig } from '../run/config.js';

export type Verdict = { guilty: string; reason: string } | undefined;

export class Evidence {
  private readonly keys = new KeyRing();

  constructor(private readonly keyOf: (peerId: string) => string | undefined) {}

  /** The first of `seals`, reported by `reporter` as received, whose signature its sender never made. */
  async forged(reporter: string, seals: readonly Seal[]): Promise<Verdict> {
    for (const s of seals) {
      const key = this.keyOf(s.from);
      if (s.to !== reporter || !key || !(await verifySeal(s, this.keys, key))) {
        return { guilty: reporter, reason: `its report cites a seal ${s.from} never made (kind ${s.kind}, round ${s.tag}, microbatch ${s.microbatch})` };
      }
    }
    return undefined;
  }

  /**
   * Who is to blame for a frame shown as plainly defective: its sender if it sealed exactly these
   * bytes and they are; the reporter if the seal or the bytes are not what it says, or if it is no
   * training frame; nobody (the claim is unproven) if the frame is fine as far as its bytes go.
   */
  async defective(reporter: string, seal: Seal, frame: Uint8Array, run: RunConfig): Promise<Verdict | 'unproven'> {
    const forged = await this.forged(reporter, [seal]);
    if (forged) return forged;
    if ((await sha256Hex(frame)) !== seal.hash) return { guilty: reporter, reason: 'the frame it showed is not the one the seal it cites vouches for' };
    // Receivers log, and so can show, training frames only (frame-log.ts): any other frame shown
    // is an honest sender's evaluation or generation frame turned into an accusation.
    if (!isTrainingKind(seal.kind)) return { guilty: reporter, reason: `it showed a frame of kind ${seal.kind} as evidence: only training frames are ever shown` };
    const defect = plainDefect(frame, run);
    if (!defect) return 'unproven';
    return { guilty: seal.from, reason: `sent ${reporter} a defective frame (round ${seal.tag}, microbatch ${seal.microbatch}): ${defect}` };
  }

  /**
   * Who is to blame for a claimed replay: the sender if it sealed `earlier` (shown with its bytes)
   * and, for other work, a frame whose bytes are `header` followed by the same payload; the reporter
   * if the seals or bytes are not what it says. The same work sent again (a discarded step routed
   * again in a new round repeats its frames bit for bit) proves nothing. `stepOf` gives a round's step.
   */
  async replayed(
    reporter: string,
    { later, earlier, bytes, header }: { later: Seal; earlier: Seal; bytes: Uint8Array; header: Uint8Array },
    run: RunConfig,
    stepOf: (round: number) => number | undefined,
  ): Promise<Verdict | 'unproven'> {
    const forged = await this.forged(reporter, [later, earlier]);
    if (forged) return forged;
    const replayed = new Uint8Array(bytes.length);
    replayed.set(bytes);
    replayed.set(header.subarray(0, HEADER_BYTES));
    const matches = header.length === HEADER_BYTES && bytes.length > HEADER_BYTES && later.from === earlier.from;
    if (!matches || (await sha256Hex(bytes)) !== earlier.hash || (await sha256Hex(replayed)) !== later.hash) {
      return { guilty: reporter, reason: 'the frames it showed as a replay are not those the seals it cites vouch for' };
    }
    const [s1, s2] = [stepOf(earlier.tag), stepOf(later.tag)];
    const sameWork = earlier.kind === later.kind && earlier.microbatch === later.microbatch && (s1 === undefined || s2 === undefined || s1 === s2);
    if (!isTrainingKind(earlier.kind) || !isTrainingKind(later.kind) || sameWork || plainDefect(bytes, run) !== undefined) return 'unproven';
    return {
      guilty: later.from,
      reason: `sent ${reporter} the payload of its round ${earlier.tag} microbatch ${earlier.microbatch} again as round ${later.tag} microbatch ${later.microbatch} (a replay)`,
    };
  }

  /** Who is to blame for a claimed equivocation: the sender if both seals are its, else the reporter. */
  async equivocation(reporter: string, [a, b]: readonly [Seal, Seal]): Promise<Verdict> {
    const forged = await this.forged(reporter, [a, b]);
    if (forged) return forged;
    const sameSlot = a.from === b.from && a.kind === b.kind && a.tag === b.tag && a.microbatch === b.microbatch;
    if (!sameSlot || a.hash === b.hash) return { guilty: reporter, reason: 'its equivocation claim names two seals of different slots, or one frame twice' };
    return { guilty: a.from, reason: `sealed two different frames for round ${a.tag} microbatch ${a.microbatch} (kind ${a.kind}) to ${reporter}` };
  }

  /**
   * Two replicas' reports of the weights one member sealed for them at the same averaging, with
   * different hashes: the member is to blame if it made both seals (it sent different weights to
   * different replicas), else the reporter whose seal it never made.
   */
  async splitWeights(a: { reporter: string; seal: Seal }, b: { reporter: string; seal: Seal }): Promise<Verdict> {
    const forged = (await this.forged(a.reporter, [a.seal])) ?? (await this.forged(b.reporter, [b.seal]));
    if (forged) return forged;
    return { guilty: a.seal.from, reason: `sealed different weights for the averaging after step ${a.seal.tag} to ${a.reporter} and to ${b.reporter}` };
  }
}

/**
 * What is plainly wrong with a training frame of this run, from its bytes alone: it does not decode
 * (or is not finite), is not a boundary tensor of the run's shape and codec, or is implausible (all
 * zero, absurdly large). Undefined when nothing is: a statistical refusal (a norm band) proves nothing here.
 */
export function plainDefect(frame: Uint8Array, run: RunConfig): string | undefined {
  let f: Frame;
  try {
    f = decodeFrame(frame);
  } catch (e) {
    return (e as Error).message;
  }
  const rows = run.model.batch * run.model.seq;
  const cols = boundaryWidth(runStageConfigs(run)[0]);
  if (f.rows !== rows || f.cols !== cols || f.dtype !== dtypeOf(run.codec))
    return `a ${f.rows}×${f.cols} ${f.dtype} frame where the run sends ${rows}×${cols} ${dtypeOf(run.codec)}`;
  return implausible(f.tensor);
}
