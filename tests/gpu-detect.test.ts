import { describe, expect, it } from 'vitest';
import { classify, detectGpu, requestDevice, estimateBudget } from '../shared/engine/gpu-detect.js';
import { layout } from '../shared/engine/model.js';
import { nodeGPU } from '../worker/node-gpu.js';
import { BENCH_ATTEMPTS, MIN_GFLOPS, bestOf } from '../shared/engine/gpu-bench.js';
import { formatReport, formatVerdict } from '../shared/engine/gpu-format.js';
import { type RunSpec, verdict } from '../shared/engine/gpu-verdict.js';
import { syntheticGpuReport as synthetic } from './gpu-report.js';

const host = { name: 'test host', totalMemoryBytes: 16 * 2 ** 30 };
const GiB = 2 ** 30;
const run: RunSpec = {
  name: 'tiny-shakespeare',
  config: { vocab: 65, dModel: 128, nHead: 4, nLayer: 1, seq: 64, batch: 16, hasEmbedding: false, hasHead: false },
  layersInModel: 4,
};
/** Bytes one layer of `run` needs, computed independently of verdict(). */
const perLayer = (() => {
  const c = run.config;
  const params = layout(c).count;
  const n = c.batch * c.seq;
  const d = c.dModel;
  const acts = n * (16 * d + c.nHead * c.seq + 4); // x, ln1, qkv, probs, attn, x1, ln2, h, gelu, stats
  return params * 16 + acts * 4;
})();

describe('detectGpu without WebGPU', () => {
  it('reports a missing GPU object instead of throwing', async () => {
    const r = await detectGpu(undefined, { ...host, runtime: 'browser' });
    expect(r.available).toBe(false);
    expect(r.message).toMatch(/WebGPU is missing/);
    expect(r.message).toMatch(/Chrome\/Edge 113\+/);
    expect(r.budget.bytes).toBe(0);
    expect(formatReport(r)).toMatch(/not available/);
  });

  it('reports an adapter request that resolves null', async () => {
    const gpu = { requestAdapter: async () => null } as unknown as GPU;
    const r = await detectGpu(gpu, { ...host, runtime: 'node' });
    expect(r.available).toBe(false);
    expect(r.message).toMatch(/no adapter/);
    expect(r.message).toMatch(/mesa-vulkan-drivers/);
  });

  it('reports an adapter request that throws', async () => {
    const gpu = {
      requestAdapter: async () => {
        throw new Error('boom');
      },
    } as unknown as GPU;
    const r = await detectGpu(gpu, host);
    expect(r.available).toBe(false);
    expect(r.message).toMatch(/boom/);
    // Without a runtime hint both kinds of advice are given.
    expect(r.message).toMatch(/in a browser/);
    expect(r.message).toMatch(/in Node/);
  });
});

describe('adapter classification and budget', () => {
  const info = { vendor: '', architecture: '', device: '', description: '', isFallbackAdapter: false };
  it('classifies adapters from their info', () => {
    expect(classify({ ...info, description: 'llvmpipe: Mesa 25' })).toBe('cpu');
    expect(classify({ ...info, vendor: 'google', description: 'SwiftShader Device' })).toBe('cpu');
    expect(classify({ ...info, vendor: 'nvidia', isFallbackAdapter: true })).toBe('cpu');
    expect(classify({ ...info, vendor: 'intel', architecture: 'gen-12lp' })).toBe('integrated');
    expect(classify({ ...info, vendor: 'intel', architecture: 'gen-12hp' })).toBe('discrete');
    expect(classify({ ...info, vendor: 'apple', architecture: 'metal-3' })).toBe('integrated');
    expect(classify({ ...info, vendor: 'nvidia', architecture: 'ampere' })).toBe('discrete');
    expect(classify(info)).toBe('unknown');
  });

  it('bounds the budget by host RAM, defaults and maxBufferSize', () => {
    expect(estimateBudget('cpu', { maxBufferSize: 4 * GiB }, 16 * GiB).bytes).toBe(8 * GiB);
    expect(estimateBudget('integrated', { maxBufferSize: 4 * GiB }, 16 * GiB).bytes).toBe(4 * GiB);
    expect(estimateBudget('discrete', { maxBufferSize: 4 * GiB }, 64 * GiB).bytes).toBe(2 * GiB);
    const tiny = estimateBudget('discrete', { maxBufferSize: 256 * 2 ** 20 });
    expect(tiny.bytes).toBe(5 * 256 * 2 ** 20);
    expect(tiny.basis).toMatch(/maxBufferSize/);
  });
});

