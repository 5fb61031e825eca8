// A browser tab's peer, in a dedicated worker (browser/trainer-client.ts starts it): GPU detection,
// kernels, the stage's state, codecs and averaging all run here, so the page's thread never waits
// for them. WebGPU, WebSocket, fetch and IndexedDB are a worker's too; each WebRTC connection and the
// wallet stay with the page and are reached over messages (browser/worker-protocol.ts).
import type { PeerWallet } from '../shared/peer/host.js';
import { relayedRtc } from './rtc-relay.js';
import { browserStorage, memoryStorage } from './storage.js';
import { Trainer } from './trainer.js';
import { Calls, type PageCall, type PageToWorker, type WorkerCall, type WorkerToPage, answer } from './worker-protocol.js';

// `self` is typed as a window here (the project's lib is the DOM's): postMessage(message, { transfer })
// and onmessage mean the same on a worker's global scope.
const post = (m: WorkerToPage, transfer: Transferable[] = []) => self.postMessage(m, { transfer });
const calls = new Calls<WorkerCall>(post);
const rtc = relayedRtc(
  (order, transfer) => post({ t: 'rtc', ...order }, transfer),
  async (id) => (await calls.call({ what: 'path', id })) as never,
);
let trainer: Promise<Trainer> | undefined;

/** The page's wallet, acting from the page: the worker never holds a key or a provider. */
function pageWallet(account: `0x${string}`): PeerWallet {
  return {
    account,
    signMessage: async (message) => (await calls.call({ what: 'sign', account, message })) as `0x${string}`,
    joinRun: async (chain) => void (await calls.call({ what: 'join', account, chain })),
  };
}

async function start(m: PageToWorker & { t: 'start' }): Promise<Trainer> {
  const storage = await browserStorage().catch(() => memoryStorage());
  return new Trainer({ config: m.config, storage, name: m.name, runtime: 'browser', rtc: rtc.factory, emit: (event) => post({ t: 'event', event }) });
}

async function called(c: PageCall): Promise<unknown> {
  if (!trainer) throw new Error('the training worker was not started');
  const t = await trainer;
  if (c.what === 'detect') return t.detect();
  if (c.what === 'follow') return t.follow(c.command);
  return t.setWallet(c.account ? pageWallet(c.account) : undefined);
}

self.onmessage = (e: MessageEvent<PageToWorker>) => {
  const m = e.data;
  if (m.t === 'start') trainer ??= start(m);
  else if (m.t === 'call') answer(post, m.call, () => called(m));
  else if (m.t === 'answer') calls.settle(m);
  else rtc.news(m);
};
