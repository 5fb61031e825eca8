// This peer's part in serving a buyer's request (generate.ts): stage 0 tokenizes the prompt and
// generates, every other stage of the path forwards; stage 0 answers the coordinator with the text
// or why it failed (a request this model cannot take is refused: no other path would take it either).
import type { CharCorpus } from '../engine/data.js';
import { decodeText, encodeText } from '../engine/data.js';
import type { ServerMessageOf } from '../swarm/protocol.js';
import type { PeerContext } from './context.js';
import type { Hop } from './generate.js';
import { AbortReason, GenerationError } from './generate-frames.js';
import type { StageSeat } from './seat.js';

export interface ServingOptions {
  seat(): StageSeat | undefined;
  /** The run's training text (its characters are the model's tokens). */
  text(): CharCorpus | undefined;
  /** Boundary frames out, sealed (the trust gate). */
  sendFrame(to: string, bytes: Uint8Array): void;
}

export class Serving {
  private generating?: { path: string[]; abort: AbortController };

  constructor(
    private readonly ctx: PeerContext,
    private readonly o: ServingOptions,
  ) {}

  /** Stop the request under way (the peer leaves, or lost the coordinator). */
  abort(reason: Error): void {
    this.generating?.abort.abort(reason);
  }

  /** A peer is gone: a request through it will never finish; end it now, so what comes next is not queued behind it. */
  lost(peerId: string): void {
    if (this.generating?.path.includes(peerId)) this.generating.abort.abort(new Error(`${peerId} on the path is gone`));
  }

  async onGenerate(m: ServerMessageOf<'generate'>): Promise<void> {
    const seat = this.o.seat();
    const at = m.path.indexOf(this.ctx.peerId());
    if (!seat || at < 0) return;
    this.ctx.setPhase('serving', `serving request ${m.requestId}`);
    const t0 = this.ctx.host.now();
    const abort = new AbortController();
    this.generating = { path: m.path, abort };
    try {
      const tokens = at === 0 ? await this.generate(seat, m, abort.signal) : await this.forward(seat, m, at, abort.signal);
      if (tokens) this.ctx.emit('served', { requestId: m.requestId, tokens: tokens.length, ms: this.ctx.host.now() - t0 });
    } catch (e) {
      const message = (e as Error).message.slice(0, 1000);
      this.ctx.say(`request ${m.requestId} failed: ${message}`);
      const refused = e instanceof GenerationError && e.reason === AbortReason.Refused;
      if (at === 0) this.ctx.send({ type: 'generated', requestId: m.requestId, error: message, ...(refused && { refused }) });
    } finally {
      if (this.generating?.abort === abort) this.generating = undefined;
    }
  }

  /** Stage 0: the prompt's tokens, generation, and the answer; undefined when the prompt cannot be tokenized (refused). */
  private async generate(seat: StageSeat, m: ServerMessageOf<'generate'>, signal: AbortSignal): Promise<Uint32Array | undefined> {
    const text = this.o.text()!;
    let prompt: Uint32Array;
    try {
      prompt = encodeText(text, m.prompt);
    } catch (e) {
      this.ctx.send({ type: 'generated', requestId: m.requestId, error: (e as Error).message.slice(0, 1000), refused: true });
      return undefined;
    }
    const tokens = await seat.generation.generate(m.requestId, prompt, m.maxTokens, { temperature: m.temperature, seed: m.seed >>> 0 }, this.hop(seat, m.path[1]), { signal });
    this.ctx.send({ type: 'generated', requestId: m.requestId, text: decodeText(text, tokens) });
    return tokens;
  }

  private forward(seat: StageSeat, m: ServerMessageOf<'generate'>, at: number, signal: AbortSignal): Promise<Uint32Array> {
    return seat.generation.serve(m.requestId, this.hop(seat, m.path[at - 1])!, this.hop(seat, m.path[at + 1]), { signal, maxTokens: m.maxTokens });
  }

  private hop(seat: StageSeat, id: string | undefined): Hop | undefined {
    return id === undefined ? undefined : { send: (b) => this.o.sendFrame(id, b), inbox: seat.mailbox.from(id).gen };
  }
}
