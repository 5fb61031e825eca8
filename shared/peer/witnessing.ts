// This peer's part in spot checks (ARCHITECTURE §6, trust/audit.ts). Audited: it sends the witness
// its weights and the sealed frames of the microbatch, as its frame log kept them. Witness: it waits
// for the audited peer's bundle, recomputes the microbatch with those weights and tells the
// coordinator what it found. Both read the stage's weights outside the session's message queue
// (a peer may witness the peer that witnesses it), so they take turns on the GPU.
import type { ClientMessage, ServerMessageOf } from '../swarm/protocol.js';
import { BundleMissing, Bundles, type Finding, decodeBundle, encodeBundle, judge } from '../trust/audit.js';
import type { FrameLog } from '../trust/frame-log.js';
import { FrameKind } from '../wire/frame.js';
import type { StageSeat } from './seat.js';
import type { RoundWork } from './stage-runner.js';

export interface WitnessingOptions {
  frames: FrameLog;
  seat(): StageSeat | undefined;
  sendBundle(to: string, bytes: Uint8Array): void;
  /** A message to the coordinator. */
  report(msg: ClientMessage): void;
  /** How long a witness waits for an audited peer's bundle. */
  timeoutMs: number;
  log(line: string): void;
}

export class Witnessing {
  /** Recent rounds' work (an audit asks for one of its microbatches). */
  private readonly works = new Map<number, RoundWork>();
  private readonly bundles = new Bundles();
  private witnessing?: { round: number; abort: AbortController };
  /** Audits read or swap the stage's weights outside the session's message queue: one at a time. */
  private gpuTurn: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: WitnessingOptions) {}

  /** A round this peer computes begins. */
  begin(work: RoundWork): void {
    this.works.set(work.round, work);
    for (const r of this.works.keys()) if (r < work.round - 1) this.works.delete(r);
  }

  /** An audited peer's bundle arrived (held briefly until this witness's `verify` asks for it). */
  deliver(from: string, bytes: Uint8Array): void {
    this.bundles.deliver(from, bytes);
  }

  /** Round `round` is decided: an audit of it still waiting for its bundle is moot. */
  decided(round: number): void {
    if (this.witnessing && this.witnessing.round <= round) this.witnessing.abort.abort(new Error(`round ${round} was decided`));
  }

  /** Audited: send the witness this peer's weights and the sealed frames of the microbatch. */
  async audited(m: ServerMessageOf<'audit'>): Promise<void> {
    const seat = this.o.seat();
    const item = this.works.get(m.round)?.items.find((i) => i.mb === m.microbatch);
    if (!seat || !item) return this.o.log(`asked to show microbatch ${m.microbatch} of round ${m.round}, which this peer did not compute`);
    const params = await this.withGpu(() => seat.runtime.readParams());
    const f = (dir: 'in' | 'out', kind: number, peer: string | undefined) => (peer === undefined ? undefined : this.o.frames.frame(dir, m.round, kind, m.microbatch, peer));
    const frames = {
      xIn: f('in', FrameKind.Activation, item.prev),
      yOut: f('out', FrameKind.Activation, item.next),
      gIn: f('in', FrameKind.Gradient, item.next),
      dxOut: f('out', FrameKind.Gradient, item.prev),
    };
    this.o.sendBundle(m.witness, encodeBundle({ round: m.round, microbatch: m.microbatch, params, frames }));
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
      found = { ok: false, reason: (e as Error).message, ...(e instanceof BundleMissing && { missing: true as const }) };
    } finally {
      if (this.witnessing?.abort === abort) this.witnessing = undefined;
    }
    if (!found.ok) this.o.log(`audit of ${v.peer}'s microbatch ${v.microbatch} (round ${v.round}): ${found.reason}`);
    this.o.report({
      type: 'verdict',
      round: v.round,
      microbatch: v.microbatch,
      peer: v.peer,
      ok: found.ok,
      reason: found.reason.slice(0, 1000),
      ...(found.missing && { missing: true }),
    });
  }

  private withGpu<T>(f: () => Promise<T>): Promise<T> {
    const turn = this.gpuTurn.then(f, f);
    this.gpuTurn = turn.catch(() => {});
    return turn;
  }
}
