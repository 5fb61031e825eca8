// Issue 19's attacks on what runs on a volunteer's own machine rather than in the swarm, as
// attacker code that `npm run bench:trust` runs and the tests reuse: a page using DNS rebinding (or
// another site's page) asking the dashboard's local server for its keys and the machine's
// processes (#12); clients that hold a coordinator's port open so it cannot exit (#13).
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveDashboard } from '../cli/dashboard-site.js';
import { Coordinator } from '../coordinator/server.js';
import { SWARM_DEFAULTS, runConfig } from '../cli/swarm.js';

/** One request of a hostile page and what the server answered. */
export interface Probe {
  path: string;
  as: string;
  status: number;
  /** Whether the answer held the secret asked for (the local accounts, or the list of processes). */
  leaked: boolean;
}

export function httpGet(url: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, path, headers, setHost: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * What a hostile page can ask a local server at `url` for `/config.json` (holding `secret`) and
 * `/machine`: under a rebinding name (Host evil.example), and from another site's page on the real
 * loopback name (Origin, or Sec-Fetch-Site cross-site).
 */
export async function rebindingProbes(url: string, secret: string): Promise<Probe[]> {
  const { host, port } = new URL(url);
  const ways: Array<[string, Record<string, string>]> = [
    ['a rebinding name', { host: `evil.example:${port}` }],
    ["another site's page", { host, origin: 'http://evil.example' }],
    ['a cross-site fetch', { host, 'sec-fetch-site': 'cross-site' }],
  ];
  const leaked = (body: string) => body.includes(secret) || /"processes"/.test(body);
  // The server's own page gets both: what tells a leak does tell one.
  for (const path of ['/config.json', '/machine']) {
    const own = await httpGet(url, path, { host, 'sec-fetch-site': 'same-origin' });
    if (!leaked(own.body)) throw new Error(`the server's own page got no secret from ${path} (${own.status}): the probes could not tell a leak`);
  }
  const probes: Probe[] = [];
  for (const path of ['/config.json', '/machine']) {
    for (const [as, headers] of ways) {
      const r = await httpGet(url, path, headers);
      probes.push({ path, as, status: r.status, leaked: leaked(r.body) });
    }
  }
  return probes;
}

/**
 * Against a server on `port`: a half-sent WebSocket handshake, a TCP socket that sends nothing, and
 * a client that completes the handshake and then never answers a close frame. Each reads and drops
 * what the server sends, so that the server's end is seen.
 */
export async function holdOpen(port: number): Promise<net.Socket[]> {
  const raw = (text: string) =>
    new Promise<net.Socket>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', () => {});
      s.resume();
      s.write(text);
    });
  const upgrade = `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n`;
  return [await raw(upgrade), await raw(''), await raw(`${upgrade}Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`)];
}

/** #12 once: the dashboard's server with local accounts in its config, and every probe of a hostile page. */
export async function rebindingRun(): Promise<Probe[]> {
  const dir = mkdtempSync(join(tmpdir(), 'rebind-'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>dashboard</title>');
  writeFileSync(join(dir, 'data.txt'), 'to be or not to be');
  const secret = `0x${'5a'.repeat(20)}`;
  const site = await serveDashboard({ coordinator: 'ws://127.0.0.1:1', localAccounts: [secret] } as never, { dataFile: join(dir, 'data.txt'), dir });
  try {
    return await rebindingProbes(site.url, secret);
  } finally {
    await site.close();
  }
}

/** #13 once: a coordinator with the three hostile clients connected; milliseconds its close() took. */
export async function holdOpenRun(): Promise<number> {
  const c = new Coordinator({ run: await runConfig(SWARM_DEFAULTS), log: () => {} });
  const port = await c.listen(0);
  const sockets = await holdOpen(port);
  await new Promise((r) => setTimeout(r, 200)); // the deaf client's handshake completes
  const t0 = Date.now();
  await c.close();
  const ms = Date.now() - t0;
  for (const s of sockets) s.destroy();
  return ms;
}
