// A GPU report made by hand, as detectGpu would write it for a comfortable discrete adapter (2 GiB
// budget and binding size, measured fast), for tests of what a report allows; `over` changes parts.
import type { GpuReport } from '../shared/engine/gpu-detect.js';

const GiB = 2 ** 30;

export function syntheticGpuReport(over: Partial<GpuReport> = {}): GpuReport {
  return {
    available: true,
    message: 'WebGPU adapter: synthetic',
    host: 'test host',
    adapter: { vendor: 'nvidia', architecture: 'ampere', device: '', description: '', isFallbackAdapter: false, kind: 'discrete' },
    features: { shaderF16: true, timestampQuery: true, subgroups: true, all: ['shader-f16', 'subgroups', 'timestamp-query'] },
    limits: { maxStorageBufferBindingSize: 2 * GiB, maxBufferSize: 4 * GiB },
    budget: { bytes: 2 * GiB, basis: 'synthetic' },
    bench: { matmulSize: 256, matmulGflops: 100, matmulVariant: 'x', matmulAttempts: [100], variants: { x: 100 }, copyGBs: 100, kernelGBs: 90, bandwidthGBs: 100, ms: 1 },
    ...over,
  };
}
