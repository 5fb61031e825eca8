import { describe, expect, it } from 'vitest';
import { Inbox, InboxRefused, InboxTimeout } from '../shared/trust/inbox.js';
import { ChunkedLink, type RawChannel, memoryChannelPair, memoryLinkPair } from '../shared/wire/link.js';
import { FrameKind, decodeFrame, encodeFrame } from '../shared/wire/frame.js';

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('chunked links', () => {
  it('reassembles messages of every size across chunk boundaries, in order', async () => {
    const [a, b] = memoryLinkPair(100);
    const got: Uint8Array[] = [];
    b.onMessage((m) => got.push(m));
    const sizes = [0, 1, 87, 88, 89, 1000, 5000];
    const sent = sizes.map((n) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 255));
    for (const m of sent) a.send(m);
    await tick();
    expect(got.map((m) => Array.from(m))).toEqual(sent.map((m) => Array.from(m)));
    expect(b.bytesReceived).toBe(a.bytesSent);
  });

  it('reports malformed chunk streams and recovers on the next message', () => {
    let deliver: (b: Uint8Array) => void = () => {};
    const raw: RawChannel = { send: () => {}, onMessage: (h) => (deliver = h) };
    const errors: string[] = [];
    const link = new ChunkedLink(raw, 64, (e) => errors.push(e.message));
    const got: Uint8Array[] = [];
    link.onMessage((m) => got.push(m));
    const chunk = (id: number, index: number, count: number, body: number[]) => {
      const m = new Uint8Array(12 + body.length);
      const v = new DataView(m.buffer);
      v.setUint32(0, id, true);
      v.setUint32(4, index, true);
      v.setUint32(8, count, true);
      m.set(body, 12);
      return m;
    };
    deliver(new Uint8Array(5));
    deliver(chunk(1, 1, 2, [1])); // a middle chunk with no start
    deliver(chunk(2, 0, 0, [])); // zero chunks
    deliver(chunk(3, 0, 1e9, [])); // absurd size
    deliver(chunk(4, 0, 2, [1, 2]));
    deliver(chunk(5, 0, 1, [9])); // cuts message 4 off, then completes
    expect(errors).toHaveLength(5);
    expect(got.map((m) => Array.from(m))).toEqual([[9]]);
  });

  it('reassembles nothing larger than its limit, which can be lowered once the peer knows what a neighbour may send', async () => {
    const [x, y] = memoryChannelPair();
    const errors: string[] = [];
    const a = new ChunkedLink(x, 100);
    const b = new ChunkedLink(y, 100, (e) => errors.push(e.message));
    const got: number[] = [];
    b.onMessage((m) => got.push(m.length));
    a.send(new Uint8Array(1000));
    await tick();
    b.maxMessage = 500;
    a.send(new Uint8Array(1000));
    a.send(new Uint8Array(400));
    await tick();
    expect(got).toEqual([1000, 400]);
    expect(errors[0]).toBe('message 1 claims 12 chunks');
  });
});

