// GPU detection for every host: what adapter is there, what it can do, how fast it is, how much
// memory we dare to use, and whether it can take part in a run. The GPU object and the host facts
// are handed in, so this runs unchanged in Node (Dawn), a browser tab and Electron.
// This file finds the adapter and writes its report; how fast it is (gpu-bench.ts), what it may
// hold (gpu-verdict.ts) and the report as text (gpu-format.ts) live beside it, and hosts import
// all of it from here.
import { BENCH_ATTEMPTS, type BenchReport, benchmark } from './gpu-bench.js';
import { GiB, MiB, bytes } from '../base/sizes.js';

export interface HostFacts {
  /** Physical RAM, when the host can tell (os.totalmem(); browsers mostly cannot). */
  totalMemoryBytes?: number;
  /** Shown in reports, e.g. "node v20.20.2 linux x64" or the browser's name. */
  name: string;
  /** Picks the advice given when WebGPU is missing; without it both kinds of advice are given. */
  runtime?: 'node' | 'browser' | 'electron';
}

export type AdapterKind = 'cpu' | 'integrated' | 'discrete' | 'unknown';

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /** Guessed from the adapter info; WebGPU does not say. */
  kind: AdapterKind;
}

export interface GpuReport {
  available: boolean;
  /** One human sentence: what was found, or why nothing was and what to do about it. */
  message: string;
  host: string;
  adapter?: AdapterReport;
  features: { shaderF16: boolean; timestampQuery: boolean; subgroups: boolean; all: string[] };
  limits: Record<string, number>;
  budget: { bytes: number; basis: string };
  bench?: BenchReport;
  benchError?: string;
}

export interface DetectOptions {
  benchmark?: boolean;
  benchSize?: number;
  /** How many matmul measurements in all when they come out below MIN_GFLOPS (default BENCH_ATTEMPTS). */
  benchAttempts?: number;
}

const OPTIONAL_FEATURES: GPUFeatureName[] = ['shader-f16', 'timestamp-query', 'subgroups' as GPUFeatureName];
/** Limits a training block leans on. Defaults are far below what most adapters offer. */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxUniformBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxUniformBuffersPerShaderStage',
  'maxBindGroups',
  'maxBindingsPerBindGroup',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
];

export async function detectGpu(gpu: GPU | undefined, host: HostFacts, opts: DetectOptions = {}): Promise<GpuReport> {
  if (!gpu) return unavailable(host, `WebGPU is missing in ${host.name}: ${advice(host, 'api')}`);
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    return unavailable(host, `requesting a WebGPU adapter failed (${errorText(e)}): ${advice(host, 'adapter')}`);
  }
  if (!adapter) return unavailable(host, `WebGPU found no adapter in ${host.name}: ${advice(host, 'adapter')}`);

  const info = await adapterInfo(adapter);
  const all = [...adapter.features].map(String).sort();
  const limits = plainLimits(adapter.limits);
  const report: GpuReport = {
    available: true,
    message: `WebGPU adapter: ${describe(info)}`,
    host: host.name,
    adapter: info,
    features: {
      shaderF16: all.includes('shader-f16'),
      timestampQuery: all.includes('timestamp-query'),
      subgroups: all.includes('subgroups'),
      all,
    },
    limits,
    budget: estimateBudget(info.kind, limits, host.totalMemoryBytes),
  };
  if (opts.benchmark === false) return report;

  let device: GPUDevice;
  try {
    device = await requestDevice(adapter);
  } catch (e) {
    return { ...report, available: false, message: `the adapter ${describe(info)} refused to create a device (${errorText(e)}): ${advice(host, 'adapter')}` };
  }
  try {
    report.bench = await benchmark(device, opts.benchSize ?? 256, opts.benchAttempts ?? BENCH_ATTEMPTS);
  } catch (e) {
    report.benchError = errorText(e);
  } finally {
    device.destroy();
  }
  return report;
}

/** A device with the adapter's real limits (not the spec defaults) and the optional features it has. */
export async function requestDevice(adapter: GPUAdapter): Promise<GPUDevice> {
  const have = plainLimits(adapter.limits);
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) if (name in have) requiredLimits[name] = have[name];
  const requiredFeatures = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  return adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'swarm block' });
}

function unavailable(host: HostFacts, message: string): GpuReport {
  return {
    available: false,
    message,
    host: host.name,
    features: { shaderF16: false, timestampQuery: false, subgroups: false, all: [] },
    limits: {},
    budget: { bytes: 0, basis: 'no WebGPU adapter' },
  };
}

