// The browser host of the peer session (a tab's training worker, the desktop app's training window):
// its own WebGPU (`navigator.gpu`) and WebSocket, the WebRTC it is given (a page's, through
// simple-peer's browser build), fetch for the training text and IndexedDB for the states and proofs it keeps. The wallet is the dashboard's to add (browser/trainer.ts).
import { Gpu } from '../kernels/context.js';
import { detectGpu, requestDevice } from '../shared/engine/gpu-detect.js';
import type { PeerHost, PeerStorage } from '../shared/peer/host.js';
import type { RtcFactory } from '../shared/peer/rtc.js';
import { DEFAULT_RUN, verdict } from '../shared/engine/gpu-verdict.js';

export interface BrowserHostOptions {
  /** Where the run's training text is fetched from (the page's origin serves it). */
  dataUrl: string;
  storage: PeerStorage;
  /** Run the start-up benchmark (its speed is only a hint: the swarm measures the real one). */
  benchmark?: boolean;
  runtime?: 'browser' | 'electron';
  rtc: RtcFactory;
  log(line: string): void;
}

/** The GPU is detected and benchmarked once per host: every session after a pause reuses the device. */
export function browserHost(o: BrowserHostOptions): PeerHost {
  let detected: ReturnType<PeerHost['gpu']> | undefined;
  return {
    gpu() {
      detected ??= (async () => {
        const host = { name: navigator.userAgent, runtime: o.runtime ?? ('browser' as const) };
        const report = await detectGpu(navigator.gpu, host, { benchSize: 128, benchmark: o.benchmark ?? true });
        const adapter = await navigator.gpu?.requestAdapter({ powerPreference: 'high-performance' });
        if (!adapter) throw new Error(report.message);
        return { gpu: new Gpu(await requestDevice(adapter)), report, verdict: verdict(report, DEFAULT_RUN) };
      })();
      return detected;
    },
    WebSocket,
    rtc: o.rtc,
    async loadCorpus() {
      const r = await fetch(o.dataUrl);
      if (!r.ok) throw new Error(`cannot fetch the training text ${o.dataUrl}: HTTP ${r.status}`);
      return new Uint8Array(await r.arrayBuffer());
    },
    storage: o.storage,
    now: () => performance.now(),
    log: o.log,
  };
}
