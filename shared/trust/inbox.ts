// Frames arrive in any order relative to when a stage needs them; the inbox holds decoded frames
// by (kind, tag, microbatch) until the schedule asks for them. Peers are not trusted: bytes that
// do not decode, duplicates and frames for exchanges long over are counted and dropped, and a frame a
// router refused as its sender's fault fails the take waiting for it at once (a take must not wait
// out its timeout for a frame that has already come, bad).
//
// A frame's tag (its header's) names the exchange it belongs to: the training round for training
// frames (rounds end in order: forgetBefore), the request id for generation frames (requests end in
// any order: close), the step for replica weights.
import { type Frame, type FrameLimits, decodeFrame } from '../wire/frame.js';

/** A frame did not come in time. */
export class InboxTimeout extends Error {
  override name = 'InboxTimeout';
}

/** The frame awaited came and was refused as its sender's fault, or the sender sent bytes that could not be read at all. */
export class InboxRefused extends Error {
  override name = 'InboxRefused';
}

/** Closed tags remembered (to refuse their late frames); older ones are forgotten first. */
const MAX_CLOSED = 4096;
/** Refused keys remembered (so a take that comes after the bad frame fails at once); older ones are forgotten first. */
const MAX_REFUSED = 256;

const tagOf = (key: string) => Number(key.split(':')[1]);

export class Inbox {
  private readonly frames = new Map<string, Frame>();
  private readonly waiting = new Map<string, { fail(e: Error): void; got(f: Frame): void }>();
  private readonly seen = new Set<string>();
  private readonly closed = new Set<number>();
  private readonly refused = new Map<string, string>();
  /** Why every take fails at once until the next exchange begins (the sender sent unreadable bytes). */
  private tainted?: string;
  /** Everything rejected, newest last (bounded). */
  readonly rejected: string[] = [];
  rejectedCount = 0;
  /** Frames held, and the bytes their tensors and token ids take. */
  readonly held = { frames: 0, bytes: 0 };
  private minTag = 0;

  constructor(
    private readonly limits: FrameLimits = {},
    /** Sees every frame as a take hands it out (it is then used). */
    private readonly onTaken?: (f: Frame) => void,
  ) {}

  private static key(kind: number, tag: number, mb: number): string {
    return `${kind}:${tag}:${mb}`;
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

  /** Why `f` would be dropped as stale (its tag is over) or as a duplicate, or undefined. */
  whyStale(f: Frame): string | undefined {
    const key = Inbox.key(f.kind, f.tag, f.microbatch);
    if (f.tag < this.minTag) return `stale frame ${key} dropped (tag ${f.tag} is over)`;
    if (this.closed.has(f.tag)) return `stale frame ${key} dropped (tag ${f.tag} is closed)`;
    if (this.seen.has(key)) return `duplicate frame ${key} dropped`;
    return undefined;
  }

  /** Feed a frame already decoded (and so validated) by decodeFrame, e.g. by a router. Never throws. */
  pushFrame(f: Frame): void {
    const why = this.whyStale(f);
    if (why) return this.reject(why);
    const key = Inbox.key(f.kind, f.tag, f.microbatch);
    this.seen.add(key);
    const w = this.waiting.get(key);
    if (w) {
      this.onTaken?.(f);
      return w.got(f);
    }
    this.frames.set(key, f);
    this.held.frames++;
    this.held.bytes += frameBytesHeld(f);
  }

  /** Count and remember a rejected frame (also for routers that failed to decode one). */
  reject(why: string): void {
    this.rejectedCount++;
    this.rejected.push(why);
    if (this.rejected.length > 50) this.rejected.shift();
  }

  /**
   * The frame for (kind, tag, mb) was refused as its sender's fault: a take waiting for it fails
   * now with an InboxRefused, and one that comes later fails at once (until the tag ends).
   */
  refuse(kind: number, tag: number, mb: number, why: string): void {
    const key = Inbox.key(kind, tag, mb);
    const w = this.waiting.get(key);
    if (w) return w.fail(new InboxRefused(why));
    if (tag < this.minTag || this.closed.has(tag)) return;
    this.refused.delete(key);
    this.refused.set(key, why);
    if (this.refused.size > MAX_REFUSED) this.refused.delete(this.refused.keys().next().value!);
  }

  /**
   * The sender sent bytes that could not be read as a frame at all, so which frame they were meant
   * to be is unknown: every take waiting on it fails now, and every take until the next exchange begins
   * (forgetBefore moving on, or a close) fails at once.
   */
  taint(why: string): void {
    this.tainted = why;
    for (const w of [...this.waiting.values()]) w.fail(new InboxRefused(why));
  }

  /**
   * The frame for (kind, tag, mb), waiting up to timeoutMs for it (rejects with an InboxTimeout),
   * or until `signal` aborts (rejects with the signal's reason). Rejects with an InboxRefused as
   * soon as that frame is refused (see refuse and taint).
   */
  take(kind: number, tag: number, mb: number, timeoutMs: number, signal?: AbortSignal): Promise<Frame> {
    const key = Inbox.key(kind, tag, mb);
    const f = this.frames.get(key);
    if (f) {
      this.remove(key, f);
      this.onTaken?.(f);
      return Promise.resolve(f);
    }
    const refused = this.refused.get(key) ?? this.tainted;
    if (refused !== undefined) return Promise.reject(new InboxRefused(refused));
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
        reject(new InboxTimeout(`timed out after ${timeoutMs} ms waiting for frame kind ${kind}, tag ${tag}, microbatch ${mb}`));
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.set(key, {
        got: (frame) => {
          done();
          resolve(frame);
        },
        fail: (e) => {
          done();
          reject(e);
        },
      });
    });
  }

  /** Tags before `tag` are over: drop their keys (memory stays bounded) and refuse their frames. */
  forgetBefore(tag: number): void {
    if (tag > this.minTag) this.tainted = undefined;
    this.minTag = Math.max(this.minTag, tag);
    this.dropKeys((s) => s < tag);
  }

  /**
   * One tag (a generation request) is over, whatever the others do: drop its frames and keys and
   * refuse its late frames. The most recent MAX_CLOSED closed tags are remembered.
   */
  close(tag: number): void {
    this.tainted = undefined;
    this.closed.delete(tag);
    this.closed.add(tag);
    if (this.closed.size > MAX_CLOSED) this.closed.delete(this.closed.values().next().value!);
    this.dropKeys((s) => s === tag);
  }

  /** Was `tag` closed (and is it still remembered)? */
  isClosed(tag: number): boolean {
    return this.closed.has(tag);
  }

  /** Frames held per tag, in the order their tags first arrived. */
  heldTags(): Map<number, number> {
    const n = new Map<number, number>();
    for (const f of this.frames.values()) n.set(f.tag, (n.get(f.tag) ?? 0) + 1);
    return n;
  }

  private dropKeys(dead: (tag: number) => boolean): void {
    for (const key of this.seen) if (dead(tagOf(key))) this.seen.delete(key);
    for (const key of this.refused.keys()) if (dead(tagOf(key))) this.refused.delete(key);
    for (const [key, f] of this.frames) if (dead(f.tag)) this.remove(key, f);
  }

  private remove(key: string, f: Frame): void {
    this.frames.delete(key);
    this.held.frames--;
    this.held.bytes -= frameBytesHeld(f);
  }
}

/** Memory a held frame takes: its decoded tensor and token ids. */
export const frameBytesHeld = (f: Frame) => f.tensor.byteLength + (f.tokens?.byteLength ?? 0);
