// Peer sessions in this process (the Node host: Dawn, wrtc, files) with a real coordinator, while
// the coordinator's messages reach each peer in bursts: a busy peer's event loop (a game, a chain
// call, a shader compile) lets several frames pile up, and the socket then delivers them in one
// task. The session must act on the newest membership even when a `peers` update is dispatched
// before the `assign` it follows has been handled (a run once hung on exactly that: the initiating
// peer never opened its channel).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SWARM_DEFAULTS, runConfig } from '../cli/swarm.js';
import { Coordinator } from '../coordinator/server.js';
import { PeerSession } from '../shared/peer/session.js';
import type { WebSocketLike } from '../shared/swarm/coordinator-client.js';
import { nodeHost } from '../worker/node-host.js';

const BURST_MS = 300;

/** A `ws` socket whose incoming messages are held and handed on all at once every BURST_MS. */
class BurstySocket implements WebSocketLike {
  onopen: ((ev: never) => void) | null = null;
  onmessage: ((ev: never) => void) | null = null;
  onclose: ((ev: never) => void) | null = null;
  onerror: ((ev: never) => void) | null = null;
  private readonly ws: WebSocket;
  private readonly held: unknown[] = [];
  private readonly timer = setInterval(() => this.flush(), BURST_MS);

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.onopen = (ev) => this.onopen?.(ev as never);
    this.ws.onmessage = (ev) => this.held.push(ev);
    this.ws.onerror = (ev) => this.onerror?.(ev as never);
    this.ws.onclose = (ev) => {
      clearInterval(this.timer);
      this.onclose?.(ev as never);
    };
  }

  get readyState(): number {
    return this.ws.readyState;
  }

  send(data: string): void {
    this.ws.send(data);
  }

  close(code?: number, reason?: string): void {
    this.ws.close(code, reason);
  }

  private flush(): void {
    for (const ev of this.held.splice(0)) this.onmessage?.(ev as never);
  }
}

const ended: Promise<string>[] = [];
let coord: Coordinator | undefined;
afterAll(async () => {
  coord?.stopRun('test over');
  await Promise.all(ended);
  await coord?.close();
});

describe('peer session', () => {
  it('connects and trains when coordinator messages arrive in bursts (membership newer than the assign)', async () => {
    const run = await runConfig({ ...SWARM_DEFAULTS, workers: 2, stages: 2, layers: 2, dModel: 32, heads: 2, seq: 16, batch: 4, microbatches: 2, steps: 4, evalEvery: 0 });
    coord = new Coordinator({ run, log: () => {} });
    await coord.listen(0);
    const url = coord.url!;
    const lines: string[] = [];
    for (const name of ['a', 'b']) {
      const host = nodeHost({
        data: SWARM_DEFAULTS.data,
        stateDir: mkdtempSync(join(tmpdir(), 'session-test-')),
        benchmark: false,
        env: {},
        log: (l) => lines.push(`${name}: ${l}`),
      });
      const s = new PeerSession({ ...host, WebSocket: BurstySocket }, { coordinator: url, name });
      s.on('phase', (p) => lines.push(`${name}: [${p.phase}] ${p.why}`));
      ended.push(s.run());
      // The second peer registers while the first one's assign is still held: both reach it in one burst.
      await new Promise((r) => setTimeout(r, 20));
    }
    const outcome = await Promise.race([
      coord.trained.then(() => 'trained'),
      new Promise<string>((r) => setTimeout(() => r(`not trained within 120 s; the peers said:\n${lines.join('\n')}`), 120_000)),
    ]);
    expect(outcome).toBe('trained');
    expect(coord.stats.binaryBytesReceived).toBe(0);
  }, 180_000);
});
