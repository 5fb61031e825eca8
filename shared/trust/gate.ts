// The one door of a peer's data channels (ARCHITECTURE §6: every frame may be hostile). Out: a
// boundary frame is sealed with the session's key and logged; a state transfer or an audit bundle
// goes as it is; each in its envelope (wire/envelope.ts). In: bytes are sorted by their envelope's
// tag and handed straight to where they are used; a frame only once its sender's seal for this peer
// checks, and logged with that seal (the round's report cites it, an audit or evidence shows it).
import type { PeerKey } from '../swarm/identity.js';
import { KeyRing } from '../swarm/identity.js';
import { Envelope, type EnvelopeTag, unwrap, wrap } from '../wire/envelope.js';
import type { Seal } from '../swarm/protocol.js';
import type { FrameLog } from './frame-log.js';
import { seal, unseal } from './seal.js';

export interface GateHandlers {
  /** A frame its sender sealed for this peer. */
  frame(from: string, frame: Uint8Array): void;
  /** A state transfer message (not sealed: its payload carries its own hash and is checked against the run's). */
  state(from: string, bytes: Uint8Array): void;
  /** An audit bundle (its frames are checked against the hashes the neighbours' seals prove). */
  bundle(from: string, bytes: Uint8Array): void;
}

export interface GateOptions {
  self(): string;
  key(): PeerKey;
  /** A neighbour's session key, if it is known. */
  keyOf(peerId: string): string | undefined;
  /** Bytes to a neighbour over its data channel (chunked there). */
  send(to: string, bytes: Uint8Array): void;
  frames: FrameLog;
  handlers: GateHandlers;
  log(line: string): void;
  /**
   * Rewrite a frame's bytes (or send several) before they are sealed and sent. What a hostile build
   * of this client could do; only the adversarial test peers (bench/adversary.ts) set it.
   */
  tamper?(to: string, frame: Uint8Array): Uint8Array | readonly Uint8Array[];
  /** Shown each frame a neighbour sealed for this peer, as it arrived. Only the adversarial test peers set it. */
  opened?(from: string, seal: Seal, frame: Uint8Array): void;
}

export class Gate {
  private readonly keys = new KeyRing();

  constructor(private readonly o: GateOptions) {}

  /** Seal a boundary frame for `to` and send it; training frames are logged for the round's report. */
  async sendFrame(to: string, bytes: Uint8Array): Promise<void> {
    for (const frame of [this.o.tamper?.(to, bytes) ?? bytes].flat()) {
      const sealed = await seal(frame, this.o.key(), this.o.self(), to);
      this.o.frames.record('out', sealed.seal, frame);
      this.o.send(to, wrap(Envelope.Frame, sealed.bytes));
    }
  }

  sendState(to: string, bytes: Uint8Array): void {
    this.o.send(to, wrap(Envelope.State, bytes));
  }

  sendBundle(to: string, bytes: Uint8Array): void {
    this.o.send(to, wrap(Envelope.AuditBundle, bytes));
  }

  /** Whatever a neighbour sent. Never throws: what is not an envelope, or a frame not sealed for us, is dropped and logged. */
  async receive(from: string, bytes: Uint8Array): Promise<void> {
    const e = unwrap(bytes);
    if (!e.ok) return this.o.log(`dropped ${e.error} from ${from}`);
    const handle: Record<EnvelopeTag, (body: Uint8Array) => void | Promise<void>> = {
      [Envelope.Frame]: (body) => this.openFrame(from, body),
      [Envelope.State]: (body) => this.o.handlers.state(from, body),
      [Envelope.AuditBundle]: (body) => this.o.handlers.bundle(from, body),
    };
    await handle[e.tag](e.body);
  }

  private async openFrame(from: string, bytes: Uint8Array): Promise<void> {
    const opened = await unseal(bytes, this.keys, this.o.keyOf(from), from, this.o.self());
    if (!opened.ok) return this.o.log(`dropped a frame from ${from}: ${opened.error}`);
    this.o.frames.record('in', opened.seal, opened.frame);
    this.o.opened?.(from, opened.seal, opened.frame);
    this.o.handlers.frame(from, opened.frame);
  }
}
