// This machine's peer in Chromium (a browser tab's training worker, or the desktop app's hidden
// training window): detects the GPU once, follows the policy loop's commands (a session starts when it says
// train, leaves gracefully when it says pause), and forwards every session event to whoever shows them.
import type { AppConfig, TrainerEvent } from '../shared/app/bridge.js';
import type { PeerHost, PeerStorage, PeerWallet } from '../shared/peer/host.js';
import type { RtcFactory } from '../shared/peer/rtc.js';
import { PeerSession } from '../shared/peer/session.js';
import type { TrainerCommand } from '../shared/policy/types.js';
import { DEFAULT_DATA_URL } from './data-url.js';
import { browserHost } from './host.js';
import { SESSION_EVENT_NAMES } from '../shared/peer/session-events.js';

const FORWARDED_EVENTS = SESSION_EVENT_NAMES.filter((name) => name !== 'log');

export interface TrainerOptions {
  config: AppConfig;
  storage: PeerStorage;
  name: string;
  runtime: 'browser' | 'electron';
  /** WebRTC: the page's own (the desktop app's training window), or the page's reached from a worker (browser/rtc-relay.ts). */
  rtc: RtcFactory;
  emit(event: TrainerEvent): void;
}

export class Trainer {
  private session?: PeerSession;
  private ended?: Promise<string>;
  private wallet?: PeerWallet;
  private duty = 1;
  private following: Promise<unknown> = Promise.resolve();
  private readonly host: PeerHost;

  constructor(private readonly o: TrainerOptions) {
    const log = (line: string) => o.emit({ type: 'log', data: { line } });
    this.host = browserHost({ dataUrl: o.config.dataUrl ?? DEFAULT_DATA_URL, storage: o.storage, runtime: o.runtime, rtc: o.rtc, log });
  }

  /** Detect and benchmark the GPU now (the dashboard shows it before the first session starts). */
  async detect(): Promise<void> {
    const { report, verdict } = await this.host.gpu();
    this.o.emit({ type: 'gpu', data: { report, verdict } });
  }

  /** One of the policy loop's commands, in order: a start after a leave waits until the stage is handed on. */
  follow(command: TrainerCommand): Promise<void> {
    return this.serially(async () => {
      if (command.type === 'start') this.start();
      else if (command.type === 'leave') await this.leave(command.reason);
      else this.setDuty(command.duty);
    });
  }

  /** Join the swarm unless already in it (or there is no run to join: then say why). */
  private start(): void {
    if (this.session) return;
    const { coordinator, problem } = this.o.config;
    if (!coordinator) return this.o.emit({ type: 'phase', data: { phase: 'failed', why: problem ?? 'there is no run to join' } });
    const session = new PeerSession({ ...this.host, wallet: this.wallet }, { coordinator, name: this.o.name });
    // Not 'log': the session says each line through its host too (this.host.log), which emits it once already.
    for (const name of FORWARDED_EVENTS) session.on(name, (data) => this.o.emit({ type: name, data } as TrainerEvent));
    session.setDuty(this.duty);
    this.session = session;
    this.ended = session.run().finally(() => {
      if (this.session === session) this.session = undefined;
    });
  }

  /** Graceful leave (a pause): the stage is handed on and the GPU released. */
  private async leave(reason: string): Promise<void> {
    const session = this.session;
    if (!session) return;
    this.session = undefined;
    await session.leave(reason).catch((e: Error) => this.o.emit({ type: 'log', data: { line: `leaving: ${e.message}` } }));
    await this.ended;
  }

  private setDuty(duty: number): void {
    this.duty = duty;
    this.session?.setDuty(duty);
  }

  /** A newly connected wallet is paid from the next session on: rejoin under it if training. */
  setWallet(wallet: PeerWallet | undefined): Promise<void> {
    return this.serially(async () => {
      if (wallet?.account === this.wallet?.account) return;
      this.wallet = wallet;
      if (!this.session) return;
      await this.leave(wallet ? `rejoining to be paid at ${wallet.account}` : 'the wallet disconnected');
      this.start();
    });
  }

  // Commands and wallet changes one after the other: a start never races the leave before it.
  private serially(f: () => Promise<void>): Promise<void> {
    const run = this.following.then(f);
    this.following = run.catch(() => undefined);
    return run;
  }
}
