// What a peer proves about the frames it exchanges, and what it checks of others' (ARCHITECTURE §6):
// every frame goes out sealed by the session's key and comes in only if its sender sealed it for us
// (shared/wire/seal.ts); the seals of a round's inputs go with its report (frame-log.ts); a plainly
// defective frame is shown to the coordinator with its seal; when audited, the peer shows a witness
// its weights and the frames of one microbatch, and as a witness it recomputes another replica's
// (audit.ts). The session hands in the links, the seat and the coordinator; this holds no sockets.
import type { ClientMessage, PeerInfo, Seal, ServerMessageOf } from '../swarm/protocol.js';
import { MAX_EVIDENCE_CHARS } from '../swarm/protocol.js';
import { KeyRing, type PeerKey } from '../swarm/identity.js';
import { FrameKind, HEADER_BYTES } from '../wire/frame.js';
import { seal, unseal } from './seal.js';
import { Bundles, type Finding, decodeBundle, encodeBundle, isAuditBundle, judge } from './audit.js';
import { FrameLog } from './frame-log.js';
import type { HostileFrame } from './mailbox.js';
import type { StageSeat } from '../peer/seat.js';
import type { RoundWork } from '../peer/stage-runner.js';

export interface FrameTrustOptions {
  self(): string;
  key(): PeerKey;
  /** Who is in the swarm now, with their keys. */
  members(): readonly PeerInfo[];
  seat(): StageSeat | undefined;
  /** Bytes to a neighbour over its data channel. */
  send(to: string, bytes: Uint8Array): void;
  /** A message to the coordinator. */
  report(msg: ClientMessage): void;
  /** How long a witness waits for an audited peer's bundle. */
  timeoutMs: number;
  log(line: string): void;
  /** See SessionOptions.tamper. */
  tamper?(to: string, frame: Uint8Array): Uint8Array | readonly Uint8Array[];
}

/** Evidence shown against one neighbour at most (the first that proves anything purges it). */
const MAX_SHOWN = 4;

