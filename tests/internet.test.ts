// The short form of `npm run bench:internet` (issue 20): volunteers behind home NATs, in network
// namespaces with nftables (bench/net/internet.ts), find a run on chain and train it together. The
// chain, a wss:// coordinator and coturn live in an "internet" namespace; Node workers in a public
// home, two cone-NAT homes and a symmetric-NAT home; a Chromium tab in a cone-NAT home of its own,
// its dashboard served on that home's 127.0.0.1. Every peer is given only the network file and the
// run id; the tab not even the id: its page picks the newest run, whose coordinator is gone, says so,
// and its user joins the live run from the Runs page. Needs root: where namespaces cannot be made,
// the test says why and skips.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { HOMES, acrossNats, benchSwarm, needsRelay } from '../bench/internet.js';
import { cannotMakeInternet } from '../bench/net/internet.js';
import type { SwarmRun } from '../bench/net/internet-swarm.js';
import { isRelayed } from '../shared/peer/link-path.js';
import { TINY_MODEL } from './tiny-swarm.js';

const why = cannotMakeInternet();
if (why) console.warn(`tests/internet.test.ts skipped: ${why}`);

const kindOf = (r: SwarmRun, name: string) => r.peers.find((p) => p.name === name)?.kind;

describe.skipIf(!!why)('volunteers behind home NATs', () => {
  // The tab's page is the built dashboard (as `npm run bench:internet` builds it): build this tree's.
  beforeAll(() => void execFileSync('npx', ['vite', 'build', '--logLevel', 'error'], { stdio: 'inherit' }), 120_000);

  it(
    'every peer, a tab behind a NAT included, finds the run on chain and trains it; only links that need the relay take it, within 10 s; the coordinator carries no tensor',
    async () => {
      // Long enough that the last worker, arriving about 12 s after the first, still trains: the run starts
      // once three peers are ready (the tab may be one), and the last must still fetch its state.
      const r = await acrossNats({ ...benchSwarm(120), ...TINY_MODEL, layers: 2, evalEvery: 40 }, true);
      const summary = r.peers.map((p) => `${p.name} (${p.kind}) ${p.microbatches} mb: ${p.links.map((l) => `${l.to} ${l.local}/${l.remote} ${l.connectMs} ms`).join(', ')}`);
      console.log(`[internet] ${r.tokensPerS.toFixed(0)} tok/s across NATs\n  ${summary.join('\n  ')}`);
      expect(r.peers.map((p) => p.name).sort()).toEqual([...HOMES.filter((h) => !h.tab).map((_, i) => `worker-${i}`), 'tab'].sort());
      for (const p of r.peers) expect(p.microbatches, `${p.name} computed microbatches of committed steps`).toBeGreaterThan(0);
      const links = r.peers.flatMap((p) => p.links.map((l) => ({ p, l, need: needsRelay(p.kind as never, kindOf(r, l.to) as never) })));
      expect(links.filter((x) => x.need).length, 'some links cross a symmetric NAT').toBeGreaterThan(0);
      expect(links.filter((x) => !x.need).length, 'some links go direct').toBeGreaterThan(0);
      for (const { p, l, need } of links) {
        expect(isRelayed(l), `${p.name} (${p.kind}) → ${l.to}: ${l.local}/${l.remote}`).toBe(need);
        if (need) expect(l.connectMs, `${p.name} → ${l.to} connected through the relay within 10 s`).toBeLessThanOrEqual(10_000);
      }
      expect(r.coordinatorTensorBytes).toBe(0);
      // The tab's own dashboard: the run it picked first could not be reached, and said so; it lists
      // the run it joined instead, and its loss fell.
      expect(r.tab?.firstStatus).toMatch(/^The coordinator at wss:\/\/198\.51\.100\.1:9 could not be reached/);
      expect(r.tab?.runsRow).toMatch(/this machine's/);
      expect(r.tab?.fit).toMatch(/^Yes: holds any of its 2 stages/);
      expect(r.tab?.runsRow).toMatch(/wss:\/\/198\.51\.100\.1:\d+/);
      expect(r.tab!.lossPoints).toBeGreaterThanOrEqual(2);
      expect(r.tab!.lastLoss).toBeLessThan(r.tab!.firstLoss);
      mkdirSync('e2e/artifacts', { recursive: true });
      copyFileSync(r.tab!.screenshot, 'e2e/artifacts/runs-behind-nat.png');
    },
    20 * 60_000,
  );
});
