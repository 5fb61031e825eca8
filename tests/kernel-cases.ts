// Kernel checks as plain async functions of a Gpu, so the very same checks run under Vitest in
// Node (Dawn + lavapipe) and in headless Chromium (SwiftShader) through e2e/kernels-browser.
// Every GPU result is compared with the float64 reference of kernels/reference.ts.
import type { Gpu, View } from '../kernels/context.js';
import { DEFAULT_VARIANT, type MatmulShape, VARIANTS, matmul, variantFits, variantKey } from '../kernels/matmul.js';
import * as k from '../kernels/ops.js';
import * as r from '../kernels/reference.js';
import { BlockRuntime } from '../shared/engine/block-runtime.js';
import { type BlockConfig, initParams } from '../shared/engine/model.js';
import type { AdamW } from '../shared/engine/optimizer.js';
import { charCorpus, sampleBatch } from '../shared/engine/data.js';
import { ReferenceBlock } from '../shared/engine/reference-block.js';
import { frozenTable, orthonormalBasis } from '../shared/engine/subspace.js';
import { rng } from '../shared/base/random.js';

/** The opening of tinyshakespeare (public domain), small enough to ship inside the browser bundle. */
const SHAKESPEARE = `First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.

First Citizen:
First, you know Caius Marcius is chief enemy to the people.

All:
We know't, we know't.

First Citizen:
Let us kill him, and we'll have corn at our own price.
Is't a verdict?

All:
No more talking on't; let it be done: away, away!
`;

export interface KernelCase {
  name: string;
  run(gpu: Gpu): Promise<void>;
}

