// `npm run gpu [-- --json --no-bench]`: what this machine's GPU can do for the swarm.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { readFlags } from '../node/flags.js';
import { detectGpu } from '../shared/engine/gpu-detect.js';
import { nodeGPU } from '../worker/node-gpu.js';
import { formatReport, formatVerdict } from '../shared/engine/gpu-format.js';
import { DEFAULT_RUN, verdict } from '../shared/engine/gpu-verdict.js';

const USAGE = 'npm run gpu [-- --json --no-bench]';

async function main(flags: { json: boolean; 'no-bench': boolean }): Promise<void> {
  let gpu: GPU | undefined;
  try {
    gpu = nodeGPU();
  } catch (e) {
    // A missing or broken Dawn binary is a missing WebGPU, not a crash.
    console.error(`loading Dawn failed: ${e instanceof Error ? e.message : String(e)}`);
  }
  const host = { name: `node ${process.version} ${os.platform()} ${os.arch()}`, totalMemoryBytes: os.totalmem(), runtime: 'node' as const };
  const report = await detectGpu(gpu, host, { benchmark: !flags['no-bench'] });
  const v = verdict(report, DEFAULT_RUN);
  if (flags.json) {
    console.log(JSON.stringify({ report, verdict: v }, null, 2));
  } else {
    console.log(formatReport(report));
    console.log(`\n${formatVerdict(v)}`);
  }
}

// Dawn keeps the event loop alive, so leave explicitly.
const { values } = readFlags('npm run gpu', USAGE, () =>
  parseArgs({ options: { json: { type: 'boolean', default: false }, 'no-bench': { type: 'boolean', default: false } }, strict: true }),
);
main(values).then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