describe('verdict', () => {
  it('fits all layers when the budget is ample', () => {
    const v = verdict(synthetic(), run);
    expect(v).toMatchObject({ ok: true, layers: 4, text: 'can hold 4 of 4 layers of run tiny-shakespeare' });
  });

  it('fits only as many layers as the budget holds', () => {
    const v = verdict(synthetic({ budget: { bytes: 3 * perLayer + 1000, basis: 'synthetic' } }), run);
    expect(v).toMatchObject({ ok: true, layers: 3, text: 'can hold 3 of 4 layers of run tiny-shakespeare' });
  });

  it('rejects when not even one layer fits', () => {
    const v = verdict(synthetic({ budget: { bytes: perLayer - 1, basis: 'synthetic' } }), run);
    expect(v.ok).toBe(false);
    expect(v.layers).toBe(0);
    expect(v.text).toMatch(/^rejected because one layer needs/);
  });

  it('rejects a binding size below the largest tensor', () => {
    const v = verdict(synthetic({ limits: { maxStorageBufferBindingSize: 1 << 20, maxBufferSize: 4 * GiB } }), run);
    expect(v.ok).toBe(false);
    // The largest tensor is the MLP hidden activation: 16·64 tokens × 512 floats × 4 B = 2 MiB.
    expect(v.text).toBe("rejected because the adapter's maxStorageBufferBindingSize (1 MiB) is below the largest tensor (2 MiB)");
  });

  it('accepts a slow measurement with a warning and the slow flag, not a rejection', () => {
    const bench = { ...synthetic().bench!, matmulGflops: 0.26, matmulAttempts: [0.21, 0.26, 0.24] };
    const v = verdict(synthetic({ bench }), run);
    expect(v).toMatchObject({ ok: true, slow: true, layers: 4, text: 'can hold 4 of 4 layers of run tiny-shakespeare' });
    const warning = 'measured 0.26 GFLOP/s (best of 3), below the 0.5 GFLOP/s floor: probably a busy machine; the swarm measures real throughput while training';
    expect(v.warnings).toEqual([warning]);
    expect(v.reasons).toContain(warning);
    const text = formatVerdict(v);
    expect(text.split('\n')[0]).toBe('verdict: can hold 4 of 4 layers of run tiny-shakespeare (WARNING: measured slow, see below)');
    expect(text).toContain(`  ! WARNING: ${warning}`);
  });

  it('says when a slow speed rests on a single measurement', () => {
    const bench = { ...synthetic().bench!, matmulGflops: 0.2, matmulAttempts: [0.2] };
    expect(verdict(synthetic({ bench }), run).warnings[0]).toMatch(/^measured 0\.2 GFLOP\/s \(a single measurement\), below/);
  });

  it('is not slow at or above the floor, nor without a benchmark', () => {
    const at = { ...synthetic().bench!, matmulGflops: MIN_GFLOPS, matmulAttempts: [MIN_GFLOPS] };
    for (const report of [synthetic(), synthetic({ bench: at }), synthetic({ bench: undefined })]) {
      const v = verdict(report, run);
      expect(v).toMatchObject({ ok: true, slow: false, warnings: [] });
      expect(formatVerdict(v)).not.toMatch(/WARNING/);
    }
  });

  it('still rejects on memory when the measurement is also slow', () => {
    const bench = { ...synthetic().bench!, matmulGflops: 0.1, matmulAttempts: [0.1, 0.1, 0.1] };
    const v = verdict(synthetic({ bench, budget: { bytes: perLayer - 1, basis: 'synthetic' } }), run);
    expect(v).toMatchObject({ ok: false, layers: 0, slow: true });
    expect(v.text).toMatch(/^rejected because one layer needs/);
    expect(formatVerdict(v).split('\n')[0]).toBe(`verdict: ${v.text}`);
  });

  it('rejects when there is no adapter', async () => {
    const v = verdict(await detectGpu(undefined, host), run);
    expect(v).toMatchObject({ ok: false, layers: 0, text: 'rejected because no WebGPU adapter' });
    expect(v.reasons[0]).toMatch(/WebGPU is missing/);
  });

  it('caps layers by maxBufferSize for the flat parameter buffer', () => {
    const params = layout(run.config).count;
    const v = verdict(synthetic({ limits: { maxStorageBufferBindingSize: 2 * GiB, maxBufferSize: 2 * params * 4 } }), run);
    expect(v.layers).toBe(2);
  });

  it('counts the embedding and head of end stages', () => {
    const ends: RunSpec = { ...run, config: { ...run.config, hasEmbedding: true, hasHead: true } };
    const budget = 4 * perLayer + 1000;
    expect(verdict(synthetic({ budget: { bytes: budget, basis: 'synthetic' } }), run).layers).toBe(4);
    expect(verdict(synthetic({ budget: { bytes: budget, basis: 'synthetic' } }), ends).layers).toBe(3);
  });
});

