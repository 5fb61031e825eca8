// Dawn's wait for the GPU polled on a timer (worker/dawn-polling.ts): the event loop sleeps while
// lavapipe works, instead of spinning a core. Measured with the event loop's own utilization
// (the fraction of time it was not waiting in the OS), on the real adapter, against Dawn's own
// polling restored for the same work.
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../kernels/context.js';
import { isNativeCallback, pollDawnOnTimer } from '../worker/dawn-polling.js';
import { openNodeGpu } from '../worker/node-gpu.js';

// Each invocation spins a long dependent loop: a few hundred ms of lavapipe's time in all.
const BUSY = /* wgsl */ `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  var x = f32(id.x);
  for (var i = 0u; i < 60000u; i++) { x = fract(x * 1.0001 + 0.37); }
  out[id.x] = x;
}`;

const original = globalThis.setImmediate;
let gpu: Gpu;

beforeAll(async () => {
  gpu = await openNodeGpu();
});

afterAll(() => {
  gpu?.device.destroy();
});

/** The event loop's utilization while awaiting `work` (1: it never waited in the OS), and how long it took. */
async function utilization(work: () => Promise<unknown>): Promise<{ elu: number; ms: number }> {
  const t0 = performance.now();
  const before = performance.eventLoopUtilization();
  await work();
  return { elu: performance.eventLoopUtilization(before).utilization, ms: performance.now() - t0 };
}

describe('Dawn polling', () => {
  it('tells native callbacks from JavaScript ones, bound functions included', () => {
    expect(isNativeCallback(Math.max)).toBe(true);
    expect(isNativeCallback(() => 1)).toBe(false);
    expect(isNativeCallback(function named() {})).toBe(false);
    expect(isNativeCallback((() => 1).bind(null))).toBe(false);
    expect(isNativeCallback('setImmediate')).toBe(false);
  });

  it('leaves JavaScript immediates immediate and keeps setImmediate promisifiable; installing twice wraps once', async () => {
    pollDawnOnTimer();
    const wrapped = globalThis.setImmediate;
    pollDawnOnTimer();
    expect(globalThis.setImmediate).toBe(wrapped);
    expect(wrapped).not.toBe(original);
    const order: string[] = [];
    setTimeout(() => order.push('timer'), 0);
    setImmediate(() => order.push('immediate'));
    await new Promise((r) => setTimeout(r, 20));
    expect(order).toContain('immediate');
    expect(await promisify(setImmediate)('value')).toBe('value');
  });

  it('lets the event loop sleep while the GPU works, where Dawn alone spins it', async () => {
    const out = gpu.buffer(64 * 256, 'busy');
    const busy = gpu.dispatch('busy', BUSY, [gpu.view(out)], [256, 1, 1]);
    const run = () => {
      gpu.run([busy]);
      return gpu.read(gpu.view(out), 4);
    };
    await run(); // compile
    const timer = await utilization(run);
    const wrapped = globalThis.setImmediate;
    globalThis.setImmediate = original;
    let spun: { elu: number; ms: number };
    try {
      spun = await utilization(run);
    } finally {
      globalThis.setImmediate = wrapped;
    }
    // Long enough a wait to tell (a few ms would be noise either way).
    expect(Math.min(timer.ms, spun.ms)).toBeGreaterThan(40);
    expect(spun.elu).toBeGreaterThan(0.8);
    expect(timer.elu).toBeLessThan(0.4);
  });
});
