// The dashboard's local server (cli/dashboard-site.ts) over real HTTP, as a DNS-rebinding page and
// the dashboard's own page would ask it: its keys, its RPC URL and the machine's processes go to
// its own pages on loopback names only (issue 19, attack 12). The guard's every header form is in
// tests/loopback-guard.test.ts; this checks the server applies it to every path. Ctrl-C ends the
// coordinator with 130, the shell's code for an interrupt, and leaves the local EVM to its parent.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveDashboard } from '../cli/dashboard-site.js';
import { httpGet as get, rebindingProbes } from '../bench/local-attacks.js';
import { rpcReady, startLocalEvm } from '../contracts/local-evm.js';

const KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';
/** What only the dashboard's own pages may read: the local node's test accounts (and its RPC). */
const ACCOUNT = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8';

describe('the dashboard’s local server', () => {
  let site: Awaited<ReturnType<typeof serveDashboard>>;
  let host: string;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dash-'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>dashboard</title>');
    writeFileSync(join(dir, 'data.txt'), 'to be or not to be');
    const config = {
      coordinator: 'ws://127.0.0.1:1',
      chain: { rpcUrl: 'http://127.0.0.1:2', chainId: 31337, registry: '0x01', tokens: '0x02', runId: 'r' },
      localAccounts: [ACCOUNT],
      localKeys: [KEY],
    };
    site = await serveDashboard(config as never, { dataFile: join(dir, 'data.txt'), dir });
    host = new URL(site.url).host;
  });
  afterAll(() => site.close());

  it('serves its own page its config, the local accounts included, and never a key', async () => {
    const own = await get(site.url, '/config.json', { host, 'sec-fetch-site': 'same-origin' });
    expect(own.status).toBe(200);
    expect(own.body).toContain(ACCOUNT);
    expect(own.body).not.toContain(KEY);
    expect((await get(site.url, '/', { host: `localhost:${new URL(site.url).port}` })).body).toContain('dashboard');
  });

  it.each(['/', '/config.json', '/machine', '/data.txt'])('answers %s to a rebinding name with 421 and nothing of it', async (path) => {
    const r = await get(site.url, path, { host: `evil.example:${new URL(site.url).port}` });
    expect(r.status).toBe(421);
    expect(r.body).not.toContain(ACCOUNT);
    expect(r.body).toMatch(
      /^This server answers only at http:\/\/127\.0\.0\.1:\d+ \(or localhost:\d+\); the request names "evil\.example:\d+", as a page using DNS rebinding would\.\n$/,
    );
  });

  it('refuses every request of the bench’s hostile page (bench/local-attacks.ts), which tells a leak on its own page', async () => {
    const probes = await rebindingProbes(site.url, ACCOUNT);
    expect(probes).toHaveLength(6);
    for (const p of probes) expect(p).toMatchObject({ status: p.as === 'a rebinding name' ? 421 : 403, leaked: false });
    await expect(rebindingProbes(site.url, 'a secret it does not hold')).rejects.toThrow(/own page got no secret from \/config\.json/);
  });

  it.each(['/config.json', '/machine'])('refuses %s to another site’s page on a loopback name with 403', async (path) => {
    const r = await get(site.url, path, { host, origin: 'http://evil.example' });
    expect(r.status).toBe(403);
    expect(r.body).not.toContain(ACCOUNT);
    expect((await get(site.url, path, { host, 'sec-fetch-site': 'cross-site' })).status).toBe(403);
  });
});

describe('Ctrl-C', () => {
  /** `npm run coordinator` with `args`, once it listens; all it printed so far in `out()`. */
  async function coordinatorListening(args: string[]): Promise<{ child: ChildProcess; out(): string }> {
    const child = spawn('node_modules/.bin/tsx', ['coordinator/main.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    child.stderr!.on('data', (c) => (out += c));
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (!/workers join with/.test(out)) return;
        clearInterval(t);
        resolve();
      }, 100);
      child.once('exit', () => reject(new Error(`the coordinator exited before listening: ${out}`)));
    });
    return { child, out: () => out };
  }

  it('stops `npm run coordinator` with exit code 130', async () => {
    const state = join(mkdtempSync(join(tmpdir(), 'coord-')), 'c.db');
    const first = await coordinatorListening(['--port', '0', '--state', state]);
    const exited = new Promise<number | null>((resolve) => first.child.once('exit', (code) => resolve(code)));
    // What a terminal's Ctrl-C sends: SIGINT to tsx and to the coordinator under it.
    spawn('pkill', ['-INT', '-f', state]);
    expect(await exited).toBe(130);
    const out = first.out();
    // It says how to resume the run: the same command with the run's id, which the default draws anew.
    const again = /resume it with {2}npm run coordinator -- (.+?) {2}\(/.exec(out)?.[1];
    expect(again).toMatch(/^--port 0 --state \S+ --run-id run-[0-9a-z]+$/);
    const resumed = await coordinatorListening(again!.split(' '));
    const said = resumed.out();
    // The same run in the same store (another id there is refused: "holds run … with other settings").
    const id = /--run-id (\S+)$/.exec(again!)![1];
    expect(said).toContain(`: run ${id}, 2 stages`);
    expect(out).toContain(`: run ${id}, 2 stages`);
    resumed.child.kill('SIGINT');
  }, 60_000);

  it('leaves the local EVM to its parent (`npm start` reads ownership from it last), which stops it, or its death does', async () => {
    const evm = await startLocalEvm({ accounts: 1 });
    const port = new URL(evm.rpcUrl).port;
    await new Promise((resolve) => spawn('pkill', ['-INT', '-f', `hardhat.*--port ${port}`]).once('exit', resolve));
    await sleep(1000);
    expect(await rpcReady(evm.rpcUrl)).toBe(true);
    await evm.stop();
    expect(await rpcReady(evm.rpcUrl)).toBe(false);
    // A parent killed outright: the EVM it started exits on its own.
    const parent = spawn(
      process.execPath,
      ['--import', 'tsx', '-e', "import('./contracts/local-evm.ts').then(async (m) => console.log((await m.startLocalEvm({ accounts: 1 })).rpcUrl))"],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const url = await new Promise<string>((resolve) => parent.stdout.on('data', (b: Buffer) => resolve(b.toString().trim())));
    expect(await rpcReady(url)).toBe(true);
    parent.kill('SIGKILL');
    const t0 = Date.now();
    while ((await rpcReady(url)) && Date.now() - t0 < 10_000) await sleep(200);
    expect(await rpcReady(url)).toBe(false);
  }, 120_000);
});
