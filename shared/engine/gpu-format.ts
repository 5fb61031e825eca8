// GPU detection's reports for a terminal (`npm run gpu`, a worker's start-up) and the byte and
// number formatting its reasons share.
import { bytes, num } from '../base/sizes.js';
import { MIN_GFLOPS } from './gpu-bench.js';
import type { GpuReport } from './gpu-detect.js';
import type { Verdict } from './gpu-verdict.js';

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
