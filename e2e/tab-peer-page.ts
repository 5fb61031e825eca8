// The test page of e2e/tab-peer.test.ts: a browser tab that is a bare peer (the same peer session
// as the Node worker, on the tab's own GPU and WebRTC, no dashboard), keeping a record on
// `window.__tab` that the test reads, and round 1's boundary tensors to compare with Node's.
//
// Query parameters: `coordinator` (ws://… URL, required), `data` (URL of the training text,
// default /data.txt), `name`, `bench=0` (skip the start-up benchmark), `dump=1` (keep the boundary
// tensors of round 1 as sent and received, to compare with the other side's).
import { PeerSession } from '../shared/peer/session.js';
import { browserHost } from '../browser/host.js';
import { browserRtc } from '../browser/rtc.js';
import { browserStorage, memoryStorage } from '../browser/storage.js';
import type { SessionEvents } from '../shared/peer/session-events.js';

export interface TabRecord {
  phase: string;
  why: string;
  stage?: number;
  steps: SessionEvents['step'][];
  evaluated: SessionEvents['evaluated'][];
  /** Round 1's boundary tensors, by `${dir}-k${kind}-mb${microbatch}`. */
  boundaries: Record<string, number[]>;
  log: string[];
  done?: string;
}

declare global {
  interface Window {
    __tab: TabRecord;
  }
}

const q = new URLSearchParams(location.search);
const record: TabRecord = { phase: 'starting', why: '', steps: [], evaluated: [], boundaries: {}, log: [] };
window.__tab = record;

const line = document.createElement('pre');
document.body.append(line);
const show = () => {
  const s = record.steps.at(-1);
  line.textContent = `[${record.phase}] ${record.why}\n${record.stage !== undefined ? `stage ${record.stage}` : ''}${s ? ` · step ${s.step} · loss ${s.loss?.toFixed(4) ?? '–'} · ${Math.round(s.tokensPerSec)} tok/s` : ''}\n${record.log.slice(-8).join('\n')}`;
};

async function main(): Promise<void> {
  const coordinator = q.get('coordinator');
  if (!coordinator) throw new Error('add ?coordinator=ws://HOST:PORT to the address');
  const say = (l: string) => {
    record.log.push(l);
    if (record.log.length > 200) record.log.shift();
    show();
  };
  const storage = q.get('storage') === 'memory' ? memoryStorage() : await browserStorage();
  const host = browserHost({ dataUrl: q.get('data') ?? '/data.txt', storage, benchmark: q.get('bench') !== '0', rtc: browserRtc, log: say });
  const session = new PeerSession(host, {
    coordinator,
    name: q.get('name') ?? 'browser tab',
    onBoundary:
      q.get('dump') === '1'
        ? (dir, kind, round, mb, t) => {
            if (round === 1) record.boundaries[`${dir}-k${kind}-mb${mb}`] = Array.from(t);
          }
        : undefined,
  });
  session.on('phase', ({ phase, why }) => {
    record.phase = phase;
    record.why = why;
    show();
  });
  session.on('assigned', ({ stage }) => (record.stage = stage));
  session.on('step', (s) => {
    record.steps.push(s);
    show();
  });
  session.on('evaluated', (e) => record.evaluated.push(e));
  session.on('log', ({ line: l }) => say(l));
  // Closing the tab is a graceful leave, as far as the browser lets a page finish its work.
  addEventListener('pagehide', () => void session.leave('the tab was closed').catch(() => {}));
  record.done = await session.run();
  show();
}

main().catch((e: unknown) => {
  record.phase = 'failed';
  record.done = e instanceof Error ? e.message : String(e);
  show();
});