export class FrameTrust {
  private readonly frames = new FrameLog();
  private readonly keys = new KeyRing();
  /** Recent rounds' work (an audit asks for one of its microbatches). */
  private readonly works = new Map<number, RoundWork>();
  private readonly bundles = new Bundles();
  /** How much evidence this peer has shown the coordinator against each neighbour. */
  private readonly shown = new Map<string, number>();
  private witnessing?: { round: number; abort: AbortController };
  /** Audits read or swap the stage's weights outside the session's message queue: one at a time. */
  private gpuTurn: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: FrameTrustOptions) {}

  /** Seal a frame for `to` and send it; training frames are logged for the round's report. */
  async send(to: string, bytes: Uint8Array): Promise<void> {
    for (const frame of [this.o.tamper?.(to, bytes) ?? bytes].flat()) {
      const sealed = await seal(frame, this.o.key(), this.o.self(), to);
      this.frames.record('out', sealed.seal, frame);
      this.o.send(to, sealed.bytes);
    }
  }

  /** Bytes from a neighbour that are not a state transfer: an audit bundle, or a frame it must have sealed for us. */
  async receive(from: string, bytes: Uint8Array): Promise<void> {
    if (isAuditBundle(bytes)) return this.bundles.deliver(from, bytes);
    const key = this.o.members().find((p) => p.peerId === from)?.key;
    const opened = await unseal(bytes, this.keys, key, from, this.o.self());
    if (!opened.ok) return this.o.log(`dropped a frame from ${from}: ${opened.error}`);
    this.frames.record('in', opened.seal, opened.frame);
    this.o.seat()?.mailbox.deliver(from, opened.frame);
  }

  /** A round this peer computes begins. */
  begin(work: RoundWork): void {
    this.frames.begin(work.round);
    this.works.set(work.round, work);
    for (const r of this.works.keys()) if (r < work.round - 1) this.works.delete(r);
  }

  /** The seals of the inputs the round's routes gave this peer; first, proof of any sender that sealed two frames for one of them. */
  inputs(work: RoundWork): Seal[] {
    for (const seals of this.frames.equivocations(work.round)) this.o.report({ type: 'equivocation', seals });
    return this.frames.inputs(work.round, expectedInputs(work));
  }

  /** Round `round` is decided: an audit of it still waiting for its bundle is moot. */
  decided(round: number): void {
    if (this.witnessing && this.witnessing.round <= round) this.witnessing.abort.abort(new Error(`round ${round} was decided`));
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
    const shown = this.frames.sealed('in', what.round, what.kind, what.mb, from);
    if (!shown) return;
    if (what.why !== 'replay') return this.showEvidence(shown.seal, shown.bytes);
    const e = what.earlier;
    const before = e?.round === undefined ? undefined : this.frames.sealed('in', e.round, e.kind, e.mb, from);
    if (before) this.showEvidence(shown.seal, before.bytes, { of: before.seal, header: base64(shown.bytes.subarray(0, HEADER_BYTES)) });
  }

  /** A neighbour's training frame out of its norm band was taken: the coordinator audits the microbatch before the round commits. */
  suspect(from: string, what: { round: number; mb: number; reason: string }): void {
    this.o.log(`a frame from ${from} (round ${what.round}, microbatch ${what.mb}) is out of band, asking for an audit: ${what.reason}`);
    this.o.report({ type: 'suspect', round: what.round, peer: from, microbatch: what.mb, reason: what.reason.slice(0, 1000) });
  }

  /** `seal` vouches for the refused frame; `bytes` are that frame, or for a replay the earlier one `replay.of` vouches for. */
  private showEvidence(seal: Seal, bytes: Uint8Array, replay?: { of: Seal; header: string }): void {
    // One proof purges the sender: a neighbour flooding bad frames must not make us flood the coordinator.
    const shown = this.shown.get(seal.from) ?? 0;
    if (shown >= MAX_SHOWN || 4 * Math.ceil(bytes.length / 3) > MAX_EVIDENCE_CHARS) return;
    this.shown.set(seal.from, shown + 1);
    this.o.report({ type: 'evidence', seal, frame: base64(bytes), ...(replay && { replay }) });
  }

  /** Audited: send the witness this peer's weights and the sealed frames of the microbatch. */
  async audited(m: ServerMessageOf<'audit'>): Promise<void> {
    const seat = this.o.seat();
    const item = this.works.get(m.round)?.items.find((i) => i.mb === m.microbatch);
    if (!seat || !item) return this.o.log(`asked to show microbatch ${m.microbatch} of round ${m.round}, which this peer did not compute`);
    const params = await this.withGpu(() => seat.runtime.readParams());
    const f = (dir: 'in' | 'out', kind: number, peer: string | undefined) => (peer === undefined ? undefined : this.frames.frame(dir, m.round, kind, m.microbatch, peer));
    const frames = {
      xIn: f('in', FrameKind.Activation, item.prev),
      yOut: f('out', FrameKind.Activation, item.next),
      gIn: f('in', FrameKind.Gradient, item.next),
      dxOut: f('out', FrameKind.Gradient, item.prev),
    };
    this.o.send(m.witness, encodeBundle({ round: m.round, microbatch: m.microbatch, params, frames }));
  }

  /** Witness: recompute the audited peer's microbatch from its bundle, and say what was found. */
  async witness(v: ServerMessageOf<'verify'>): Promise<void> {
    const seat = this.o.seat();
    if (!seat) return;
    const abort = new AbortController();
    this.witnessing = { round: v.round, abort };
    let found: Finding;
    try {
      const bytes = await this.bundles.take(v.peer, v.round, v.microbatch, this.o.timeoutMs, abort.signal);
      found = await this.withGpu(() => judge(seat.witness, v, decodeBundle(bytes, seat.runtime.layout.total)));
    } catch (e) {
      if (abort.signal.aborted) return;
      found = { ok: false, reason: (e as Error).message };
    } finally {
      if (this.witnessing?.abort === abort) this.witnessing = undefined;
    }
    if (!found.ok) this.o.log(`audit of ${v.peer}'s microbatch ${v.microbatch} (round ${v.round}): ${found.reason}`);
    this.o.report({ type: 'verdict', round: v.round, microbatch: v.microbatch, peer: v.peer, ok: found.ok, reason: found.reason.slice(0, 1000) });
  }

  private withGpu<T>(f: () => Promise<T>): Promise<T> {
    const turn = this.gpuTurn.then(f, f);
    this.gpuTurn = turn.catch(() => {});
    return turn;
  }
}

/** The input frames a round's work needs: each microbatch's activation from its previous hop and gradient from its next. */
function expectedInputs(work: RoundWork): Array<{ kind: number; microbatch: number; from: string }> {
  return work.items.flatMap((i) => [
    ...(i.prev === undefined ? [] : [{ kind: FrameKind.Activation, microbatch: i.mb, from: i.prev }]),
    ...(i.next === undefined ? [] : [{ kind: FrameKind.Gradient, microbatch: i.mb, from: i.next }]),
  ]);
}

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
