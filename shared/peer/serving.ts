// This peer's part in serving buyers' requests (generate.ts), several at once: stage 0 tokenizes
// the prompt and generates, every other stage of the path forwards; stage 0 streams the text to the
// coordinator as it is decided and answers with the whole text or why it failed (a request this
// model cannot take is refused: no other path would take it either).
import type { CharCorpus } from '../engine/data.js';
import { decodeText, encodeText } from '../engine/data.js';
import type { ServerMessageOf } from '../swarm/protocol.js';
import type { PeerContext } from './context.js';
import type { Hop } from './generate.js';
import { AbortReason, GenerationError, resumedWindow } from './generate-frames.js';
import type { StageSeat } from './seat.js';

export interface ServingOptions {
  seat(): StageSeat | undefined;
  /** The run's training text (its characters are the model's tokens). */
  text(): CharCorpus | undefined;
  /** Boundary frames out, sealed (the trust gate). */
  sendFrame(to: string, bytes: Uint8Array): void;
}

/** Stage 0 sends the text decided so far at most this often (and at the end): a stream, not a message per token. */
export const STREAM_EVERY_MS = 100;

export class Serving {
  private readonly generating = new Map<number, { path: string[]; abort: AbortController }>();

  constructor(
    private readonly ctx: PeerContext,
    private readonly o: ServingOptions,
  ) {}

  /** Stop the requests under way (the peer leaves, or lost the coordinator). */
  abort(reason: Error): void {
    for (const g of this.generating.values()) g.abort.abort(reason);
  }

  /** A peer is gone: the requests through it will never finish; end them now. */
  lost(peerId: string): void {
    for (const g of this.generating.values()) if (g.path.includes(peerId)) g.abort.abort(new Error(`${peerId} on the path is gone`));
  }

  async onGenerate(m: ServerMessageOf<'generate'>): Promise<void> {
    const seat = this.o.seat();
    const at = m.path.indexOf(this.ctx.peerId());
    if (!seat || at < 0) return;
    // A stage serving between its training rounds is still training: its phase says so.
    if (this.ctx.phase() !== 'training') this.ctx.setPhase('serving', `serving request ${m.requestId}`);
    const t0 = this.ctx.host.now();
    const abort = new AbortController();
    this.generating.set(m.requestId, { path: m.path, abort });
    try {
      const tokens = at === 0 ? await this.generate(seat, m, abort.signal) : await this.forward(seat, m, at, abort.signal);
      if (tokens) this.ctx.emit('served', { requestId: m.requestId, tokens: tokens.length, ms: this.ctx.host.now() - t0 });
    } catch (e) {
      const message = (e as Error).message.slice(0, 1000);
      this.ctx.say(`request ${m.requestId} failed: ${message}`);
      const reason = e instanceof GenerationError ? e.reason : undefined;
      const [refused, uncached] = [reason === AbortReason.Refused, reason === AbortReason.NoCache];
      if (at === 0) this.ctx.send({ type: 'generated', requestId: m.requestId, error: message, ...(refused && { refused }), ...(uncached && { uncached }) });
    } finally {
      if (this.generating.get(m.requestId)?.abort === abort) this.generating.delete(m.requestId);
    }
  }

  /**
   * Stage 0: the prompt's tokens (and those of the text an earlier path decided, when resuming),
   * generation, and the answer's rest; undefined when the text cannot be tokenized (refused).
   */
  private async generate(seat: StageSeat, m: ServerMessageOf<'generate'>, signal: AbortSignal): Promise<Uint32Array | undefined> {
    const text = this.o.text()!;
    let prompt: Uint32Array;
    let decided: Uint32Array;
    try {
      prompt = encodeText(text, m.prompt);
      decided = encodeText(text, m.resume ?? '');
    } catch (e) {
      this.ctx.send({ type: 'generated', requestId: m.requestId, error: (e as Error).message.slice(0, 1000), refused: true });
      return undefined;
    }
    const stream = this.stream(m.requestId, text, decided.length);
    const sampling = { temperature: m.temperature, seed: m.seed >>> 0, decided: decided.length };
    const window = resumedWindow(prompt, decided, seat.runtime.cfg.seq);
    const tokens = await seat.generation.generate(m.requestId, window, m.maxTokens, sampling, this.hop(seat, m.path[1]), { signal, onToken: stream, recompute: m.recompute });
    this.ctx.send({ type: 'generated', requestId: m.requestId, text: decodeText(text, tokens) });
    return tokens;
  }

  /** Send the tokens decided since the last send (the answer's token `from` on), at most every STREAM_EVERY_MS (the first at once: the buyer's first token). */
  private stream(requestId: number, text: CharCorpus, from: number): (index: number, token: number) => void {
    const pending: number[] = [];
    const start = from;
    let last = Number.NEGATIVE_INFINITY;
    return (index, token) => {
      pending.push(token);
      const now = this.ctx.host.now();
      if (now - last < STREAM_EVERY_MS) return;
      this.ctx.send({ type: 'generating', requestId, from, text: decodeText(text, Uint32Array.from(pending)) });
      [from, last] = [start + index + 1, now];
      pending.length = 0;
    };
  }

  private forward(seat: StageSeat, m: ServerMessageOf<'generate'>, at: number, signal: AbortSignal): Promise<Uint32Array> {
    return seat.generation.serve(m.requestId, this.hop(seat, m.path[at - 1])!, this.hop(seat, m.path[at + 1]), { signal, maxTokens: m.maxTokens });
  }

  private hop(seat: StageSeat, id: string | undefined): Hop | undefined {
    return id === undefined ? undefined : { send: (b) => this.o.sendFrame(id, b), inbox: seat.mailbox.from(id).gen };
  }
}
