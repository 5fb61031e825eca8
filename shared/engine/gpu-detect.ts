// GPU detection for every host: what adapter is there, what it can do, how fast it is, how much
// memory we dare to use, and whether it can take part in a run. The GPU object and the host facts
// are handed in, so this runs unchanged in Node (Dawn), a browser tab and Electron.
import { Gpu, groups } from '../../kernels/context.js';
import { DEFAULT_VARIANT, VARIANTS, matmul, variantFits, variantKey } from '../../kernels/matmul.js';
import { type BlockConfig, activationFloatsPerLayer, layout } from './model.js';

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

export interface BenchReport {
  matmulSize: number;
  matmulGflops: number;
  matmulVariant: string;
  /** GFLOP/s of each matmul measurement in order; matmulGflops is the best. More than one when the first fell below MIN_GFLOPS. */
  matmulAttempts: number[];
  /** GFLOP/s of every variant tried in the best measurement. */
  variants: Record<string, number>;
  /** Bytes read + written per second by copyBufferToBuffer and by a WGSL copy kernel. */
  copyGBs: number;
  kernelGBs: number;
  bandwidthGBs: number;
  ms: number;
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

/**
 * Below this a peer would slow its stage down more than it helps. It only warns: a start-up
 * measurement on a shared machine (say four local peers benchmarking at once on two cores) can
 * land far below what the hardware does, and the swarm measures real throughput while training.
 */
export const MIN_GFLOPS = 0.5;
/**
 * Measurements in all when the matmul comes out below MIN_GFLOPS; the best is kept, because
 * contention passes and the hardware's speed does not. Three bound the extra start-up time to
 * about a second plus two short matmul runs on an adapter that really is slow.
 */
export const BENCH_ATTEMPTS = 3;
/** The pause before a retry: 300–500 ms, long enough for a sibling's benchmark to move on, jittered so peers started together do not retry in lockstep. */
const RETRY_PAUSE_MS = 300;
const RETRY_JITTER_MS = 200;
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
const GiB = 2 ** 30;
const MiB = 2 ** 20;
/** Params, grads, Adam m, Adam v and activations each live in their own buffer(s). */
const BUFFER_KINDS = 5;
/** The spec's guaranteed minimum, used when a report carries no limits. */
const DEFAULT_BINDING_SIZE = 128 * MiB;

// ---------------------------------------------------------------------------------------------
// Detection

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

// ---------------------------------------------------------------------------------------------
// Memory budget: WebGPU never tells how much VRAM there is, so we bound it from what we know.

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

// ---------------------------------------------------------------------------------------------
// Benchmark

/** Long enough that submit overhead does not dominate on a fast GPU, short on a CPU adapter. */
const TARGET_MS = 20;
const MAX_REPS = 64;
const BANDWIDTH_BYTES = 32 * MiB;

async function benchmark(device: GPUDevice, size: number, attempts: number): Promise<BenchReport> {
  const t0 = performance.now();
  const gpu = new Gpu(device);
  const { best, scores } = await bestOf(() => benchMatmul(gpu, size), {
    attempts,
    score: (m) => m.matmulGflops,
    enough: MIN_GFLOPS,
    pause: () => sleep(RETRY_PAUSE_MS + Math.random() * RETRY_JITTER_MS),
  });
  const bw = await benchBandwidth(gpu);
  return { ...best, matmulAttempts: scores, ...bw, ms: performance.now() - t0 };
}

export interface Retry<T> {
  /** Measurements in all, at least one. */
  attempts: number;
  /** Higher is better. */
  score: (t: T) => number;
  /** A score this high ends the retries: it is already good enough. */
  enough: number;
  /** Runs between two measurements; handed in so tests need no clock. */
  pause: () => Promise<void>;
}

/**
 * Measures until a score reaches `enough` or the attempts run out, and keeps the best, since a
 * busy machine only ever makes a measurement slower. Errors are not retried: they are facts.
 */
export async function bestOf<T>(measure: () => Promise<T>, r: Retry<T>): Promise<{ best: T; scores: number[] }> {
  let best = await measure();
  let top = r.score(best);
  const scores = [top];
  while (scores.length < r.attempts && top < r.enough) {
    await r.pause();
    const next = await measure();
    const s = r.score(next);
    scores.push(s);
    if (s > top) [best, top] = [next, s];
  }
  return { best, scores };
}

/** Milliseconds per repetition of `encode`: median of 3 timed submits after a warm-up. */
async function timePerRep(device: GPUDevice, encode: (enc: GPUCommandEncoder, reps: number) => void): Promise<number> {
  const once = async (reps: number) => {
    const t = performance.now();
    const enc = device.createCommandEncoder();
    encode(enc, reps);
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return performance.now() - t;
  };
  await once(1); // first use pays for pipeline compilation and lazy zero-fill
  const single = await once(1);
  const reps = Math.min(MAX_REPS, Math.max(1, Math.ceil(TARGET_MS / Math.max(single, 0.05))));
  const times: number[] = [];
  for (let i = 0; i < 3; i++) times.push(await once(reps));
  return median(times) / reps;
}

async function benchMatmul(gpu: Gpu, n: number): Promise<Pick<BenchReport, 'matmulSize' | 'matmulGflops' | 'matmulVariant' | 'variants'>> {
  const fill = () => Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 17) / 17 - 0.5);
  const a = gpu.upload(fill(), 'bench a');
  const b = gpu.upload(fill(), 'bench b');
  const c = gpu.view(gpu.buffer(n * n, 'bench c'), 0, n * n);
  const maxInvocations = gpu.device.limits.maxComputeInvocationsPerWorkgroup;
  const variants: Record<string, number> = {};
  for (const v of DETECT_VARIANTS) {
    if (!variantFits(v, { M: n, N: n, K: n }) || v.wx * v.wy > maxInvocations) continue;
    gpu.device.pushErrorScope('validation');
    let ms = NaN;
    try {
      const d = matmul(gpu, { M: n, N: n, K: n, a, b, c, variant: v });
      ms = await timePerRep(gpu.device, (enc, reps) => gpu.encode(enc, Array<typeof d>(reps).fill(d)));
    } catch {
      // A variant this adapter cannot build is simply not a candidate.
    }
    const err = await gpu.device.popErrorScope();
    if (!err && ms > 0) variants[variantKey(v)] = (2 * n ** 3) / (ms * 1e6);
  }
  const ranked = Object.entries(variants).sort((x, y) => y[1] - x[1]);
  if (!ranked.length) throw new Error(`no matmul variant ran at ${n}³`);
  return { matmulSize: n, matmulGflops: ranked[0][1], matmulVariant: ranked[0][0], variants };
}

