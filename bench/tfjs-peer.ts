// The tfjs side of the side-by-side benchmark: @tensorflow/tfjs-backend-webgpu on the same Dawn
// adapter (lavapipe here) as our own WGSL kernels, in the same process. It gives a matmul timing
// and the same GPT training step (pre-LN GPT-2 block, AdamW with global-norm clipping) written
// with tf ops, so both sides do identical work.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { nodeGPU } from '../worker/node-gpu.js';
import { layout, type BlockConfig } from '../shared/engine/model.js';
import type { AdamW } from '../shared/engine/optimizer.js';

export interface TfjsInfo {
  backend: string;
  adapterInfo?: unknown;
}

export interface TfjsTrainer {
  /** One training step on a microbatch; resolves to the loss before the update. */
  step(tokens: Int32Array, targets: Int32Array): Promise<number>;
  dispose(): void;
}

let ready: Promise<TfjsInfo> | undefined;

/**
 * Node 20 has no `navigator`; Node ≥ 21 has one without `gpu`. tfjs-backend-webgpu only
 * registers itself at import time if `navigator.gpu` exists, so this must run before the import.
 */
function installNavigatorGpu(): void {
  const g = globalThis as { navigator?: { gpu?: unknown } };
  if (g.navigator?.gpu) return;
  const gpu = nodeGPU();
  if (g.navigator) {
    try {
      Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, enumerable: true });
    } catch {
      // A frozen navigator: replace it with one that inherits from it.
    }
    if (g.navigator.gpu) return;
    const nav = Object.create(g.navigator) as { gpu?: unknown };
    Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true, enumerable: true });
    Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
    return;
  }
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
}

/**
 * tfjs-core alone registers no gradient functions (the `@tensorflow/tfjs` umbrella package imports
 * `@tensorflow/tfjs-core/dist/register_all_gradients` for that), and the only copy of that module
 * is ES-module source with directory imports that Node's ESM loader refuses. So bundle it with
 * esbuild (a devDependency) to CommonJS and load that. The bundle carries its own copy of the ops
 * the gradients use, but tfjs-core keeps the engine, the kernel/gradient registries and the Tensor
 * class identity on globalThis precisely so that several copies interoperate: the gradients land
 * in the same registry the npm `@tensorflow/tfjs-core` reads.
 */
