// A browser tab is a peer: a page on 127.0.0.1 runs the same peer session as the Node worker, on
// Chromium's WebGPU (SwiftShader here) and its own RTCPeerConnection. It joins a local swarm (a
// coordinator in this process, a Node worker process on stage 0) as stage 1, opens a data channel
// to the Node peer, trains; the tensors each side decoded must match what the other encoded within
// the codec's rounding, and the loss (computed in the tab, the last stage) must fall.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TabRecord } from './tab-peer-page.js';
import { LocalSwarm } from '../cli/local-swarm.js';
import { SWARM_DEFAULTS, runConfig } from '../cli/swarm.js';
import type { CommitEvent } from '../coordinator/run-control.js';
import { FrameKind } from '../shared/wire/frame.js';
import { DEFAULT_DATA } from '../node/corpus.js';
import { bundle, pageHtml, serveStatic } from '../cli/static-site.js';
import { LOOPBACK_ONLY_PERMISSIONS, launchChromium, loopbackOnly } from './chromium.js';
import { TINY_MODEL } from '../tests/tiny-swarm.js';

const ENTRY = fileURLToPath(new URL('./tab-peer-page.ts', import.meta.url));
const STEPS = 10;
const out = mkdtempSync(join(tmpdir(), 'tab-peer-'));
let swarm: LocalSwarm;
let browser: Browser | undefined;
let page: Page;
let site: { url: string; close(): Promise<void> } | undefined;
let tab: TabRecord;
let tabPeer = '';
const commits: CommitEvent[] = [];

beforeAll(async () => {
  const run = await runConfig({
    ...SWARM_DEFAULTS,
    stages: 2,
    minPerStage: 1,
    layers: 2,
    ...TINY_MODEL,
    microbatches: 2,
    steps: STEPS,
    lr: 1e-2,
    evalEvery: 5,
    evalBatches: 2,
    codec: 'subspace:k=8:int8',
    out,
  });
  // Compiling every kernel on SwiftShader takes a while: the tab gets a setup timeout to match.
  swarm = new LocalSwarm({ run, data: DEFAULT_DATA, out, quickStart: true, dump: true, coordinator: { heartbeatTimeoutMs: 60_000, setupTimeoutMs: 600_000 } });
  swarm.coordinator.on('commit', (c) => commits.push(c));
  const url = await swarm.listen();
  const nodePlaced = new Promise<void>((resolve) => swarm.coordinator.on('register', (r) => r.name === 'worker-0' && resolve()));
  swarm.spawn(0);
  await nodePlaced; // the Node worker takes stage 0, so the tab is placed on stage 1
  swarm.coordinator.on('register', (r) => r.name === 'tab' && (tabPeer = r.peerId));
  site = await serveStatic({
    '/': pageHtml('swarm peer', '/tab.js'),
    '/tab.js': { type: 'text/javascript; charset=utf-8', body: await bundle(ENTRY) },
    '/data.txt': { type: 'text/plain; charset=utf-8', body: readFileSync(DEFAULT_DATA) },
  });
  browser = await launchChromium();
  const context = await browser.newContext();
  if (loopbackOnly) await context.grantPermissions(LOOPBACK_ONLY_PERMISSIONS, { origin: site.url });
  page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[tab error] ${e.message}`));
  await page.goto(`${site.url}/?${new URLSearchParams({ coordinator: url, name: 'tab', bench: '0', dump: '1', storage: 'memory' })}`);
  await swarm.coordinator.trained;
  swarm.coordinator.stopRun();
  for (;;) {
    tab = await page.evaluate(() => window.__tab);
    if (tab.done !== undefined) break;
    await new Promise((r) => setTimeout(r, 200));
  }
}, 900_000);

afterAll(async () => {
  await browser?.close();
  await site?.close();
  await swarm?.close();
});

const f32 = (file: string) => new Float32Array(new Uint8Array(readFileSync(file)).buffer);

/** Each value within half an int8 step of the tensor's largest magnitude (per-column scales are finer still). */
function withinInt8(sent: ArrayLike<number>, received: ArrayLike<number>): void {
  expect(received.length).toBe(sent.length);
  let maxAbs = 0;
  let worst = 0;
  for (let i = 0; i < sent.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(sent[i]));
    worst = Math.max(worst, Math.abs(sent[i] - received[i]));
  }
  expect(worst).toBeLessThanOrEqual((maxAbs / 127) * 0.5 * 1.0001);
  expect(worst).toBeGreaterThan(0); // it really went through the codec
}

describe('a browser tab as a peer of a Node swarm', () => {
  it('is placed on stage 1 and computes every microbatch of every step there, with its session ended by the run', () => {
    expect(tab.stage).toBe(1);
    expect(tab.done).toBe('run complete');
    expect(commits.map((c) => c.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    for (const c of commits) expect(c.work.find((w) => w.stage === 1)).toMatchObject({ peerId: tabPeer, microbatches: 2 });
  });

  it('the Node side decodes the tab’s gradients, and the tab the Node side’s activations, within int8 rounding', () => {
    const dir = join(out, 'boundaries');
    for (const mb of [0, 1]) {
      withinInt8(f32(join(dir, `b0-k${FrameKind.Activation}-mb${mb}-sent.f32`)), tab.boundaries[`received-k${FrameKind.Activation}-mb${mb}`]);
      withinInt8(tab.boundaries[`sent-k${FrameKind.Gradient}-mb${mb}`], f32(join(dir, `b0-k${FrameKind.Gradient}-mb${mb}-received.f32`)));
    }
  });

  it('trains: the loss the tab computes falls, and it evaluates', () => {
    const loss = tab.steps.map((s) => s.loss!);
    expect(loss).toHaveLength(STEPS);
    expect((loss.at(-1)! + loss.at(-2)!) / 2).toBeLessThan((loss[0] + loss[1]) / 2 - 0.1);
    expect(tab.evaluated.map((e) => e.step)).toEqual([5, 10]);
    expect(swarm.coordinator.stats.binaryBytesReceived).toBe(0);
  });
});