/**
 * A plain and a register-blocked vec4 kernel: enough to tell a fast adapter from a slow one. The
 * largest blocks are left out because on CPU adapters their first compile takes seconds.
 */
const DETECT_VARIANTS = VARIANTS.filter((v) => v === DEFAULT_VARIANT || (v.kind === 'vec4' && v.strided && v.tm === 8 && v.tn === 8));

const COPY_WGSL = `
@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x < arrayLength(&dst)) { dst[gid.x] = src[gid.x]; }
}
`;

async function benchBandwidth(gpu: Gpu): Promise<Pick<BenchReport, 'copyGBs' | 'kernelGBs' | 'bandwidthGBs'>> {
  const lim = gpu.device.limits;
  const size = Math.floor(Math.min(BANDWIDTH_BYTES, lim.maxStorageBufferBindingSize, lim.maxBufferSize) / 1024) * 1024;
  const floats = size / 4;
  const src = gpu.view(gpu.buffer(floats, 'bench src'), 0, floats);
  const dst = gpu.view(gpu.buffer(floats, 'bench dst'), 0, floats);
  const gbs = (ms: number) => (2 * size) / (ms * 1e6); // every byte is read once and written once
  const copyMs = await timePerRep(gpu.device, (enc, reps) => {
    for (let i = 0; i < reps; i++) enc.copyBufferToBuffer(src.buffer, 0, dst.buffer, 0, size);
  });
  const d = gpu.dispatch('bench copy', COPY_WGSL, [src, dst], [groups(floats / 4, 256), 1, 1]);
  const kernelMs = await timePerRep(gpu.device, (enc, reps) => gpu.encode(enc, Array<typeof d>(reps).fill(d)));
  const copyGBs = gbs(copyMs);
  const kernelGBs = gbs(kernelMs);
  return { copyGBs, kernelGBs, bandwidthGBs: Math.max(copyGBs, kernelGBs) };
}