/** |gpu − ref| ≤ atol + rtol·|ref| everywhere, else an error naming the worst element. */
export function expectClose(label: string, got: ArrayLike<number>, want: ArrayLike<number>, rtol = 1e-3, atol = 1e-5): void {
  if (got.length < want.length) throw new Error(`${label}: got ${got.length} values, want ${want.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    const excess = err - (atol + rtol * Math.abs(want[i]));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) throw new Error(`${label}: element ${worst} is ${got[worst]}, reference ${want[worst]} (rtol ${rtol}, atol ${atol})`);
}

function randn(n: number, seed: number, scale = 1): Float64Array {
  const rand = rng(seed);
  return Float64Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
}

function randInts(n: number, max: number, seed: number): Uint32Array {
  const rand = rng(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(rand() * max));
}

const up = (gpu: Gpu, a: ArrayLike<number>, ints = false): View => gpu.upload(ints ? Uint32Array.from(a) : Float32Array.from(a));
const zeros = (gpu: Gpu, n: number): View => gpu.view(gpu.buffer(n), 0, n);

async function run(gpu: Gpu, ds: (ReturnType<typeof k.add> | ReturnType<typeof k.add>[])[]) {
  gpu.run(ds.flat());
  await gpu.finish();
}

const MATMUL_SHAPES = [
  [5, 7, 3],
  [64, 48, 32],
  [33, 70, 19],
  [36, 44, 28],
  [130, 9, 66],
];

const matmulCases: KernelCase[] = VARIANTS.map((variant) => ({
  name: `matmul ${variantKey(variant)}: NN/NT/TN, bias, accumulate, odd shapes`,
  async run(gpu) {
    let checked = 0;
    for (const [M, N, K] of MATMUL_SHAPES) {
      for (const [transA, transB] of [
        [false, false],
        [false, true],
        [true, false],
      ]) {
        const s = { M, N, K, transA, transB };
        if (!variantFits(variant, s)) continue;
        const a = randn(M * K, M + 3 * N + K);
        const b = randn(K * N, 7 * M + N);
        const bias = randn(N, K);
        const c0 = randn(M * N, 11);
        const want = r.matmul(a, b, M, N, K, transA, transB, bias);
        const c = up(gpu, c0);
        await run(gpu, [matmul(gpu, { ...s, a: up(gpu, a), b: up(gpu, b), c, bias: up(gpu, bias), variant })]);
        expectClose(`matmul ${M}x${N}x${K} tA=${transA} tB=${transB}`, await gpu.read(c), want, 1e-4, 1e-5 * K);
        // Accumulate: C += A·B on top of what C held.
        const acc = up(gpu, c0);
        await run(gpu, [matmul(gpu, { ...s, a: up(gpu, a), b: up(gpu, b), c: acc, accumulate: true, variant })]);
        const noBias = r.matmul(a, b, M, N, K, transA, transB);
        expectClose(
          'matmul accumulate',
          await gpu.read(acc),
          noBias.map((v, i) => v + c0[i]),
          1e-4,
          1e-5 * K,
        );
        checked++;
      }
    }
    if (checked === 0) throw new Error('no shape fits this variant: the case checks nothing');
  },
}));

const opCases: KernelCase[] = [
  {
    name: 'embedding forward and gradient scatter (repeated tokens, accumulate)',
    async run(gpu) {
      const [B, T, d, V] = [3, 7, 12, 11];
      const N = B * T;
      const wte = randn(V * d, 1);
      const wpe = randn(T * d, 2);
      const tokens = randInts(N, 4, 3); // only 4 of 11 ids: many repeats, some rows untouched
      const x = zeros(gpu, N * d);
      const tok = up(gpu, tokens, true);
      await run(gpu, [k.embeddingForward(gpu, { wte: up(gpu, wte), wpe: up(gpu, wpe), tokens: tok, x, N, T, d })]);
      expectClose('embedding fwd', await gpu.read(x), r.embeddingForward(wte, wpe, tokens, T, d), 1e-6, 1e-7);
      const dx = randn(N * d, 4);
      const prior = randn(V * d, 5);
      const dwte = up(gpu, prior);
      const dwpe = zeros(gpu, T * d);
      await run(gpu, [k.embeddingBackward(gpu, { dx: up(gpu, dx), tokens: tok, dwte, dwpe, N, T, d, V })]);
      const want = r.embeddingBackward(dx, tokens, V, T, d);
      expectClose(
        'embedding dwte (accumulated)',
        await gpu.read(dwte),
        want.dwte.map((v, i) => v + prior[i]),
        1e-5,
        1e-6,
      );
      expectClose('embedding dwpe', await gpu.read(dwpe), want.dwpe, 1e-5, 1e-6);
    },
  },
  {
    name: 'layer norm forward, backward with residual, parameter gradients',
    async run(gpu) {
      for (const [N, d] of [
        [13, 20],
        [4, 130],
      ]) {
        const x = randn(N * d, N).map((v, i) => v * 3 + (i % 5));
        const g = randn(d, 2).map((v) => 1 + v * 0.5);
        const b = randn(d, 3);
        const want = r.layerNormForward(x, g, b, N, d);
        const [y, mean, rstd] = [zeros(gpu, N * d), zeros(gpu, N), zeros(gpu, N)];
        const xv = up(gpu, x);
        const gv = up(gpu, g);
        await run(gpu, [k.layerNormForward(gpu, { x: xv, g: gv, b: up(gpu, b), y, mean, rstd, N, d })]);
        expectClose('ln y', await gpu.read(y), want.y, 1e-4, 1e-5);
        expectClose('ln mean', await gpu.read(mean), want.mean, 1e-5, 1e-6);
        expectClose('ln rstd', await gpu.read(rstd), want.rstd, 1e-4, 1e-6);
        const dy = randn(N * d, 9);
        const res = randn(N * d, 10);
        const bw = r.layerNormBackward(dy, x, g, want.mean, want.rstd, N, d);
        const dx = zeros(gpu, N * d);
        const [dg, db] = [zeros(gpu, d), zeros(gpu, d)];
        const dyv = up(gpu, dy);
        await run(gpu, [
          k.layerNormBackward(gpu, { dy: dyv, x: xv, g: gv, mean, rstd, residual: up(gpu, res), dx, N, d }),
          k.layerNormParamGrads(gpu, { dy: dyv, x: xv, mean, rstd, dg, db, N, d }),
        ]);
        expectClose(
          'ln dx + residual',
          await gpu.read(dx),
          bw.dx.map((v, i) => v + res[i]),
          1e-3,
          1e-5,
        );
        expectClose('ln dgain', await gpu.read(dg), bw.dg, 1e-4, 1e-5);
        expectClose('ln dbias', await gpu.read(db), bw.db, 1e-4, 1e-5);
      }
    },
  },
  {
    name: 'GELU forward/backward, residual add, bias gradient (column sums)',
    async run(gpu) {
      const n = 1000;
      const x = randn(n, 1, 6); // covers the tails where tanh saturates
      const dy = randn(n, 2);
      const [y, dx, sum] = [zeros(gpu, n), zeros(gpu, n), zeros(gpu, n)];
      const xv = up(gpu, x);
      await run(gpu, [k.gelu(gpu, { x: xv, y, n }), k.geluBackward(gpu, { dy: up(gpu, dy), x: xv, dx, n }), k.add(gpu, { a: xv, b: up(gpu, dy), out: sum, n })]);
      expectClose('gelu', await gpu.read(y), r.gelu(x), 1e-5, 1e-6);
      expectClose('gelu bwd', await gpu.read(dx), r.geluBackward(dy, x), 1e-4, 1e-6);
      expectClose('add', await gpu.read(sum), r.add(x, dy), 1e-6, 1e-7);
      const [N, C] = [37, 27];
      const m = randn(N * C, 3);
      const prior = randn(C, 4);
      const db = up(gpu, prior);
      await run(gpu, [k.colsum(gpu, { dy: up(gpu, m), db, N, C })]);
      expectClose(
        'colsum',
        await gpu.read(db),
        r.colsum(m, N, C).map((v, i) => v + prior[i]),
        1e-5,
        1e-5,
      );
    },
  },
  {
    name: 'causal attention forward and backward as batched strided matmuls (odd T, 3 heads, scalar and vec4)',
    async run(gpu) {
      const vec4 = VARIANTS.find((v) => v.kind === 'vec4' && v.strided)!;
      const picks = [undefined, (s: MatmulShape) => (variantFits(vec4, s) ? vec4 : DEFAULT_VARIANT)];
      for (const [B, T, H, d] of [
        [2, 9, 3, 12],
        [1, 17, 2, 8],
        [2, 16, 2, 16],
      ]) {
        for (const pick of picks) {
          const N = B * T;
          const label = `attention B${B} T${T} H${H} d${d}${pick ? ' vec4' : ''}`;
          const qkv = randn(N * 3 * d, T + d, 2);
          const want = r.attentionForward(qkv, B, T, H, d);
          const [probs, out] = [zeros(gpu, B * H * T * T), zeros(gpu, N * d)];
          const qv = up(gpu, qkv);
          await run(gpu, [k.attentionForward(gpu, { B, T, H, d, qkv: qv, probs, out }, pick)]);
          expectClose(`${label} probs`, await gpu.read(probs), want.probs, 1e-4, 1e-6);
          expectClose(`${label} out`, await gpu.read(out), want.out, 1e-4, 1e-5);
          const dout = randn(N * d, 5);
          const [dS, dqkv] = [zeros(gpu, B * H * T * T), zeros(gpu, N * 3 * d)];
          await run(gpu, [k.attentionBackward(gpu, { B, T, H, d, qkv: qv, probs, dout: up(gpu, dout), dscores: dS, dqkv }, pick)]);
          expectClose(`${label} dqkv`, await gpu.read(dqkv), r.attentionBackward(dout, qkv, want.probs, B, T, H, d), 1e-3, 1e-5);
        }
      }
    },
  },
  {
    name: 'fused softmax + cross-entropy with mean loss reduction',
    async run(gpu) {
      const [N, V] = [300, 13];
      const logits = randn(N * V, 1, 8);
      const targets = randInts(N, V, 2);
      const want = r.crossEntropy(logits, targets, N, V);
      const z = up(gpu, logits);
      const [losses, loss] = [zeros(gpu, N), zeros(gpu, 1)];
      await run(gpu, [k.crossEntropy(gpu, { logits: z, targets: up(gpu, targets, true), losses, N, V }), k.reduceSum(gpu, { x: losses, out: loss, n: N, scale: 1 / N })]);
      expectClose('loss', await gpu.read(loss), [want.loss], 1e-5, 1e-6);
      expectClose('dlogits', await gpu.read(z), want.dlogits, 1e-4, 1e-7);
    },
  },
  {
    name: 'AdamW with global-norm clipping (clip active and inactive), decay boundary',
    async run(gpu) {
      const n = 1000;
      const decayEnd = 640;
      for (const clip of [0.5, 1e6]) {
        const o: AdamW = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip };
        const p = randn(n, 1);
        const m = new Float64Array(n);
        const v = new Float64Array(n);
        const [pv, mv, vv, sumsq] = [up(gpu, p), zeros(gpu, n), zeros(gpu, n), zeros(gpu, 1)];
        const hyper = gpu.uniform(new Uint32Array(12));
        for (let t = 1; t <= 3; t++) {
          const g = randn(n, 10 + t, 0.1);
          const gv = up(gpu, g);
          gpu.device.queue.writeBuffer(hyper, 0, k.adamwWords({ ...o, t }, n, decayEnd, k.adamwStride(n)));
          await run(gpu, [k.reduceSum(gpu, { x: gv, out: sumsq, n, squares: true }), k.adamw(gpu, { p: pv, g: gv, m: mv, v: vv, sumsq, hyper, n })]);
          r.adamwStep(p, g, m, v, t, o, decayEnd);
        }
        expectClose(`adamw params (clip ${clip})`, await gpu.read(pv), p, 1e-5, 1e-6);
        expectClose(`adamw m (clip ${clip})`, await gpu.read(mv), m, 1e-4, 1e-7);
      }
    },
  },
  {
    name: 'subspace encode/decode/project: exact round trip inside span(U)',
    async run(gpu) {
      const [N, d, k_, V] = [9, 20, 6, 7];
      const u = orthonormalBasis(d, k_, 42);
      const F = frozenTable(V, d, 42);
      const tokens = randInts(N, V, 3);
      const w = randn(N * d, 4);
      const uv = gpu.upload(u);
      const wv = up(gpu, w);
      await run(gpu, [k.subspaceProject(gpu, { w: wv, u: uv, tmp: zeros(gpu, N * k_), R: N, d, k: k_ })]);
      const proj = await gpu.read(wv);
      expectClose('project', proj, r.subspaceProject(w, r.f64(u), N, d, k_), 1e-4, 1e-6);
      // x = F[tok] + (a vector in span U) must survive encode → decode.
      const f = { table: r.f64(F), tokens };
      const x = r.f64(proj).map((v, i) => v + F[tokens[Math.floor(i / d)] * d + (i % d)]);
      const [c, back] = [zeros(gpu, N * k_), zeros(gpu, N * d)];
      const tabs = { table: gpu.upload(F), tokens: up(gpu, tokens, true) };
      await run(gpu, [k.subspaceEncode(gpu, { x: up(gpu, x), u: uv, c, N, d, k: k_, ...tabs }), k.subspaceDecode(gpu, { c, u: uv, x: back, N, d, k: k_, ...tabs })]);
      expectClose('encode', await gpu.read(c), r.subspaceEncode(x, r.f64(u), N, d, k_, f), 1e-4, 1e-6);
      expectClose('decode(encode(x)) = x', await gpu.read(back), x, 1e-4, 1e-5);
      // Gradients travel as plain Uᵀg.
      const g = randn(N * d, 8);
      const cg = zeros(gpu, N * k_);
      await run(gpu, [k.subspaceEncode(gpu, { x: up(gpu, g), u: uv, c: cg, N, d, k: k_ })]);
      expectClose('encode gradient', await gpu.read(cg), r.subspaceEncode(g, r.f64(u), N, d, k_), 1e-4, 1e-6);
    },
  },
];

const SMALL: BlockConfig = { vocab: 13, dModel: 16, nHead: 2, nLayer: 2, seq: 7, batch: 3, hasEmbedding: true, hasHead: true };

function batchFor(cfg: BlockConfig, seed: number): { tokens: Uint32Array; targets: Uint32Array } {
  const tokens = randInts(cfg.batch * cfg.seq, cfg.vocab, seed);
  // A learnable rule: the next token is the current one plus one.
  return { tokens, targets: tokens.map((t) => (t + 1) % cfg.vocab) };
}

const blockCases: KernelCase[] = [
  {
    name: 'block runtime gradients match the float64 reference (full model and a middle stage)',
    async run(gpu) {
      const full = SMALL;
      const init = initParams(full, 7);
      const rt = await BlockRuntime.create(gpu, full, { init });
      const ref = new ReferenceBlock(full, init);
      const b = batchFor(full, 1);
      const { loss } = await rt.forward(b);
      const want = ref.forward(b).loss!;
      expectClose('loss', [loss!], [want], 1e-5);
      await rt.backward();
      ref.backward();
      expectClose('all weight gradients', await rt.readGrads(), ref.grads, 2e-3, 2e-6);
      rt.destroy();

      const mid: BlockConfig = { ...SMALL, hasEmbedding: false, hasHead: false, nLayer: 1, firstLayer: 1, dModel: 12, nHead: 3, seq: 5 };
      const mInit = initParams(mid, 3);
      // Autotuned: the block is rebuilt with measured variants and must still be exact.
      const mrt = await BlockRuntime.create(gpu, mid, { init: mInit, autotune: true });
      const mref = new ReferenceBlock(mid, mInit);
      const x = Float32Array.from(randn(mid.batch * mid.seq * mid.dModel, 5));
      const out = await mrt.forward({ x });
      expectClose('boundary activation', out.x!, mref.forward({ x }).x!, 1e-4, 1e-5);
      const g = Float32Array.from(randn(x.length, 6, 0.1));
      expectClose('input gradient', (await mrt.backward(g))!, mref.backward(g)!, 1e-3, 1e-6);
      expectClose('middle-stage weight gradients', await mrt.readGrads(), mref.grads, 2e-3, 2e-6);
      mrt.destroy();
    },
  },
  {
    name: 'subspace blocks (first, middle, last stage) with two activation slots match the float64 reference over 3 steps',
    async run(gpu) {
      const base: BlockConfig = { vocab: 13, dModel: 12, nHead: 3, nLayer: 1, seq: 5, batch: 2, hasEmbedding: false, hasHead: false, subspace: { k: 6, seed: 9 }, modelLayers: 3 };
      const stages: BlockConfig[] = [
        { ...base, hasEmbedding: true, firstLayer: 0 },
        { ...base, firstLayer: 1 },
        { ...base, hasHead: true, firstLayer: 2 },
      ];
      const N = base.batch * base.seq;
      const k_ = base.subspace!.k;
      for (const [si, cfg] of stages.entries()) {
        const init = initParams(cfg, 21 + si);
        const rt = await BlockRuntime.create(gpu, cfg, { init, slots: 2 });
        const ref = new ReferenceBlock(cfg, init);
        for (let step = 0; step < 3; step++) {
          const mbs = [0, 1].map((m) => {
            const tokens = randInts(N, cfg.vocab, 100 * si + 10 * step + m);
            return {
              tokens,
              targets: tokens.map((t) => (t + 2) % cfg.vocab),
              x: Float32Array.from(randn(N * k_, 7 + step * 2 + m, 0.05)),
              g: Float32Array.from(randn(N * k_, 50 + step * 2 + m, 0.01)),
            };
          });
          // GPU: both forwards in flight, backwards in reverse order. Reference: one at a time.
          const outs = [];
          for (const [m, b] of mbs.entries()) outs.push(await rt.forward(b, m));
          const grads: (Float32Array | undefined)[] = [];
          for (const m of [1, 0]) grads[m] = await rt.backward(cfg.hasHead ? undefined : mbs[m].g, m);
          for (const [m, b] of mbs.entries()) {
            const want = ref.forward(b);
            const label = `stage ${si} step ${step} microbatch ${m}`;
            if (cfg.hasHead) expectClose(`${label} loss`, [outs[m].loss!], [want.loss!], 1e-5);
            else expectClose(`${label} output coefficients`, outs[m].x!, want.x!, 1e-3, 1e-5);
            const wantGrad = ref.backward(cfg.hasHead ? undefined : b.g);
            if (!cfg.hasEmbedding) expectClose(`${label} input-gradient coefficients`, grads[m]!, wantGrad!, 2e-3, 1e-6);
          }
          rt.step();
          ref.step();
        }
        const params = await rt.readParams();
        expectClose(`stage ${si} parameters after 3 steps`, params, ref.params, 2e-3, 2e-5);
        rt.destroy();
      }
    },
  },
  {
    name: 'training a 2-layer char model for 20 steps: GPU loss within 1% of the float64 reference at every step, and falling',
    async run(gpu) {
      const corpus = charCorpus(SHAKESPEARE, 0.2);
      const cfg: BlockConfig = { vocab: corpus.vocab.length, dModel: 16, nHead: 2, nLayer: 2, seq: 16, batch: 4, hasEmbedding: true, hasHead: true };
      const init = initParams(cfg, 11);
      const opt: AdamW = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1 };
      const rt = await BlockRuntime.create(gpu, cfg, { init, optimizer: opt });
      const ref = new ReferenceBlock(cfg, init, opt);
      const losses: number[] = [];
      for (let step = 0; step < 20; step++) {
        const b = sampleBatch(corpus.train, cfg.batch, cfg.seq, 1, step);
        const got = (await rt.forward(b)).loss!;
        const want = ref.forward(b).loss!;
        if (!(Math.abs(got - want) <= 0.01 * Math.abs(want))) throw new Error(`step ${step}: GPU loss ${got} vs reference ${want}`);
        losses.push(got);
        await rt.backward();
        ref.backward();
        rt.step();
        ref.step();
      }
      const head = losses.slice(0, 3).reduce((a, b) => a + b) / 3;
      const tail = losses.slice(-3).reduce((a, b) => a + b) / 3;
      if (!(tail < 0.85 * head)) throw new Error(`loss did not fall: first steps ${head.toFixed(4)}, last ${tail.toFixed(4)}`);
      rt.destroy();
    },
  },
  {
    name: 'bad input is rejected with a clear error and changes nothing',
    async run(gpu) {
      const rt = await BlockRuntime.create(gpu, SMALL, { init: initParams(SMALL, 1) });
      const before = await rt.readParams();
      const b = batchFor(SMALL, 2);
      const bad = Uint32Array.from(b.tokens);
      bad[3] = SMALL.vocab;
      await expectReject(() => rt.forward({ ...b, tokens: bad }), /not a token id/);
      await expectReject(() => rt.forward({ tokens: b.tokens.slice(1), targets: b.targets }), /expected 21 ids/);
      await expectReject(() => rt.backward(), /needs a forward first/);
      const mid = await BlockRuntime.create(gpu, { ...SMALL, hasEmbedding: false, hasHead: false });
      const x = new Float32Array(SMALL.batch * SMALL.seq * SMALL.dModel);
      x[5] = NaN;
      await expectReject(() => mid.forward({ x }), /must be finite/);
      expectClose('params unchanged', await rt.readParams(), before, 0, 0);
      rt.destroy();
      mid.destroy();
    },
  },
];

async function expectReject(f: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await f();
  } catch (e) {
    if (!pattern.test(String((e as Error).message))) throw new Error(`wrong error: ${(e as Error).message}, expected ${pattern}`);
    return;
  }
  throw new Error(`expected an error matching ${pattern}`);
}

export const kernelCases: KernelCase[] = [...matmulCases, ...opCases, ...blockCases];