async function registerAllGradients(): Promise<void> {
  if (tf.getGradient(tf.Neg)) return; // already there (e.g. someone loaded @tensorflow/tfjs)
  const req = createRequire(import.meta.url);
  const entry = req.resolve('@tensorflow/tfjs-core/dist/register_all_gradients.js');
  const esbuild = await import('esbuild');
  const out = await esbuild.build({ entryPoints: [entry], bundle: true, format: 'cjs', platform: 'node', write: false, logLevel: 'silent' });
  await esbuild.stop(); // end esbuild's helper process so it does not linger beside the benchmark
  const dir = await mkdtemp(join(tmpdir(), 'tfjs-grads-'));
  try {
    const file = join(dir, 'register_all_gradients.cjs');
    await writeFile(file, out.outputFiles[0].contents);
    req(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (!tf.getGradient(tf.Neg)) throw new Error('tfjs: gradient registration did not take effect');
}

/** Sets up tfjs on the WebGPU backend (Dawn through `nodeGPU()`). Idempotent. */
export function initTfjs(): Promise<TfjsInfo> {
  ready ??= (async () => {
    installNavigatorGpu();
    // Dynamic import: the backend registers 'webgpu' as a side effect, and only if navigator.gpu
    // exists when its module body runs.
    await import('@tensorflow/tfjs-backend-webgpu');
    await registerAllGradients();
    if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs: the webgpu backend failed to initialise');
    await tf.ready();
    const be = webgpuBackend();
    // The backend's AdapterInfo keeps only vendor/architecture; Dawn's device.adapterInfo has more.
    const dev = be.device as GPUDevice & { adapterInfo?: GPUAdapterInfo };
    const info = dev.adapterInfo;
    return {
      backend: tf.getBackend(),
      adapterInfo: info ? { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description } : be.adapterInfo,
    };
  })();
  ready.catch(() => {
    ready = undefined; // let a later call retry instead of caching the failure
  });
  return ready;
}

function webgpuBackend(): WebGPUBackend {
  if (tf.getBackend() !== 'webgpu') throw new Error(`tfjs: backend is ${tf.getBackend()}, not webgpu`);
  return tf.backend() as WebGPUBackend;
}

/**
 * Waits until every GPU command tfjs has recorded so far has finished executing, without reading
 * any tensor back.
 *
 * Why this and not `data()`: `c.data()` copies all m·n floats into a staging buffer and maps it, so
 * a matmul timing would include a readback our own kernels' timing does not pay. A `data()` of a
 * 1-element slice would work too but adds a slice dispatch and a map. tfjs batches dispatches in an
 * open command encoder (it submits every WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE dispatches), so we first
 * force that encoder out (`submitQueue`), then await `queue.onSubmittedWorkDone()`, which resolves
 * only once the queue has drained all work submitted before it — i.e. the matmul has completed.
 * `ensureCommandEncoderReady` guarantees there is an encoder to finish (an empty command buffer is
 * harmless) and `endComputePassEncoder` closes tfjs's open compute pass, as tfjs itself does
 * before each of its own submits.
 */
async function gpuDone(): Promise<void> {
  const be = webgpuBackend();
  be.ensureCommandEncoderReady();
  be.endComputePassEncoder();
  be.submitQueue();
  await be.queue.onSubmittedWorkDone();
}

/**
 * Milliseconds per C[m,n] = A[m,k]·B[k,n] on tfjs-webgpu, one entry per rep. Each rep times
 * `inner` matmuls enqueued back to back and then one wait for GPU completion (see gpuDone),
 * divided by `inner`; `inner` = 1 (default) times one matmul end to end including the submit.
 */
export async function tfjsMatmulMs(m: number, n: number, k: number, reps: number, inner = 1): Promise<number[]> {
  await initTfjs();
  const before = tf.memory().numTensors;
  const a = tf.randomUniform([m, k], -1, 1, 'float32', 1);
  const b = tf.randomUniform([k, n], -1, 1, 'float32', 2);
  const out: number[] = [];
  try {
    // Warm-up: uploads A and B, compiles the pipeline, fills the buffer pool.
    for (let w = 0; w < 2; w++) {
      const c = tf.matMul(a, b);
      await gpuDone();
      c.dispose();
    }
    for (let r = 0; r < reps; r++) {
      const cs: tf.Tensor[] = [];
      const t0 = performance.now();
      for (let i = 0; i < inner; i++) cs.push(tf.matMul(a, b));
      await gpuDone();
      const t1 = performance.now();
      for (const c of cs) c.dispose();
      out.push((t1 - t0) / inner);
    }
  } finally {
    a.dispose();
    b.dispose();
  }
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`tfjsMatmulMs leaked ${after - before} tensors`);
  return out;
}

const GELU_C = Math.sqrt(2 / Math.PI);
const LN_EPS = 1e-5;
let trainerId = 0;

/** LayerNorm over the last axis, biased variance, eps 1e-5. */
function layerNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const mean = tf.mean(x, -1, true);
  const xc = tf.sub(x, mean);
  const variance = tf.mean(tf.square(xc), -1, true);
  return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, LN_EPS))), g), b);
}

/** gelu_tanh(h) = 0.5·h·(1 + tanh(√(2/π)·(h + 0.044715·h³))) */
function geluTanh(h: tf.Tensor): tf.Tensor {
  const inner = tf.mul(tf.add(h, tf.mul(tf.pow(h, 3), 0.044715)), GELU_C);
  return tf.mul(tf.mul(h, 0.5), tf.add(tf.tanh(inner), 1));
}

/**
 * A full-model GPT trainer (embedding + layers + head) in tfjs with the same architecture, init
 * (taken from `init`, the flat buffer of `initParams`) and AdamW as our WGSL runtime.
 */
