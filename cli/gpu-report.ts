// `npx tsx cli/gpu-report.ts [--json] [--no-bench]`: what this machine's GPU can do for the swarm.
import os from 'node:os';
import { detectGpu } from '../shared/engine/gpu-detect.js';
import { nodeGPU } from '../worker/node-gpu.js';
import { formatReport, formatVerdict } from '../shared/engine/gpu-format.js';
import { DEFAULT_RUN, verdict } from '../shared/engine/gpu-verdict.js';

async function main(args: string[]): Promise<void> {
  const unknown = args.filter((a) => a !== '--json' && a !== '--no-bench');
  if (unknown.length) throw new Error(`unknown argument(s) ${unknown.join(' ')}; usage: gpu-report [--json] [--no-bench]`);
  let gpu: GPU | undefined;
  try {
    gpu = nodeGPU();
  } catch (e) {
    // A missing or broken Dawn binary is a missing WebGPU, not a crash.
    console.error(`loading Dawn failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  const host = { name: `node ${process.version} ${os.platform()} ${os.arch()}`, totalMemoryBytes: os.totalmem(), runtime: 'node' as const };
  const report = await detectGpu(gpu, host, { benchmark: !args.includes('--no-bench') });
  const v = verdict(report, DEFAULT_RUN);
  if (args.includes('--json')) {
    console.log(JSON.stringify({ report, verdict: v }, null, 2));
  } else {
    console.log(formatReport(report));
    console.log(`\n${formatVerdict(v)}`);
  }
}

// Dawn keeps the event loop alive, so leave explicitly.
main(process.argv.slice(2)).then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
