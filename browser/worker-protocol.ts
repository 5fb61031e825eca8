// The messages between a tab's page and the dedicated worker its peer trains in
// (browser/training-worker.ts), so the page's thread only draws. The page keeps what a worker cannot
// have or must not hold: RTCPeerConnection (Chromium offers none in workers), the user's wallet, and
// the policy loop. Either side may ask the other (`call`), and is answered with the same number.
import type { AppConfig, TrainerEvent } from '../shared/app/bridge.js';
import type { ChainInfo } from '../shared/peer/host.js';
import type { IceServer } from '../shared/swarm/protocol.js';
import type { TrainerCommand } from '../shared/policy/types.js';

export interface Answer {
  t: 'answer';
  call: number;
  value?: unknown;
  error?: string;
}

/** What the page asks its worker's trainer (browser/trainer.ts). */
export type PageCall = { what: 'detect' } | { what: 'follow'; command: TrainerCommand } | { what: 'wallet'; account?: `0x${string}` };

/** What the worker asks the page: the wallet's two acts, and how a data channel's bytes travel. */
export type WorkerCall = { what: 'sign'; account: `0x${string}`; message: string } | { what: 'join'; account: `0x${string}`; chain: ChainInfo } | { what: 'path'; id: number };

/** A data channel's life as the page's RTCPeerConnection tells it, for the worker's side of channel `id`. */
export type RtcNews = { id: number } & ({ event: 'signal'; data: unknown } | { event: 'data'; bytes: Uint8Array } | { event: 'open' } | { event: 'close'; why: string });

/** What the worker's session does with channel `id`, done by the page. */
export type RtcOrder = { id: number } & (
  | { order: 'open'; initiator: boolean; iceServers?: readonly IceServer[] }
  | { order: 'signal'; data: unknown }
  | { order: 'send'; bytes: Uint8Array }
  | { order: 'destroy' }
);

export type PageToWorker = { t: 'start'; config: AppConfig; name: string } | ({ t: 'call'; call: number } & PageCall) | Answer | ({ t: 'rtc' } & RtcNews);

export type WorkerToPage = { t: 'event'; event: TrainerEvent } | ({ t: 'call'; call: number } & WorkerCall) | Answer | ({ t: 'rtc' } & RtcOrder);

/** Calls to the other side, each settled by its answer. */
export class Calls<C> {
  private next = 1;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

  constructor(private readonly post: (m: { t: 'call'; call: number } & C) => void) {}

  call(c: C): Promise<unknown> {
    const call = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(call, { resolve, reject });
      this.post({ t: 'call', call, ...c });
    });
  }

  settle(a: Answer): void {
    const w = this.waiting.get(a.call);
    this.waiting.delete(a.call);
    if (a.error !== undefined) w?.reject(new Error(a.error));
    else w?.resolve(a.value);
  }

  /** The other side is gone: nothing will answer. */
  failAll(why: string): void {
    for (const w of this.waiting.values()) w.reject(new Error(why));
    this.waiting.clear();
  }
}

/** Answer call `call` with what `f` resolves to, or its error's message. */
export function answer(post: (a: Answer) => void, call: number, f: () => Promise<unknown>): void {
  f().then(
    (value) => post({ t: 'answer', call, ...(value !== undefined && { value }) }),
    (e: unknown) => post({ t: 'answer', call, error: e instanceof Error ? e.message : String(e) }),
  );
}
