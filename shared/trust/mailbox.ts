// Everything neighbours send a peer lands here, sorted by sender and by what it is for: training
// frames (activations, gradients, evaluation), generation frames and replica weights each get an
// inbox per sender. Keeping senders apart means a frame is only ever taken from the peer the plan
// says it comes from, and whatever one peer sends can only crowd out its own frames.
//
// Nothing a neighbour sends is trusted. A frame is decoded only if it has exactly the shape this
// stage expects for its kind (so no frame costs more memory than an honest one), what a sender may
// have held at once is bounded (rounds ahead, generation requests, frames and bytes), and every
// boundary tensor must look like one (norm-band.ts) and must not replay an earlier one (replay.ts).
// A frame refused for any of these reasons is its sender's fault: it is reported through onHostile
// and fails at once the take waiting for it. Late, stale or duplicate frames (a discarded round's)
// are honest and only counted.
import { type Frame, FrameKind, type FrameShapes, type WireError, type WireErrorCode, decodeExpected, readHeader, isGenerationKind } from '../wire/frame.js';
import { Inbox, frameBytesHeld } from './inbox.js';
import { NormBand, implausible, rms } from './norm-band.js';
import { type PayloadUse, RecentPayloads, tensorHash } from './replay.js';

export interface Inboxes {
  train: Inbox;
  gen: Inbox;
  avg: Inbox;
}

/** Why a frame was refused as its sender's fault: the decoder's code, or one of the mailbox's checks. */
export type HostileWhy = WireErrorCode | 'window' | 'caps' | 'implausible' | 'band' | 'replay';

export interface HostileFrame {
  /** What the frame's header claims, when it could be read. */
  kind?: FrameKind;
  /** The header's step field: the round of a training frame, the request id of a generation frame, the step of replica weights. */
  round?: number;
  mb?: number;
  why: HostileWhy;
  reason: string;
  /** For a replay: what the same payload was sent as before. */
  earlier?: PayloadUse;
  /** The refused frame as it was delivered (what its sender sealed), when it was one. */
  bytes?: Uint8Array;
}

/** Most a sender may have held here at once, over its inboxes; bytes count decoded tensors and token ids. */
export interface SenderCaps {
  frames: number;
  bytes: number;
}

export interface MailboxOptions {
  /** The exact shape of every kind of frame this stage takes (stageFrames). */
  shapes: FrameShapes;
  perSender: SenderCaps;
  /** A frame `from` sent was refused as its fault (see HostileFrame). Must not throw. */
  onHostile?(from: string, what: HostileFrame): void;
  /**
   * A training frame out of its boundary's norm band: taken (an honest stage's loss spike can be
   * as far out as a gradient scaled ×100), and reported so the coordinator audits it.
   */
  onSuspect?(from: string, what: { kind: FrameKind; round: number; mb: number; reason: string }): void;
}

/** Replica weights travel as rows of this many floats (the flat parameter buffer is a multiple of 64). */
export const REPLICA_COLS = 64;
/** Training frames are held for rounds at most this far ahead of the newest round this peer knows. */
export const TRAIN_ROUNDS_AHEAD = 4;
/** Generation requests one sender may have frames held for (a stage's requests in flight at once); a new one evicts the oldest. */
export const GEN_OPEN_REQUESTS = 16;
/** Generation frames held per request (an honest stage has at most two outstanding: the start and one activation). */
export const GEN_FRAMES_PER_REQUEST = 4;
/** Averaging steps one sender may have weights held for; a new one evicts the oldest. */
export const AVG_STEPS_HELD = 2;
/** Training steps of recent rounds remembered (to tell a re-routed step from a replay). */
const ROUND_STEPS = 64;

const BOUNDARY_KINDS: ReadonlySet<number> = new Set([FrameKind.Activation, FrameKind.Gradient, FrameKind.EvalActivation, FrameKind.GenerateActivation]);
/** Boundary tensors of training rounds: what an audit can check (the coordinator's witnesses recompute them). */
const TRAINING_KINDS: ReadonlySet<number> = new Set([FrameKind.Activation, FrameKind.Gradient]);
/**
 * The band a boundary tensor is judged by: its boundary's forward values (training, evaluation
 * and generation rows are the same stage's output: evaluation frames come too seldom, and generation
 * ones too late, to keep a band of their own current) or its backward ones (gradients).
 */
const bandOf = (kind: FrameKind) => (kind === FrameKind.Gradient ? 'backward' : 'forward');

class Refusal extends Error {
  constructor(
    readonly why: HostileWhy,
    message: string,
    readonly earlier?: PayloadUse,
  ) {
    super(message);
  }
}

