// What a peer tells the coordinator about the frames its neighbours sent it (ARCHITECTURE §6): with
// its round's report, the seals of exactly the inputs the routes gave it (and proof of any sender
// that sealed two frames for one of them); a plainly defective frame, shown with its sender's seal;
// a replay, shown with both seals; a training frame out of its norm band, to be audited. Only what
// the seals prove is shown: a norm-band refusal of an evaluation or generation frame proves nothing.
import type { ClientMessage, Seal } from '../swarm/protocol.js';
import { MAX_EVIDENCE_CHARS } from '../swarm/protocol.js';
import { FrameKind, HEADER_BYTES } from '../wire/frame.js';
import type { FrameLog } from './frame-log.js';
import type { HostileFrame } from './mailbox.js';

/** One microbatch routed through this peer, and its previous and next hops. */
export interface RoutedItem {
  mb: number;
  prev?: string;
  next?: string;
}

/** Evidence shown against one neighbour at most (the first that proves anything purges it). */
const MAX_SHOWN = 4;

export interface NeighbourReportsOptions {
  frames: FrameLog;
  /** A message to the coordinator. */
  report(msg: ClientMessage): void;
  log(line: string): void;
}

export class NeighbourReports {
  /** How much evidence this peer has shown the coordinator against each neighbour. */
  private readonly shown = new Map<string, number>();

  constructor(private readonly o: NeighbourReportsOptions) {}

  /** The seals of the inputs `items` of `round` took; first, proof of any sender that sealed two frames for one of them. */
  inputs(round: number, items: readonly RoutedItem[]): Seal[] {
    for (const seals of this.o.frames.equivocations(round)) this.o.report({ type: 'equivocation', seals });
    return this.o.frames.inputs(round, expectedInputs(items));
  }

  /**
   * A neighbour's frame was refused as its fault. A plain defect (it does not decode, is not
   * finite, has the wrong shape, is all zero) is shown to the coordinator with the sender's seal:
   * proof enough to purge it. So is a replay whose earlier frame is still in the log: both seals,
   * the earlier bytes and the later header prove the sender sent one payload as two pieces of work.
   * A norm-band refusal (an evaluation or generation frame) only fails what waited for it.
   */
  refused(from: string, what: HostileFrame): void {
    this.o.log(`refused a frame from ${from} (${what.why}): ${what.reason}`);
    if (what.why === 'window' || what.why === 'caps' || what.why === 'band') return;
    if (what.kind === undefined || what.round === undefined || what.mb === undefined) return;
    // The refused frame itself: another the sender sealed for the same slot proves nothing of it.
    const shown = this.o.frames.sealed('in', what.round, what.kind, what.mb, from, { bytes: what.bytes });
    if (!shown) return;
    if (what.why !== 'replay') return this.show(shown.seal, shown.bytes);
    const e = what.earlier;
    // The earlier frame with the same payload: a sender that sealed several for that slot (a flood of
    // mutants) must not make us show one the later frame does not repeat.
    const before = e?.round === undefined ? undefined : this.o.frames.sealed('in', e.round, e.kind, e.mb, from, { payloadOf: shown.bytes });
    if (before) this.show(shown.seal, before.bytes, { of: before.seal, header: base64(shown.bytes.subarray(0, HEADER_BYTES)) });
  }

  /** A neighbour's training frame out of its norm band was taken: the coordinator audits the microbatch before the round commits. */
  suspect(from: string, what: { round: number; mb: number; reason: string }): void {
    this.o.log(`a frame from ${from} (round ${what.round}, microbatch ${what.mb}) is out of band, asking for an audit: ${what.reason}`);
    this.o.report({ type: 'suspect', round: what.round, peer: from, microbatch: what.mb, reason: what.reason.slice(0, 1000) });
  }

  /** `seal` vouches for the refused frame; `bytes` are that frame, or for a replay the earlier one `replay.of` vouches for. */
  private show(seal: Seal, bytes: Uint8Array, replay?: { of: Seal; header: string }): void {
    // One proof purges the sender: a neighbour flooding bad frames must not make us flood the coordinator.
    const shown = this.shown.get(seal.from) ?? 0;
    if (shown >= MAX_SHOWN || 4 * Math.ceil(bytes.length / 3) > MAX_EVIDENCE_CHARS) return;
    this.shown.set(seal.from, shown + 1);
    this.o.report({ type: 'evidence', seal, frame: base64(bytes), ...(replay && { replay }) });
  }
}

/** The input frames routed items need: each microbatch's activation from its previous hop and gradient from its next. */
function expectedInputs(items: readonly RoutedItem[]): Array<{ kind: number; microbatch: number; from: string }> {
  return items.flatMap((i) => [
    ...(i.prev === undefined ? [] : [{ kind: FrameKind.Activation, microbatch: i.mb, from: i.prev }]),
    ...(i.next === undefined ? [] : [{ kind: FrameKind.Gradient, microbatch: i.mb, from: i.next }]),
  ]);
}

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
