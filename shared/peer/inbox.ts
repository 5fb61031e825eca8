// Frames arrive in any order relative to when a stage needs them; the inbox holds decoded frames
// by (kind, step, microbatch) until the schedule asks for them. Peers are not trusted: bytes that
// do not decode, duplicates (replays) and frames for steps long gone are counted and dropped.
//
// "Step" is whatever the frame header's step field means to the traffic an inbox holds: the
// training step for training frames (steps end in order: forgetBefore), the request id for
// generation frames (requests end in any order: close).
import { type Frame, type FrameLimits, decodeFrame } from '../wire/frame.js';

/** A frame did not come in time. */
export class InboxTimeout extends Error {
  override name = 'InboxTimeout';
}

/** Closed steps remembered (to refuse their late frames); older ones are forgotten first. */
const MAX_CLOSED = 4096;

export class Inbox {
  private readonly frames = new Map<string, Frame>();
  private readonly waiting = new Map<string, (f: Frame) => void>();
  private readonly seen = new Set<string>();
  private readonly closed = new Set<number>();
  /** Everything rejected, newest last (bounded). */
  readonly rejected: string[] = [];
  rejectedCount = 0;
  private minStep = 0;

  constructor(private readonly limits: FrameLimits = {}) {}

  private static key(kind: number, step: number, mb: number): string {
    return `${kind}:${step}:${mb}`;
  }

  /** Feed raw bytes from a link. Never throws. */
  push(bytes: Uint8Array): void {
    let f: Frame;
    try {
      f = decodeFrame(bytes, this.limits);
    } catch (e) {
      return this.reject((e as Error).message);
    }
    this.pushFrame(f);
  }

  /** Feed a frame already decoded (and so validated) by decodeFrame, e.g. by a router. Never throws. */
  pushFrame(f: Frame): void {
    const key = Inbox.key(f.kind, f.step, f.microbatch);
    if (f.step < this.minStep) return this.reject(`stale frame ${key} dropped (step ${f.step} is over)`);
    if (this.closed.has(f.step)) return this.reject(`stale frame ${key} dropped (step ${f.step} is closed)`);
    if (this.seen.has(key)) return this.reject(`duplicate frame ${key} dropped (replay?)`);
    this.seen.add(key);
    const w = this.waiting.get(key);
    if (w) {
      this.waiting.delete(key);
      w(f);
    } else {
      this.frames.set(key, f);
    }
  }

  /** Count and remember a rejected frame (also for routers that failed to decode one). */
  reject(why: string): void {
    this.rejectedCount++;
    this.rejected.push(why);
    if (this.rejected.length > 50) this.rejected.shift();
  }

  /**
   * The frame for (kind, step, mb), waiting up to timeoutMs for it (rejects with an InboxTimeout),
   * or until `signal` aborts (rejects with the signal's reason).
   */
  take(kind: number, step: number, mb: number, timeoutMs: number, signal?: AbortSignal): Promise<Frame> {
    const key = Inbox.key(kind, step, mb);
    const f = this.frames.get(key);
    if (f) {
      this.frames.delete(key);
      return Promise.resolve(f);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.waiting.delete(key);
      };
      const onAbort = () => {
        done();
        reject(signal!.reason);
      };
      const timer = setTimeout(() => {
        done();
        reject(new InboxTimeout(`timed out after ${timeoutMs} ms waiting for frame kind ${kind}, step ${step}, microbatch ${mb}`));
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.set(key, (frame) => {
        done();
        resolve(frame);
      });
    });
  }

  /** Steps before `step` are over: drop their keys (memory stays bounded) and refuse their frames. */
  forgetBefore(step: number): void {
    this.minStep = Math.max(this.minStep, step);
    for (const key of this.seen) if (Number(key.split(':')[1]) < step) this.seen.delete(key);
    for (const key of this.frames.keys()) if (Number(key.split(':')[1]) < step) this.frames.delete(key);
  }

  /**
   * One step (a generation request) is over, whatever the others do: drop its frames and keys and
   * refuse its late frames. The most recent MAX_CLOSED closed steps are remembered.
   */
  close(step: number): void {
    this.closed.delete(step);
    this.closed.add(step);
    if (this.closed.size > MAX_CLOSED) this.closed.delete(this.closed.values().next().value!);
    const mine = (key: string) => Number(key.split(':')[1]) === step;
    for (const key of this.seen) if (mine(key)) this.seen.delete(key);
    for (const key of this.frames.keys()) if (mine(key)) this.frames.delete(key);
  }

  /** Was `step` closed (and is it still remembered)? */
  isClosed(step: number): boolean {
    return this.closed.has(step);
  }
}