interface Sender extends Inboxes {
  recent: RecentPayloads;
}

export class Mailbox {
  private readonly senders = new Map<string, Sender>();
  private readonly bands = { forward: new NormBand(), backward: new NormBand() };
  /** Frames taken while out of band: they must not move the band. */
  private readonly outliers = new WeakSet<Frame>();
  private readonly roundSteps = new Map<number, number>();
  private round = 0;
  /** Frames refused as their sender's fault, by sender. */
  readonly hostile = new Map<string, number>();
  /** Frames dropped to make room for newer ones (generation requests, averaging steps). */
  evicted = 0;

  constructor(private readonly o: MailboxOptions) {}

  /** The inboxes of frames from `peerId`. */
  from(peerId: string): Inboxes {
    return this.sender(peerId);
  }

  private sender(peerId: string): Sender {
    let s = this.senders.get(peerId);
    if (!s) {
      // A band learns from the frames taken (used), not from all filed: a neighbour cannot drag it
      // with frames no route asked for.
      const taken = (f: Frame) => {
        if (BOUNDARY_KINDS.has(f.kind) && !this.outliers.has(f)) this.bands[bandOf(f.kind)].add(rms(f.tensor));
      };
      s = { train: new Inbox({}, taken), gen: new Inbox({}, taken), avg: new Inbox(), recent: new RecentPayloads() };
      this.senders.set(peerId, s);
    }
    return s;
  }

  /**
   * A round message arrived: `round` is the newest round this peer knows, for training step `step`.
   * Call it on arrival, not when the round's turn comes: it sets the window of rounds whose frames
   * are held (until a round is known, only the sender's caps bound them), and the step tells a
   * discarded step routed again from a replay.
   */
  setRound(round: number, step?: number): void {
    this.round = Math.max(this.round, round);
    if (step === undefined) return;
    this.roundSteps.set(round, step);
    if (this.roundSteps.size > ROUND_STEPS) this.roundSteps.delete(this.roundSteps.keys().next().value!);
  }

  /** Decode a frame `from` sent and file it. Never throws: a bad frame is counted against its sender. */
  deliver(from: string, bytes: Uint8Array): void {
    const s = this.sender(from);
    let f: Frame;
    try {
      readHeader(bytes);
    } catch (e) {
      const reason = `bytes that are not a frame: ${(e as Error).message}`;
      for (const inbox of [s.train, s.gen, s.avg]) inbox.taint(`it sent ${reason}`);
      return this.blame(from, s.train, { why: (e as WireError).code, reason });
    }
    try {
      f = decodeExpected(bytes, this.o.shapes);
    } catch (e) {
      const h = readHeader(bytes);
      return this.refuse(from, this.inboxOf(s, h.kind), { kind: h.kind, round: h.tag, mb: h.microbatch, why: (e as WireError).code, reason: (e as Error).message, bytes });
    }
    const inbox = this.inboxOf(s, f.kind);
    const stale = inbox.whyStale(f);
    if (stale) return inbox.reject(stale);
    try {
      this.admit(s, inbox, f, from);
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      return this.refuse(from, inbox, { kind: f.kind, round: f.tag, mb: f.microbatch, why: e.why, reason: e.message, bytes, ...(e.earlier && { earlier: e.earlier }) });
    }
  }

  /** File `f` if every check passes; throws a Refusal naming the first that fails. */
  private admit(s: Sender, inbox: Inbox, f: Frame, from: string): void {
    this.checkHeld(s, inbox, f);
    const outOfBand = this.checkValues(f);
    const use = this.payloadUse(f);
    const h = use ? tensorHash(f.tensor) : 0;
    const before = use && s.recent.replayOf(h, use);
    if (before)
      throw new Refusal(
        'replay',
        `the payload repeats the one sent as kind ${before.kind} microbatch ${before.mb}${before.step === undefined ? '' : ` of step ${before.step}`}`,
        before,
      );
    inbox.pushFrame(f);
    if (use) s.recent.remember(h, use);
    if (outOfBand) {
      this.outliers.add(f);
      this.o.onSuspect?.(from, { kind: f.kind, round: f.tag, mb: f.microbatch, reason: outOfBand });
    }
  }

  /**
   * Refuses implausible values, and an evaluation or generation tensor out of its band. A training
   * tensor out of band is let through, to be audited: returns why it is out.
   */
  private checkValues(f: Frame): string | undefined {
    const boundary = BOUNDARY_KINDS.has(f.kind);
    if (!boundary && f.kind !== FrameKind.ReplicaWeights) return undefined;
    const bad = implausible(f.tensor);
    if (bad) throw new Refusal('implausible', bad);
    const out = boundary ? this.bands[bandOf(f.kind)].check(rms(f.tensor)) : undefined;
    if (out && !TRAINING_KINDS.has(f.kind)) throw new Refusal('band', out);
    return out;
  }

