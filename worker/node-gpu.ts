// Node adapter for WebGPU: Google's Dawn from the npm `webgpu` package.
// On machines without a GPU Dawn runs on Mesa's lavapipe (Vulkan on the CPU).
import { create, globals } from 'webgpu';
import { Gpu } from '../kernels/context.js';
import { requestDevice } from '../shared/engine/gpu-detect.js';
import { pollDawnOnTimer } from './dawn-polling.js';

let gpu: GPU | undefined;

/** The process-wide GPU entry point, the Node equivalent of `navigator.gpu`. */
export function nodeGPU(): GPU {
  if (!gpu) {
    // The WebGPU globals (GPUBufferUsage, GPUShaderStage, ...) must exist before any kernel runs.
    Object.assign(globalThis, globals);
    // Dawn would otherwise spin a core while it waits for the GPU (dawn-polling.ts).
    pollDawnOnTimer();
    gpu = create([]) as GPU;
  }
  return gpu;
}

/** A ready Gpu on the first adapter, with the adapter's real limits. Throws a clear error without one. */
export async function openNodeGpu(): Promise<Gpu> {
  const adapter = await nodeGPU().requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter: install a GPU driver or Mesa lavapipe (bash scripts/setup.sh)');
  return new Gpu(await requestDevice(adapter));
}