export async function createTfjsTrainer(cfg: BlockConfig, init: Float32Array, opt: AdamW): Promise<TfjsTrainer> {
  await initTfjs();
  if (!cfg.hasEmbedding || !cfg.hasHead) throw new Error('createTfjsTrainer: needs a full model (hasEmbedding and hasHead)');
  const lay = layout(cfg);
  if (init.length < lay.total) throw new Error(`createTfjsTrainer: init has ${init.length} floats, layout needs ${lay.total}`);
  const { batch: B, seq: T, dModel: d, nHead: H, vocab: V } = cfg;
  const hd = d / H;
  const N = B * T;
  const first = cfg.firstLayer ?? 0;
  const id = trainerId++;

  const vars = new Map<string, tf.Variable>();
  const decayed: tf.Variable[] = [];
  for (const p of lay.params) {
    const t = tf.tensor(init.subarray(p.offset, p.offset + p.size), p.shape, 'float32');
    const v = tf.variable(t, true, `tfjsPeer${id}/${p.name}`);
    t.dispose(); // the variable holds its own reference to the data
    vars.set(p.name, v);
    // Decoupled weight decay on the 2-D params only (the layout marks exactly those as decay).
    if (p.decay) decayed.push(v);
  }
  const param = (name: string): tf.Variable => {
    const v = vars.get(name);
    if (!v) throw new Error(`createTfjsTrainer: no parameter ${name}`);
    return v;
  };
  const varList = [...vars.values()];
  // Additive causal mask: 0 where j ≤ i, −1e9 where j > i. Shape [T,T] broadcasts over [B,H,T,T].
  const mask = tf.tidy(() => {
    const i = tf.reshape(tf.range(0, T, 1, 'int32'), [T, 1]);
    const j = tf.reshape(tf.range(0, T, 1, 'int32'), [1, T]);
    return tf.mul(tf.cast(tf.greater(j, i), 'float32'), -1e9);
  });
  const scale = 1 / Math.sqrt(hd);
  const optimizer = tf.train.adam(opt.lr, opt.beta1, opt.beta2, opt.eps);
  let disposed = false;

  const lossFn = (tok: tf.Tensor1D, tgt: tf.Tensor1D): tf.Scalar => {
    // x = wte[tok] + wpe[pos]
    let x: tf.Tensor = tf.add(tf.reshape(tf.gather(param('wte'), tok), [B, T, d]), param('wpe'));
    x = tf.reshape(x, [N, d]);
    for (let l = first; l < first + cfg.nLayer; l++) {
      const pre = `h${l}.`;
      const a = layerNorm(x, param(pre + 'ln1.g'), param(pre + 'ln1.b'));
      const qkv = tf.add(tf.matMul(a, param(pre + 'attn.wqkv')), param(pre + 'attn.bqkv'));
      // Columns [0,d) are q, [d,2d) k, [2d,3d) v; head h takes columns h·hd … h·hd+hd−1 of each.
      const [q, k, v] = tf.split(qkv, 3, 1).map((t) => tf.transpose(tf.reshape(t, [B, T, H, hd]), [0, 2, 1, 3]));
      const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), scale), mask);
      const att = tf.softmax(scores, -1);
      const y = tf.reshape(tf.transpose(tf.matMul(att, v), [0, 2, 1, 3]), [N, d]);
      x = tf.add(x, tf.add(tf.matMul(y, param(pre + 'attn.wo')), param(pre + 'attn.bo')));
      const mIn = layerNorm(x, param(pre + 'ln2.g'), param(pre + 'ln2.b'));
      const h = tf.add(tf.matMul(mIn, param(pre + 'mlp.w1')), param(pre + 'mlp.b1'));
      x = tf.add(x, tf.add(tf.matMul(geluTanh(h), param(pre + 'mlp.w2')), param(pre + 'mlp.b2')));
    }
    const xf = layerNorm(x, param('lnf.g'), param('lnf.b'));
    const logits = tf.matMul(xf, param('head.w'));
    const logp = tf.logSoftmax(logits, -1);
    const picked = tf.sum(tf.mul(logp, tf.oneHot(tgt, V, 1, 0, 'float32')), -1);
    return tf.neg(tf.mean(picked)) as tf.Scalar;
  };

  return {
    async step(tokens: Int32Array, targets: Int32Array): Promise<number> {
      if (disposed) throw new Error('tfjs trainer: disposed');
      if (tokens.length !== N || targets.length !== N) {
        throw new Error(`tfjs trainer: expected ${N} tokens and targets, got ${tokens.length} and ${targets.length}`);
      }
      const tok = tf.tensor1d(tokens, 'int32');
      const tgt = tf.tensor1d(targets, 'int32');
      let lossT: tf.Scalar | undefined;
      try {
        const { value, grads } = tf.variableGrads(() => lossFn(tok, tgt), varList);
        lossT = value;
        tf.tidy(() => {
          // Global-norm clipping, all on the GPU: scale = clip / max(norm, clip) = min(1, clip/norm).
          // Pairwise adds, not tf.addN: tfjs-webgpu's AddN binds every input as a storage buffer
          // and lavapipe allows only 8 per stage, so addN over ~30 tensors fails validation.
          let parts = Object.values(grads).map((g) => tf.sum(tf.square(g)));
          while (parts.length > 1) {
            const next: tf.Tensor[] = [];
            for (let i = 0; i < parts.length; i += 2) next.push(i + 1 < parts.length ? tf.add(parts[i], parts[i + 1]) : parts[i]);
            parts = next;
          }
          const sq = parts[0];
          const s = tf.div(opt.clip, tf.maximum(tf.sqrt(sq), opt.clip));
          const clipped = Object.entries(grads).map(([name, g]) => ({ name, tensor: tf.mul(g, s) }));
          // Decoupled decay p ← p − lr·wd·p with the old p, then Adam: p − lr·(adam + wd·p_old).
          if (opt.weightDecay !== 0) {
            const keep = 1 - opt.lr * opt.weightDecay;
            for (const v of decayed) v.assign(tf.mul(v, keep));
          }
          optimizer.applyGradients(clipped);
        });
        tf.dispose(Object.values(grads));
        return (await lossT.data())[0];
      } finally {
        lossT?.dispose();
        tok.dispose();
        tgt.dispose();
      }
    },
    dispose(): void {
      if (disposed) return;
      disposed = true;
      optimizer.dispose();
      mask.dispose();
      for (const v of varList) v.dispose();
    },
  };
}
