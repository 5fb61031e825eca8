// A browser tab's trainer as the page sees it: the same calls as browser/trainer.ts (detect, follow,
// setWallet), answered by the trainer in a dedicated worker (browser/training-worker.ts). Nothing of
// the trainer is imported here, so the page's bundle holds no session, kernels or codecs. The page
// keeps the WebRTC connections (RtcRelay) and the wallet, and does what the worker asks of them.
import type { AppConfig, TrainerEvent } from '../shared/app/bridge.js';
import type { PeerWallet } from '../shared/peer/host.js';
import type { TrainerCommand } from '../shared/policy/types.js';
import { browserRtc } from './rtc.js';
import { RtcRelay } from './rtc-relay.js';
import { DEFAULT_DATA_URL } from './data-url.js';
import { Calls, type PageCall, type PageToWorker, type WorkerCall, type WorkerToPage, answer } from './worker-protocol.js';

export interface TrainerClientOptions {
  config: AppConfig;
  name: string;
  emit(event: TrainerEvent): void;
}

export class TrainerClient {
  private worker?: Worker;
  private readonly calls: Calls<PageCall>;
  private readonly relay: RtcRelay;
  private wallet?: PeerWallet;

  constructor(private readonly o: TrainerClientOptions) {
    this.calls = new Calls<PageCall>((m) => this.post(m));
    this.relay = new RtcRelay(browserRtc, (n, transfer) => this.post({ t: 'rtc', ...n }, transfer));
  }

  /** The worker, started at the first call: loading its code and the trainer competes with the page's own start-up. */
  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./training-worker.ts', import.meta.url), { type: 'module', name: 'training' });
    worker.onmessage = (e: MessageEvent<WorkerToPage>) => this.received(e.data);
    worker.onerror = (e) => this.failed(`the training worker failed: ${e.message}`);
    // A relative text URL would resolve against the worker's script, not the page.
    const dataUrl = new URL(this.o.config.dataUrl ?? DEFAULT_DATA_URL, location.href).href;
    worker.postMessage({ t: 'start', config: { ...this.o.config, dataUrl }, name: this.o.name } satisfies PageToWorker);
    this.worker = worker;
    return worker;
  }

  detect(): Promise<void> {
    return this.calls.call({ what: 'detect' }) as Promise<void>;
  }

  follow(command: TrainerCommand): Promise<void> {
    return this.calls.call({ what: 'follow', command }) as Promise<void>;
  }

  setWallet(wallet: PeerWallet | undefined): Promise<void> {
    this.wallet = wallet;
    if (!this.worker && !wallet) return Promise.resolve(); // a worker starts with none
    return this.calls.call({ what: 'wallet', ...(wallet && { account: wallet.account }) }) as Promise<void>;
  }

  private post(m: PageToWorker, transfer: Transferable[] = []): void {
    this.started().postMessage(m, transfer);
  }

  private received(m: WorkerToPage): void {
    if (m.t === 'event') this.o.emit(m.event);
    else if (m.t === 'answer') this.calls.settle(m);
    else if (m.t === 'call')
      answer(
        (a) => this.post(a),
        m.call,
        () => this.asked(m),
      );
    else this.relay.order(m);
  }

  /** The worker's requests of the page: the wallet's acts (only for the account it was given) and a link's path. */
  private async asked(c: WorkerCall): Promise<unknown> {
    if (c.what === 'path') return this.relay.path(c.id);
    const w = this.wallet;
    if (!w || w.account !== c.account) throw new Error(`the wallet connected now is not ${c.account}`);
    return c.what === 'sign' ? w.signMessage(c.message) : w.joinRun(c.chain);
  }

  private failed(why: string): void {
    this.relay.closeAll();
    this.calls.failAll(why);
    this.o.emit({ type: 'phase', data: { phase: 'failed', why } });
  }
}