  /** Refuses a frame that would hold more than this sender may, after evicting what may go. */
  private checkHeld(s: Sender, inbox: Inbox, f: Frame): void {
    // A peer that knows no round yet (a joiner whose first round message is still on its way: data
    // channels can beat the coordinator's socket) holds early frames within the sender's caps.
    if (inbox === s.train && this.round > 0 && f.tag > this.round + TRAIN_ROUNDS_AHEAD) {
      throw new Refusal('window', `round ${f.tag} is more than ${TRAIN_ROUNDS_AHEAD} ahead of round ${this.round}, the newest this peer knows`);
    }
    if (inbox === s.gen) this.makeRoom(inbox, f.tag, GEN_OPEN_REQUESTS, GEN_FRAMES_PER_REQUEST);
    if (inbox === s.avg) this.makeRoom(inbox, f.tag, AVG_STEPS_HELD, Number.POSITIVE_INFINITY);
    const frames = s.train.held.frames + s.gen.held.frames + s.avg.held.frames + 1;
    const bytes = s.train.held.bytes + s.gen.held.bytes + s.avg.held.bytes + frameBytesHeld(f);
    const cap = this.o.perSender;
    if (frames > cap.frames || bytes > cap.bytes)
      throw new Refusal('caps', `the sender would have ${frames} frames (${bytes} bytes) held here, over its ${cap.frames} (${cap.bytes} bytes)`);
  }

  /** Room for a frame of `step`: evict the oldest steps beyond `steps`; refuse beyond `perStep` frames of one step. */
  private makeRoom(inbox: Inbox, step: number, steps: number, perStep: number): void {
    const held = inbox.heldTags();
    if ((held.get(step) ?? 0) >= perStep) throw new Refusal('caps', `${perStep} frames of step ${step} are already held`);
    if (held.has(step)) return;
    for (const [old, n] of held) {
      if (held.size < steps) break;
      inbox.close(old);
      held.delete(old);
      this.evicted += n;
    }
  }

  /** What a training frame's payload is, for replay checks (undefined: not checked; see replay.ts). */
  private payloadUse(f: Frame): PayloadUse | undefined {
    if (f.kind === FrameKind.EvalActivation) return { kind: f.kind, mb: f.microbatch };
    if (f.kind === FrameKind.Activation || f.kind === FrameKind.Gradient) return { kind: f.kind, mb: f.microbatch, step: this.roundSteps.get(f.tag), round: f.tag };
    return undefined;
  }

  private inboxOf(s: Sender, kind: FrameKind): Inbox {
    return kind === FrameKind.ReplicaWeights ? s.avg : isGenerationKind(kind) ? s.gen : s.train;
  }

  /** Count and report a frame refused as `from`'s fault, and fail the take waiting for it. */
  private refuse(from: string, inbox: Inbox, what: HostileFrame & { kind: FrameKind; round: number; mb: number }): void {
    inbox.refuse(what.kind, what.round, what.mb, `refused: ${what.reason}`);
    this.blame(from, inbox, what);
  }

  private blame(from: string, inbox: Inbox, what: HostileFrame): void {
    inbox.reject(`from ${from}: ${what.reason}`);
    this.hostile.set(from, (this.hostile.get(from) ?? 0) + 1);
    this.o.onHostile?.(from, what);
  }

  /** Training frames of rounds before `round` will never be taken: drop them and refuse their late copies. */
  forgetRoundsBefore(round: number): void {
    this.round = Math.max(this.round, round);
    for (const s of this.senders.values()) s.train.forgetBefore(round);
  }

  /** A neighbour is gone: drop what it sent. */
  drop(peerId: string): void {
    this.senders.delete(peerId);
  }

  /** Frames and bytes held, over every sender and inbox. */
  held(): { frames: number; bytes: number } {
    const h = { frames: 0, bytes: 0 };
    for (const s of this.senders.values()) {
      for (const i of [s.train, s.gen, s.avg]) {
        h.frames += i.held.frames;
        h.bytes += i.held.bytes;
      }
    }
    return h;
  }

  /** Frames rejected so far (undecodable, refused, duplicate, stale, evicted), over every sender and inbox. */
  get rejected(): number {
    let n = this.evicted;
    for (const s of this.senders.values()) n += s.train.rejectedCount + s.gen.rejectedCount + s.avg.rejectedCount;
    return n;
  }
}