// ---------------------------------------------------------------------------------------------
// Verdict: can this report take part in a run, and with how many layers?

export interface RunSpec {
  name: string;
  config: BlockConfig;
  layersInModel: number;
}

export interface Verdict {
  ok: boolean;
  layers: number;
  reasons: string[];
  text: string;
  /** The measured speed is below MIN_GFLOPS. Never a rejection by itself: see speedWarning. */
  slow: boolean;
  /** Those reasons a user should see even when the peer is accepted. */
  warnings: string[];
}

/** Rejects only on facts: no adapter, a tensor above the binding limit, no room for one layer. */
export function verdict(report: GpuReport, run: RunSpec): Verdict {
  const reasons: string[] = [];
  const warnings: string[] = [];
  const flags = () => ({ slow: warnings.length > 0, warnings });
  const reject = (why: string): Verdict => ({ ok: false, layers: 0, reasons: [...reasons, why], text: `rejected because ${why}`, ...flags() });
  if (!report.available) {
    reasons.push(report.message);
    return reject('no WebGPU adapter');
  }

  const cfg = run.config;
  const oneLayer: BlockConfig = { ...cfg, nLayer: 1, hasEmbedding: false, hasHead: false };
  const layerParams = layout(oneLayer).count;
  const layerActs = activationFloatsPerLayer(cfg);
  // Every parameter carries a gradient and two Adam moments: 4 f32 each.
  const perLayer = layerParams * 16 + layerActs * 4;
  const ends = cfg.hasEmbedding || cfg.hasHead ? layout({ ...cfg, nLayer: 0 }).count : 0;
  const tokens = cfg.batch * cfg.seq;
  const endActs = (cfg.hasEmbedding ? tokens * cfg.dModel : 0) + (cfg.hasHead ? 2 * tokens * cfg.vocab : 0);
  const fixed = ends * 16 + endActs * 4;
  reasons.push(`one layer needs ${bytes(perLayer)} (${layerParams} params × 16 B for param, grad, Adam m, v + ${layerActs} activation floats × 4 B)`);
  if (fixed) reasons.push(`embedding/head need ${bytes(fixed)}`);

  const tensorFloats = [
    ...layout({ ...cfg, nLayer: 1 }).params.map((p) => p.size),
    tokens * 4 * cfg.dModel, // MLP hidden
    cfg.batch * cfg.nHead * cfg.seq * cfg.seq, // attention probabilities
    cfg.hasHead ? tokens * cfg.vocab : 0, // logits
  ];
  const largest = Math.max(...tensorFloats) * 4;
  const binding = report.limits.maxStorageBufferBindingSize ?? DEFAULT_BINDING_SIZE;
  if (largest > binding) {
    return reject(`the adapter's maxStorageBufferBindingSize (${bytes(binding)}) is below the largest tensor (${bytes(largest)})`);
  }

  if (report.bench) {
    const warning = speedWarning(report.bench);
    if (warning) warnings.push(warning);
    reasons.push(warning ?? `measured ${num(report.bench.matmulGflops)} GFLOP/s (floor ${MIN_GFLOPS})`);
  } else {
    reasons.push('not benchmarked: compute speed unchecked');
  }

  const budget = report.budget.bytes;
  reasons.push(`memory budget ${report.budget.basis}`);
  let layers = Math.min(run.layersInModel, Math.floor((budget - fixed) / perLayer));
  // The block's parameters are one flat buffer, which cannot outgrow maxBufferSize.
  const maxBuffer = report.limits.maxBufferSize;
  if (maxBuffer) {
    const byBuffer = Math.floor((maxBuffer - ends * 4) / (layerParams * 4));
    if (byBuffer < layers) reasons.push(`maxBufferSize ${bytes(maxBuffer)} holds the parameters of ${byBuffer} layers`);
    layers = Math.min(layers, byBuffer);
  }
  if (layers < 1) return reject(`one layer needs ${bytes(perLayer + fixed)} but the memory budget is ${bytes(budget)}`);
  return { ok: true, layers, reasons, text: `can hold ${layers} of ${run.layersInModel} layers of run ${run.name}`, ...flags() };
}

