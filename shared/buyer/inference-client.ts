// What an inference buyer's app does after spending a credential on chain: hand the prompt to the
// swarm's coordinator, show the answer as it is generated, and take the whole answer at the end.
// Environment-agnostic (Node's ws or the browser's WebSocket is handed in). The answer's hash is
// the receipt the coordinator recorded on chain; the parts before it are only shown.
import { keccak256, toHex } from 'viem';
import type { WebSocketConstructor } from '../swarm/coordinator-client.js';
import { encodeClientMessage, parseServerMessage } from '../swarm/parse.js';

export interface Answer {
  spendId: string;
  text: string;
  answerHash: `0x${string}`;
}

export interface AnswerOptions {
  timeoutMs?: number;
  /** The answer so far, each time a part arrives (the first one: the time to the first token). */
  onText?(text: string): void;
}

/** The answer so far with a part of tokens `from`… laid over it (a retry on another path may resend one). */
export function withPart(so: { tokens: string[] }, from: number, text: string): string {
  // The model's tokens are characters: part token i is character i of the part.
  const chars = Array.from(text);
  for (let i = 0; i < chars.length; i++) so.tokens[from + i] = chars[i];
  return so.tokens.join('');
}

export function requestAnswer(url: string, WebSocketImpl: WebSocketConstructor, q: { spendId: bigint; prompt: string; maxTokens: number }, o: AnswerOptions = {}): Promise<Answer> {
  const timeoutMs = o.timeoutMs ?? 180_000;
  const msg = encodeClientMessage({ type: 'infer', spendId: q.spendId.toString(), prompt: q.prompt, maxTokens: q.maxTokens });
  if (!msg.ok) return Promise.reject(new Error(msg.error));
  return new Promise((resolve, reject) => {
    const ws = new WebSocketImpl(url);
    let done = false;
    const finish = (e: Error | undefined, a?: Answer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.close();
      if (e) reject(e);
      else resolve(a!);
    };
    const timer = setTimeout(() => finish(new Error(`no answer from ${url} within ${timeoutMs} ms`)), timeoutMs);
    ws.onopen = () => ws.send(msg.text);
    const soFar = { tokens: [] as string[] };
    ws.onmessage = (ev: { data: unknown }) => {
      const parsed = typeof ev.data === 'string' ? parseServerMessage(ev.data) : { ok: false as const, error: 'binary frame' };
      if (!parsed.ok) return finish(new Error(`the coordinator sent an invalid message: ${parsed.error}`));
      const m = parsed.msg;
      if (m.type === 'error') return finish(new Error(`the swarm refused the query: ${m.message}`));
      if (m.type === 'answer-part' && m.spendId === q.spendId.toString()) return o.onText?.(withPart(soFar, m.from, m.text));
      if (m.type !== 'answer' || m.spendId !== q.spendId.toString()) return;
      // The receipt on chain is the hash of exactly this text.
      if (keccak256(toHex(m.text)) !== m.answerHash) return finish(new Error('the answer does not match its receipt hash'));
      finish(undefined, { spendId: m.spendId, text: m.text, answerHash: m.answerHash as `0x${string}` });
    };
    ws.onerror = () => {};
    ws.onclose = (ev: { code?: number; reason?: string }) =>
      finish(new Error(`connection to ${url} closed before an answer (code ${ev.code ?? 1006}${ev.reason ? `: ${ev.reason}` : ''})`));
  });
}