describe('inbox', () => {
  const frame = (step: number, mb: number, v = 1) =>
    encodeFrame({ kind: FrameKind.Activation, tag: step, microbatch: mb, rows: 2, cols: 2, dtype: 'fp32', tensor: new Float32Array([v, 2, 3, 4]) });

  it('hands frames to whoever waits for them, in any arrival order', async () => {
    const inbox = new Inbox();
    const waiting = inbox.take(FrameKind.Activation, 1, 1, 1000);
    inbox.push(frame(1, 0, 5));
    inbox.push(frame(1, 1, 7));
    expect((await waiting).tensor[0]).toBe(7);
    expect((await inbox.take(FrameKind.Activation, 1, 0, 1000)).tensor[0]).toBe(5);
  });

  it('drops malformed, duplicated and stale frames and counts them', async () => {
    const inbox = new Inbox();
    inbox.push(new Uint8Array([1, 2, 3]));
    inbox.push(frame(2, 0));
    inbox.push(frame(2, 0, 9)); // replay of the same key
    inbox.forgetBefore(3);
    inbox.push(frame(2, 1)); // a step that is over
    expect(inbox.rejectedCount).toBe(3);
    expect(inbox.rejected.join('\n')).toMatch(/magic|truncated/);
    expect(inbox.rejected.join('\n')).toMatch(/duplicate/);
    expect(inbox.rejected.join('\n')).toMatch(/stale/);
    await expect(inbox.take(FrameKind.Activation, 3, 0, 20)).rejects.toThrow(/timed out/);
  });

  it('fails a take at once for a refused key, whether the take waits already or comes later, until its step is over', async () => {
    const inbox = new Inbox();
    const t0 = performance.now();
    const waiting = inbox.take(FrameKind.Activation, 1, 0, 20_000);
    inbox.refuse(FrameKind.Activation, 1, 0, 'refused: bad shape');
    await expect(waiting).rejects.toThrow(InboxRefused);
    inbox.refuse(FrameKind.Activation, 1, 1, 'refused: NaN');
    await expect(inbox.take(FrameKind.Activation, 1, 1, 20_000)).rejects.toThrow('refused: NaN');
    expect(performance.now() - t0).toBeLessThan(1000);
    await expect(inbox.take(FrameKind.Activation, 1, 2, 20)).rejects.toThrow(InboxTimeout); // another key waits as ever
    inbox.forgetBefore(2);
    inbox.refuse(FrameKind.Activation, 1, 3, 'too late'); // a step that is over: nothing to remember
    inbox.push(frame(2, 1));
    expect((await inbox.take(FrameKind.Activation, 2, 1, 1000)).tag).toBe(2);
  });

  it('a tainted inbox fails every take until its step ends; it counts what it holds and reports what it hands out', async () => {
    const taken: number[] = [];
    const inbox = new Inbox({}, (f) => taken.push(f.microbatch));
    inbox.push(frame(1, 0));
    inbox.push(frame(1, 1));
    expect(inbox.held).toEqual({ frames: 2, bytes: 2 * 4 * 4 });
    expect(inbox.heldTags()).toEqual(new Map([[1, 2]]));
    const waiting = inbox.take(FrameKind.Activation, 1, 5, 20_000);
    inbox.taint('it sent bytes that are not a frame');
    await expect(waiting).rejects.toThrow(/not a frame/);
    await expect(inbox.take(FrameKind.Activation, 1, 6, 20_000)).rejects.toThrow(InboxRefused);
    // What came before the bad bytes is still good.
    expect((await inbox.take(FrameKind.Activation, 1, 1, 1000)).microbatch).toBe(1);
    inbox.forgetBefore(2);
    expect(inbox.held).toEqual({ frames: 0, bytes: 0 });
    const next = inbox.take(FrameKind.Activation, 2, 0, 1000);
    inbox.pushFrame(decodeFrame(frame(2, 0)));
    expect((await next).tag).toBe(2);
    expect(taken).toEqual([1, 0]);
  });

  it('closes one step (a generation request) whatever the order, dropping and refusing its frames', async () => {
    const inbox = new Inbox();
    inbox.push(frame(5, 0));
    inbox.push(frame(9, 0, 4));
    inbox.close(5);
    expect(inbox.isClosed(5)).toBe(true);
    expect(inbox.isClosed(9)).toBe(false);
    inbox.push(frame(5, 1)); // late frame of a closed request
    expect(inbox.rejectedCount).toBe(1);
    expect(inbox.rejected[0]).toMatch(/stale frame 1:5:1 dropped \(tag 5 is closed\)/);
    await expect(inbox.take(FrameKind.Activation, 5, 0, 20)).rejects.toThrow(/timed out/); // dropped on close
    expect((await inbox.take(FrameKind.Activation, 9, 0, 1000)).tensor[0]).toBe(4); // a lower-numbered close left 9 alone
  });
});