/** A warning, never a rejection: a start-up measurement on a shared machine says little about the hardware. */
export function speedWarning(bench: Pick<BenchReport, 'matmulGflops' | 'matmulAttempts'>): string | undefined {
  const g = bench.matmulGflops;
  if (g >= MIN_GFLOPS) return undefined;
  const n = bench.matmulAttempts.length;
  const how = n > 1 ? `best of ${n}` : 'a single measurement';
  return `measured ${num(g)} GFLOP/s (${how}), below the ${MIN_GFLOPS} GFLOP/s floor: probably a busy machine; the swarm measures real throughput while training`;
}

// ---------------------------------------------------------------------------------------------
// Text

export function formatReport(r: GpuReport): string {
  if (!r.available) return `WebGPU on ${r.host}: not available\n  ${r.message}`;
  const a = r.adapter;
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  const l = r.limits;
  const lines = [
    `WebGPU on ${r.host}: available`,
    `  adapter    ${r.message.replace(/^WebGPU adapter: /, '')}`,
    a ? `  info       vendor "${a.vendor}", architecture "${a.architecture}", device "${a.device}"` : '',
    `  features   shader-f16 ${yes(r.features.shaderF16)}, timestamp-query ${yes(r.features.timestampQuery)}, subgroups ${yes(r.features.subgroups)} (${r.features.all.length} in all)`,
    `  limits     maxBufferSize ${bytes(l.maxBufferSize)}, maxStorageBufferBindingSize ${bytes(l.maxStorageBufferBindingSize)}, ` +
      `workgroup storage ${bytes(l.maxComputeWorkgroupStorageSize)}, ${l.maxComputeInvocationsPerWorkgroup} invocations/workgroup, ` +
      `${l.maxStorageBuffersPerShaderStage} storage buffers/stage`,
    `  memory     usable ${r.budget.basis}`,
  ];
  if (r.bench) {
    const b = r.bench;
    lines.push(
      `  matmul     ${num(b.matmulGflops)} GFLOP/s at ${b.matmulSize}³ (best of ${Object.keys(b.variants).length} variants: ${b.matmulVariant})`,
      b.matmulAttempts.length > 1 ? `  attempts   ${b.matmulAttempts.map(num).join(', ')} GFLOP/s (measured again while below the ${MIN_GFLOPS} floor; the best counts)` : '',
      `  bandwidth  ${num(b.bandwidthGBs)} GB/s read+write (copyBufferToBuffer ${num(b.copyGBs)}, WGSL copy ${num(b.kernelGBs)})`,
      `  benchmark  took ${Math.round(b.ms)} ms`,
    );
  } else {
    lines.push(r.benchError ? `  benchmark  failed: ${r.benchError}` : '  benchmark  skipped');
  }
  return lines.filter(Boolean).join('\n');
}

/** The verdict for a terminal: the outcome, then its reasons with warnings marked so they stand out. */
export function formatVerdict(v: Verdict): string {
  const head = `verdict: ${v.text}${v.ok && v.slow ? ' (WARNING: measured slow, see below)' : ''}`;
  const lines = v.reasons.map((r) => (v.warnings.includes(r) ? `  ! WARNING: ${r}` : `  - ${r}`));
  return [head, ...lines].join('\n');
}

function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '?';
  if (n >= GiB) return `${num(n / GiB)} GiB`;
  if (n >= MiB) return `${num(n / MiB)} MiB`;
  if (n >= 1024) return `${num(n / 1024)} KiB`;
  return `${n} B`;
}

const num = (x: number) => String(Number(x.toPrecision(3)));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The default run: a char-level Shakespeare GPT, one layer per block, four in the model. */
export const DEFAULT_RUN: RunSpec = {
  name: 'shakespeare-char',
  config: { vocab: 65, dModel: 128, nHead: 4, nLayer: 1, seq: 64, batch: 16, hasEmbedding: false, hasHead: false },
  layersInModel: 4,
};