describe('bestOf', () => {
  /** A measure that returns `values` in turn, and a log of measures and pauses in the order they ran. */
  function scripted(values: number[]) {
    const log: string[] = [];
    let i = 0;
    const measure = async () => {
      log.push(`measure ${values[i]}`);
      return { gflops: values[i++], label: `attempt ${i}` };
    };
    const pause = async () => {
      log.push('pause');
    };
    return { log, measure, retry: { attempts: 3, score: (m: { gflops: number }) => m.gflops, enough: 0.5, pause } };
  }

  it('measures once when the first result is good enough', async () => {
    const s = scripted([4.7, 0.1, 0.1]);
    const r = await bestOf(s.measure, s.retry);
    expect(r).toEqual({ best: { gflops: 4.7, label: 'attempt 1' }, scores: [4.7] });
    expect(s.log).toEqual(['measure 4.7']);
  });

  it('retries while below, pauses only between attempts and keeps the best', async () => {
    const s = scripted([0.2, 0.35, 0.26, 9]);
    const r = await bestOf(s.measure, s.retry);
    expect(r).toEqual({ best: { gflops: 0.35, label: 'attempt 2' }, scores: [0.2, 0.35, 0.26] });
    expect(s.log).toEqual(['measure 0.2', 'pause', 'measure 0.35', 'pause', 'measure 0.26']);
  });

  it('stops as soon as a retry reaches the floor', async () => {
    const s = scripted([0.26, 0.8, 0.1]);
    const r = await bestOf(s.measure, s.retry);
    expect(r).toEqual({ best: { gflops: 0.8, label: 'attempt 2' }, scores: [0.26, 0.8] });
    expect(s.log).toEqual(['measure 0.26', 'pause', 'measure 0.8']);
  });

  it('measures at least once and does not retry errors', async () => {
    const s = scripted([0.1, 0.2]);
    expect((await bestOf(s.measure, { ...s.retry, attempts: 0 })).scores).toEqual([0.1]);
    let calls = 0;
    const failing = async (): Promise<{ gflops: number }> => {
      calls++;
      throw new Error('device lost');
    };
    await expect(bestOf(failing, s.retry)).rejects.toThrow('device lost');
    expect(calls).toBe(1);
  });
});

describe('detectGpu on this machine (Dawn)', () => {
  it('detects the adapter, its limits and measures it', async () => {
    const r = await detectGpu(nodeGPU(), { ...host, runtime: 'node' }, { benchSize: 128 });
    expect(r.available).toBe(true);
    expect(r.adapter!.description || r.adapter!.vendor).not.toBe('');
    expect(r.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(r.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
    expect(r.features.all.length).toBeGreaterThan(0);
    expect(r.benchError).toBeUndefined();
    expect(r.bench!.matmulGflops).toBeGreaterThan(0);
    // The best measurement counts, and retries happen only below the floor.
    const tries = r.bench!.matmulAttempts;
    expect(r.bench!.matmulGflops).toBe(Math.max(...tries));
    expect(tries.length).toBeGreaterThanOrEqual(1);
    expect(tries.length).toBeLessThanOrEqual(BENCH_ATTEMPTS);
    expect(tries.slice(0, -1).every((g) => g < MIN_GFLOPS)).toBe(true);
    expect(r.bench!.bandwidthGBs).toBeGreaterThan(0);
    expect(r.budget.bytes).toBeGreaterThan(0);
    expect(formatReport(r)).toMatch(/GFLOP\/s/);
  }, 120_000);

  it('creates devices with the adapter limits, not the defaults', async () => {
    const adapter = (await nodeGPU().requestAdapter())!;
    const want = { buffer: adapter.limits.maxBufferSize, binding: adapter.limits.maxStorageBufferBindingSize };
    const device = await requestDevice(adapter);
    try {
      expect(device.limits.maxBufferSize).toBe(want.buffer);
      expect(device.limits.maxStorageBufferBindingSize).toBe(want.binding);
      for (const f of ['shader-f16', 'timestamp-query', 'subgroups']) {
        expect(device.features.has(f)).toBe(adapter.features.has(f as GPUFeatureName));
      }
    } finally {
      device.destroy();
    }
  }, 10_000);
});
