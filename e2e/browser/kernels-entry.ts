// Browser entry for the kernel checks: the same cases as tests/kernels.test.ts, run on the tab's
// `navigator.gpu` (SwiftShader in headless Chromium here). e2e/kernels-browser.test.ts bundles this
// file with esbuild, serves it on 127.0.0.1 and polls `window.__results` until `done`.
//
// Query parameters: `grep` keeps the cases whose name contains it (case-insensitive);
// `caseTimeout` bounds one case in milliseconds (default 10 minutes).
import { Gpu } from '../../kernels/context.js';
import { type GpuReport, detectGpu, requestDevice } from '../../shared/engine/gpu-detect.js';
import { kernelCases } from '../../tests/kernel-cases.js';
import { formatReport } from '../../shared/engine/gpu-format.js';

export interface CaseResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

export interface BrowserResults {
  /** Set once detection (with its small benchmark) has finished. */
  detect?: GpuReport;
  /** Finished cases, in the order they ran. */
  cases: CaseResult[];
  /** The case running now, if any. */
  running?: string;
  /** An error outside any case (opening the device, a bug in this page). */
  fatal?: string;
  done: boolean;
}

declare global {
  interface Window {
    __results: BrowserResults;
  }
}

const DEFAULT_CASE_TIMEOUT_MS = 10 * 60_000;

const results: BrowserResults = { cases: [], done: false };
window.__results = results;

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

// ---------------------------------------------------------------------------------------------
// Rendering: a plain list that fills in as the cases finish.

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = '', className = ''): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.textContent = text;
  if (className) e.className = className;
  return e;
}

const style = el('style');
style.textContent = `
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; }
  pre { background: #f4f4f4; padding: .6em; white-space: pre-wrap; }
  li { margin: .2em 0; }
  .ok { color: #176b1f; } .fail { color: #b00020; } .running { color: #555; font-style: italic; }
  .error { display: block; font-family: monospace; white-space: pre-wrap; }
`;
document.head.append(style);
const status = el('p', 'detecting WebGPU…');
const report = el('pre');
const list = el('ol');
document.body.append(el('h1', 'Kernel checks in the browser'), status, report, list);

function renderCase(li: HTMLLIElement, r: CaseResult): void {
  li.className = r.ok ? 'ok' : 'fail';
  li.textContent = `${r.ok ? 'ok' : 'FAIL'} ${r.name} (${Math.round(r.ms)} ms)`;
  if (r.error) li.append(el('span', r.error, 'error'));
}

// ---------------------------------------------------------------------------------------------
// Running

interface OpenGpu {
  gpu: Gpu;
  /** Set when the device is lost; the next case then gets a fresh device. */
  lost?: string;
}

async function openGpu(gpuApi: GPU): Promise<OpenGpu> {
  const adapter = await gpuApi.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new Error('WebGPU found no adapter after detection did');
  const device = await requestDevice(adapter);
  const open: OpenGpu = { gpu: new Gpu(device) };
  void device.lost.then((info) => {
    open.lost = `device lost (${info.reason}): ${info.message}`;
  });
  return open;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const grep = (params.get('grep') ?? '').toLowerCase();
  const caseTimeout = Number(params.get('caseTimeout')) || DEFAULT_CASE_TIMEOUT_MS;
  const deviceMemory = (navigator as Navigator & { deviceMemory?: number }).deviceMemory;

  const gpuApi: GPU | undefined = navigator.gpu;
  const detect = await detectGpu(
    gpuApi,
    { name: navigator.userAgent, totalMemoryBytes: deviceMemory ? deviceMemory * 2 ** 30 : undefined, runtime: 'browser' },
    { benchmark: true, benchSize: 128 },
  );
  results.detect = detect;
  report.textContent = formatReport(detect);
  if (!detect.available || !gpuApi) {
    status.textContent = `no WebGPU: ${detect.message}`;
    status.className = 'fail';
    return;
  }

  const cases = kernelCases.filter((c) => c.name.toLowerCase().includes(grep));
  status.textContent = `running ${cases.length} of ${kernelCases.length} cases${grep ? ` matching "${grep}"` : ''}…`;
  let open = await openGpu(gpuApi);
  for (const c of cases) {
    if (open.lost) open = await openGpu(gpuApi);
    const li = el('li', `… ${c.name}`, 'running');
    list.append(li);
    results.running = c.name;
    const t0 = performance.now();
    let result: CaseResult;
    try {
      await withTimeout(c.run(open.gpu), caseTimeout, 'the case');
      result = { name: c.name, ok: true, ms: performance.now() - t0 };
    } catch (e) {
      // Yield once so a device loss that caused the error is recorded before we report it.
      await new Promise((r) => setTimeout(r, 0));
      const lost = open.lost ? ` [${open.lost}]` : '';
      result = { name: c.name, ok: false, ms: performance.now() - t0, error: errorText(e) + lost };
      if (/timed out/.test(result.error ?? '') && !open.lost) {
        // Work still queued on the device would hold up the next case: start over on a new one.
        open.gpu.device.destroy();
        open.lost = 'destroyed after a timeout';
      }
    }
    results.cases.push(result);
    results.running = undefined;
    renderCase(li, result);
  }
  open.gpu.device.destroy();
  const failed = results.cases.filter((r) => !r.ok).length;
  status.textContent = `${results.cases.length - failed} passed, ${failed} failed`;
  status.className = failed ? 'fail' : 'ok';
}

main()
  .catch((e) => {
    results.fatal = errorText(e);
    status.textContent = `stopped: ${results.fatal}`;
    status.className = 'fail';
  })
  .finally(() => {
    results.running = undefined;
    results.done = true;
  });
