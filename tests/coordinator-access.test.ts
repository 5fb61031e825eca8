// Who reaches the coordinator, and how (issue 20): over wss:// with a certificate from a CA the test
// makes (as a coordinator on the internet serves it), never over plain ws:// to another machine;
// browser pages only from this machine, the desktop app or the origins allowed; and every way of not
// getting there said as a sentence: no valid certificate, unreachable, origin refused.
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { makeTestCa } from '../bench/net/test-ca.js';
import { SWARM_DEFAULTS, runConfig } from '../cli/swarm.js';
import { originProblem } from '../coordinator/origins.js';
import { Coordinator } from '../coordinator/server.js';
import type { Access } from '../coordinator/transport.js';
import { CoordinatorClient, type WebSocketConstructor } from '../shared/swarm/coordinator-client.js';
import { coordinatorUrlProblem } from '../shared/swarm/coordinator-url.js';
import { PeerKey } from '../shared/swarm/identity.js';
import { TINY_MODEL } from './tiny-swarm.js';

const CAPABILITY = { adapter: 'test', kind: 'cpu' as const, gflops: 5, memoryBytes: 1e9, maxLayers: 8 };
const ca = makeTestCa(['127.0.0.1', 'localhost']);

let coord: Coordinator | undefined;
afterEach(async () => {
  await coord?.close();
  coord = undefined;
});

async function serve(access: Access): Promise<{ url: string; lines: string[] }> {
  const run = await runConfig({ ...SWARM_DEFAULTS, ...TINY_MODEL, workers: 2, stages: 2, layers: 2, steps: 4, evalEvery: 0 });
  const lines: string[] = [];
  coord = new Coordinator({ run, access, log: (l) => lines.push(l) });
  await coord.listen(0);
  return { url: coord.url!, lines };
}

/** `ws`'s WebSocket with extra options: a CA to trust, an Origin to name (as a browser page would). */
function socketWith(options: { ca?: string; origin?: string }): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url, options);
    }
  } as unknown as WebSocketConstructor;
}

async function register(url: string, socket: WebSocketConstructor): Promise<string> {
  const client = new CoordinatorClient(url, socket);
  try {
    return (await client.connect({ name: 'p', capability: CAPABILITY }, { key: await PeerKey.generate() }, { timeoutMs: 5000 })).peerId;
  } finally {
    client.close();
  }
}

describe('reaching the coordinator', () => {
  it('serves wss:// with its certificate: a peer that trusts the CA registers, one that does not is told the certificate is not valid', async () => {
    const { url } = await serve({ tls: { cert: ca.cert, key: ca.key } });
    expect(url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    expect(await register(url, socketWith({ ca: ca.ca }))).toMatch(/^p\d+-/);
    await expect(register(url, WebSocket as unknown as WebSocketConstructor)).rejects.toThrow(
      /^the coordinator at wss:\/\/127\.0\.0\.1:\d+ has no valid certificate: .*certificate/,
    );
  });

  it('refuses pages of other origins at the handshake, with a reason in its log; lets in this machine, the desktop app and the origins allowed', async () => {
    const { url, lines } = await serve({ origins: ['https://dash.example'] });
    await expect(register(url, socketWith({ origin: 'https://evil.example' }))).rejects.toThrow(
      /^the coordinator at ws:\/\/127\.0\.0\.1:\d+ refused the connection: pages from this origin may not join its run$/,
    );
    expect(lines).toContain("refused a handshake: pages from https://evil.example may not join this run (allowed: this machine's pages, the desktop app, https://dash.example)");
    for (const origin of ['https://dash.example', 'http://127.0.0.1:5173', 'app://swarm']) {
      expect(await register(url, socketWith({ origin })), origin).toMatch(/^p\d+-/);
    }
  });

  it('a coordinator that is not there is unreachable, said so; plain ws:// to another machine is refused before any socket opens', async () => {
    const { url } = await serve({});
    await coord!.close();
    await expect(register(url, WebSocket as unknown as WebSocketConstructor)).rejects.toThrow(/^the coordinator at ws:\/\/127\.0\.0\.1:\d+ is unreachable: .*ECONNREFUSED/);
    let opened = 0;
    const counting = class extends WebSocket {
      constructor(u: string) {
        super(u);
        opened++;
      }
    } as unknown as WebSocketConstructor;
    await expect(register('ws://10.1.2.3:8787', counting)).rejects.toThrow(
      'refusing to reach the coordinator at ws://10.1.2.3:8787 without TLS: a coordinator on another machine is reached over wss://',
    );
    expect(opened).toBe(0);
  });
});

describe('the address and origin rules', () => {
  it('allows plain ws:// on loopback only, and wss:// anywhere', () => {
    for (const ok of ['ws://127.0.0.1:8787', 'ws://localhost:1', 'ws://[::1]:9', 'ws://127.8.9.10:1', 'wss://coordinator.example:443', 'wss://10.0.0.1:8787'])
      expect(coordinatorUrlProblem(ok), ok).toBeUndefined();
    for (const bad of ['ws://10.0.0.1:8787', 'ws://coordinator.example', 'ws://127.0.0.1.example:1', 'http://127.0.0.1:8787', 'coordinator.example:8787', ''])
      expect(coordinatorUrlProblem(bad), bad).toMatch(/without TLS|not a coordinator address/);
  });

  it('lets in clients naming no origin (not a browser), this machine, the app and the allowed; nothing else', () => {
    for (const ok of [undefined, 'http://127.0.0.1:4000', 'http://localhost:80', 'https://[::1]:1', 'app://swarm']) expect(originProblem(ok, []), ok).toBeUndefined();
    for (const bad of ['https://evil.example', 'null', 'http://127.0.0.1.evil.example', 'file://', 'app://other', 'https://dash.example.evil.example'])
      expect(originProblem(bad, ['https://dash.example']), bad).toMatch(/may not join this run/);
    expect(originProblem('https://anything.example', ['*'])).toBeUndefined();
  });
});
