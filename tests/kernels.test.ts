// The kernel checks of tests/kernel-cases.ts on Dawn (npm `webgpu`), lavapipe on a GPU-less machine.
import { afterAll, beforeAll, describe, it } from 'vitest';
import type { Gpu } from '../kernels/context.js';
import { openNodeGpu } from '../worker/node-gpu.js';
import { kernelCases } from './kernel-cases.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await openNodeGpu();
});
afterAll(() => gpu?.device.destroy());

describe('WGSL kernels against the float64 reference (Node, Dawn)', () => {
  for (const c of kernelCases) it(c.name, () => c.run(gpu), 120_000);
});
