// The kernel checks of tests/kernel-cases.ts in headless Chromium: WebGPU through `navigator.gpu`
// (SwiftShader on a GPU-less machine). The browser entry is bundled with esbuild into memory,
// served from 127.0.0.1 (a secure origin, which WebGPU requires) and driven with playwright-core
// and the system Chromium. All cases run once in beforeAll; each then gets its own `it`.
//
// Environment: CHROMIUM_PATH (default /usr/bin/chromium), KERNELS_GREP (run only the cases whose
// name contains it, case-insensitive), KERNELS_BROWSER_TIMEOUT_MS (the whole run, default 15 min).
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { kernelCases } from '../tests/kernel-cases.js';
import type { BrowserResults } from './browser/kernels-entry.js';
import { bundle, pageHtml, serveStatic } from '../cli/static-site.js';
import { launchChromium } from './chromium.js';
import { formatReport } from '../shared/engine/gpu-format.js';

const GREP = process.env.KERNELS_GREP ?? '';
const RUN_TIMEOUT_MS = Number(process.env.KERNELS_BROWSER_TIMEOUT_MS) || 15 * 60_000;
const ENTRY = fileURLToPath(new URL('./browser/kernels-entry.ts', import.meta.url));

const names = kernelCases.map((c) => c.name).filter((n) => n.toLowerCase().includes(GREP.toLowerCase()));

let browser: Browser | undefined;
let site: { url: string; close(): Promise<void> } | undefined;
let results: BrowserResults = { cases: [], done: false };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

beforeAll(async () => {
  const t0 = performance.now();
  site = await serveStatic({ '/': pageHtml('Kernel checks', '/kernels-entry.js'), '/kernels-entry.js': { type: 'text/javascript; charset=utf-8', body: await bundle(ENTRY) } });
  const url = `${site.url}/`;
  browser = await launchChromium();
  const page = await browser.newPage();
  let crashed = false;
  page.on('crash', () => {
    crashed = true;
  });
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') console.error(`[chromium ${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => console.error(`[chromium page error] ${e.message}`));

  await page.goto(`${url}?${new URLSearchParams({ grep: GREP })}`);
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  let printedDetect = false;
  let printed = 0;
  for (;;) {
    if (crashed) throw new Error('the Chromium page crashed');
    const r = await page.evaluate(() => window.__results ?? null);
    if (r) {
      results = r;
      if (r.detect && !printedDetect) {
        console.log(formatReport(r.detect));
        printedDetect = true;
      }
      for (; printed < r.cases.length; printed++) {
        const c = r.cases[printed];
        console.log(`[chromium] ${c.ok ? 'ok  ' : 'FAIL'} ${secs(c.ms).padStart(8)}  ${c.name}${c.error ? `\n    ${c.error}` : ''}`);
      }
      if (r.done) break;
    }
    if (Date.now() > deadline) {
      const running = r?.running ? `; still running "${r.running}"` : '';
      throw new Error(`the browser run did not finish within ${secs(RUN_TIMEOUT_MS)} (${r?.cases.length ?? 0} cases done${running})`);
    }
    await sleep(1000);
  }
  const caseMs = results.cases.reduce((sum, c) => sum + c.ms, 0);
  console.log(`[chromium] ${results.cases.length} cases in ${secs(caseMs)}; whole run with bundling, launch and detection ${secs(performance.now() - t0)}`);
}, RUN_TIMEOUT_MS + 60_000);

afterAll(async () => {
  await browser?.close();
  await site?.close();
});

describe('WGSL kernels against the float64 reference (Chromium, WebGPU)', () => {
  it('finds a WebGPU adapter', () => {
    if (!results.detect) throw new Error(results.fatal ?? 'the page reported no detection result');
    if (!results.detect.available) throw new Error(results.detect.message);
  });

  for (const name of names) {
    it(name, () => {
      const r = results.cases.find((c) => c.name === name);
      if (!r) {
        const why = results.fatal ?? (results.detect && !results.detect.available ? results.detect.message : 'the page did not report it');
        throw new Error(`not run in the browser: ${why}`);
      }
      if (!r.ok) throw new Error(r.error ?? 'failed without a message');
    });
  }
});
