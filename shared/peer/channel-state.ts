// What every RtcPeer does the same way, whatever carries its bytes (simple-peer, or a page relaying
// them for a worker: browser/rtc-relay.ts): `connected` settles once, messages that arrive before the
// session installs its handler wait rather than vanish, sending is refused before the channel opens
// and after it closes, and the close is told once, never from inside destroy().
export class ChannelState {
  readonly connected: Promise<void>;
  private resolveConnected: () => void = () => {};
  private rejectConnected: (e: Error) => void = () => {};
  private isOpen = false;
  private why: string | undefined;
  private dataHandler?: (bytes: Uint8Array) => void;
  private readonly early: Uint8Array[] = [];
  private closeHandler?: (why: string) => void;
  private closeNotified = false;

  constructor() {
    this.connected = new Promise<void>((resolve, reject) => {
      this.resolveConnected = resolve;
      this.rejectConnected = reject;
    });
    // A caller that never awaits `connected` (it watches onClose instead) must not crash Node.
    this.connected.catch(() => {});
  }

  get open(): boolean {
    return this.isOpen;
  }

  /** Why the channel closed; undefined while it has not. */
  get closedWhy(): string | undefined {
    return this.why;
  }

  opened(): void {
    if (this.why !== undefined) return;
    this.isOpen = true;
    this.resolveConnected();
  }

  received(bytes: Uint8Array): void {
    if (this.dataHandler && this.early.length === 0) this.dataHandler(bytes);
    else this.early.push(bytes);
  }

  onData(handler: (bytes: Uint8Array) => void): void {
    this.dataHandler = handler;
    // Deliver the early messages a moment later, as if they had just arrived: a caller that installs
    // a layer in two steps (`new ChunkedLink(raw)`, then `link.onMessage(h)`) then misses none.
    if (this.early.length > 0) queueMicrotask(() => this.flushEarly());
  }

  onClose(handler: (why: string) => void): void {
    this.closeHandler = handler;
    if (this.why !== undefined) queueMicrotask(() => this.notifyClose());
  }

  /** Throws unless a message may be sent now. */
  checkSend(): void {
    if (this.why !== undefined) throw new Error(`cannot send on a closed WebRTC connection (${this.why})`);
    if (!this.isOpen) throw new Error('cannot send before the WebRTC data channel is open (await `connected`)');
  }

  /** The channel closed, for `why`; false if it had already. */
  close(why: string): boolean {
    if (this.why !== undefined) return false;
    this.why = why;
    this.isOpen = false;
    this.rejectConnected(new Error(`the WebRTC connection closed before its data channel opened: ${why}`));
    // Never from inside destroy(): the caller's cleanup should not re-enter its own close handler.
    queueMicrotask(() => this.notifyClose());
    return true;
  }

  private flushEarly(): void {
    for (const b of this.early.splice(0)) this.dataHandler?.(b);
  }

  private notifyClose(): void {
    if (this.closeNotified || this.why === undefined || !this.closeHandler) return;
    this.closeNotified = true;
    this.closeHandler(this.why);
  }
}