function advice(host: HostFacts, missing: 'api' | 'adapter'): string {
  const browser =
    missing === 'api'
      ? 'this browser has no WebGPU: use Chrome/Edge 113+ (or a recent Safari/Firefox with WebGPU on) over https or localhost, or the desktop app'
      : 'the browser has WebGPU but no usable GPU: turn on hardware acceleration, update the GPU driver (see chrome://gpu), or use the desktop app';
  const node =
    missing === 'api'
      ? 'install the npm package `webgpu` (Dawn)'
      : "install a GPU driver with Vulkan/Metal/D3D12 support, or Mesa's Vulkan drivers for a CPU fallback (Debian/Ubuntu: apt-get install mesa-vulkan-drivers; Dawn needs a recent Mesa, e.g. 25 from bookworm-backports, not 22.3)";
  if (host.runtime === 'node') return node;
  if (host.runtime === 'browser' || host.runtime === 'electron') return browser;
  return `in a browser, ${browser}; in Node, ${node}`;
}

async function adapterInfo(adapter: GPUAdapter): Promise<AdapterReport> {
  // Older browsers only have requestAdapterInfo(); isFallbackAdapter moved from the adapter to its info.
  const legacy = adapter as GPUAdapter & { requestAdapterInfo?: () => Promise<GPUAdapterInfo>; isFallbackAdapter?: boolean };
  let info: Partial<GPUAdapterInfo> & { isFallbackAdapter?: boolean } = {};
  try {
    info = legacy.info ?? (await legacy.requestAdapterInfo?.()) ?? {};
  } catch {
    // A browser may refuse to say; an anonymous adapter still computes.
  }
  const out = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isFallbackAdapter: Boolean(info.isFallbackAdapter ?? legacy.isFallbackAdapter),
  };
  return { ...out, kind: classify(out) };
}

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|basic render driver/i;
const SHARED_MEMORY_VENDORS = new Set(['intel', 'apple', 'arm', 'qualcomm', 'imagination', 'broadcom']);

export function classify(a: Omit<AdapterReport, 'kind'>): AdapterKind {
  if (a.isFallbackAdapter || SOFTWARE.test(`${a.vendor} ${a.architecture} ${a.device} ${a.description}`)) return 'cpu';
  const vendor = a.vendor.toLowerCase();
  // Intel's discrete parts (Arc) report "hp" architectures (gen-12hp, xe-2hpg).
  if (vendor === 'intel') return /hp/i.test(a.architecture) ? 'discrete' : 'integrated';
  if (SHARED_MEMORY_VENDORS.has(vendor)) return 'integrated';
  if (vendor === 'nvidia' || vendor === 'amd') return 'discrete';
  return 'unknown';
}

function plainLimits(limits: GPUSupportedLimits): Record<string, number> {
  // The limits are getters on the prototype: copy them so the report survives JSON and postMessage.
  const out: Record<string, number> = {};
  for (const key in limits) {
    const v = (limits as unknown as Record<string, unknown>)[key];
    if (typeof v === 'number') out[key] = v;
  }
  return out;
}

function describe(a: AdapterReport): string {
  const name = a.description || [a.vendor, a.architecture, a.device].filter(Boolean).join(' ') || 'anonymous adapter';
  return `${name} (${a.kind}${a.isFallbackAdapter ? ', fallback' : ''})`;
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Params, grads, Adam m, Adam v and activations each live in their own buffer(s). */
const BUFFER_KINDS = 5;
/** The spec's guaranteed minimum binding size, used when a report carries no limits. */
export const DEFAULT_BINDING_SIZE = 128 * MiB;

export function estimateBudget(kind: AdapterKind, limits: Record<string, number>, hostBytes?: number): GpuReport['budget'] {
  const bounds: { bytes: number; why: string }[] = [];
  if (limits.maxBufferSize) {
    bounds.push({
      bytes: BUFFER_KINDS * limits.maxBufferSize,
      why: `${BUFFER_KINDS} buffer kinds (params, grads, Adam m, Adam v, activations) × maxBufferSize ${bytes(limits.maxBufferSize)}`,
    });
  }
  if (kind === 'cpu' || kind === 'integrated') {
    // These adapters share system RAM with the OS, the browser and whatever game is running.
    const share = kind === 'cpu' ? 0.5 : 0.25;
    bounds.push(
      hostBytes
        ? { bytes: share * hostBytes, why: `${share * 100}% of host RAM ${bytes(hostBytes)} for a ${kind} adapter sharing system memory` }
        : { bytes: 1 * GiB, why: `a 1 GiB default for a ${kind} adapter, host RAM unknown` },
    );
  } else {
    bounds.push({ bytes: 2 * GiB, why: `a conservative 2 GiB default for a ${kind} adapter (WebGPU does not expose VRAM)` });
    if (kind === 'unknown' && hostBytes) bounds.push({ bytes: 0.25 * hostBytes, why: `25% of host RAM ${bytes(hostBytes)} in case it shares system memory` });
  }
  bounds.sort((a, b) => a.bytes - b.bytes);
  const [best, ...rest] = bounds;
  const also = rest.length ? `; looser bounds: ${rest.map((b) => `${bytes(b.bytes)} from ${b.why}`).join('; ')}` : '';
  return { bytes: Math.floor(best.bytes), basis: `${bytes(best.bytes)} from ${best.why}${also}` };
}
