// Self-check of the tfjs peer: `npx tsx bench/tfjs-peer.check.ts`.
// Prints tfjs-webgpu matmul GFLOP/s and a short training run; fails if the loss does not fall
// or tensors leak.
import * as tf from '@tensorflow/tfjs-core';
import { initParams, rng, type BlockConfig } from '../shared/model.js';
import { createTfjsTrainer, initTfjs, tfjsMatmulMs } from './tfjs-peer.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(`check failed: ${msg}`);
}

async function main(): Promise<void> {
  const info = await initTfjs();
  console.log(`tfjs backend: ${info.backend}, adapter: ${JSON.stringify(info.adapterInfo)}`);

  for (const s of [256, 512]) {
    const reps = s <= 256 ? 9 : 5;
    const ms = median(await tfjsMatmulMs(s, s, s, reps));
    console.log(`matmul ${s}³: median ${ms.toFixed(2)} ms, ${((2 * s * s * s) / (ms * 1e6)).toFixed(2)} GFLOP/s`);
  }

  const cfg: BlockConfig = { vocab: 65, dModel: 128, nHead: 4, nLayer: 2, seq: 64, batch: 16, hasEmbedding: true, hasHead: true };
  const n = cfg.batch * cfg.seq;
  const rand = rng(7);
  const tokens = new Int32Array(n);
  for (let i = 0; i < n; i++) tokens[i] = Math.floor(rand() * cfg.vocab);
  const targets = tokens.map((t) => (t + 1) % cfg.vocab);

  const baseTensors = tf.memory().numTensors;
  const trainer = await createTfjsTrainer(cfg, initParams(cfg, 1), {
    lr: 3e-3,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    weightDecay: 0.1,
    clip: 1,
  });
  const losses: number[] = [];
  const times: number[] = [];
  let tensorsAfterFirst = -1;
  for (let s = 0; s < 8; s++) {
    const t0 = performance.now();
    const loss = await trainer.step(tokens, targets);
    const dt = performance.now() - t0;
    losses.push(loss);
    times.push(dt);
    const live = tf.memory().numTensors;
    // Adam creates its moment slots on the first step; from then on the count must stay flat.
    if (s === 0) tensorsAfterFirst = live;
    console.log(`step ${s}: loss ${loss.toFixed(4)}  ${dt.toFixed(0)} ms  tensors ${live}`);
    assert(live === tensorsAfterFirst, `tensor count grew to ${live} at step ${s} (was ${tensorsAfterFirst})`);
  }
  // The first step includes shader compilation; the median is over the rest.
  console.log(`median ms/step (steps 1–7): ${median(times.slice(1)).toFixed(0)}`);
  trainer.dispose();
  assert(tf.memory().numTensors === baseTensors, `trainer.dispose left ${tf.memory().numTensors - baseTensors} tensors`);
  assert(Math.abs(losses[0] - Math.log(cfg.vocab)) < 0.3, `first loss ${losses[0]} is not ≈ ln ${cfg.vocab}`);
  assert(losses[losses.length - 1] < losses[0] - 0.1, `loss did not fall: ${losses[0]} → ${losses[losses.length - 1]}`);
  console.log('tfjs-peer check: ok');
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
