// Stage runners on one GPU, linked in memory, driven round by round as the coordinator drives
// them: the split model must train exactly like the whole model in one block (fp32 boundaries), a
// discarded round must leave no trace, a replica serving two lanes must compute both lanes'
// microbatches, compressed boundaries must still train, and replicas must average bit-identically.
// A hostile neighbour's frame (wrong shape, NaN, ×100, a replay) must fail the round at once with
// a HostileFrameError naming it, never crash the stage nor leave it waiting out its timeout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../kernels/context.js';
import { BlockRuntime } from '../shared/engine/block-runtime.js';

import { type BlockConfig, initParams } from '../shared/engine/model.js';
import { HostileFrameError, roundWorkOf } from '../shared/peer/stage-runner.js';
import { type ModelSpec, stageConfigs } from '../shared/run/derive.js';
import type { Dtype } from '../shared/wire/codec.js';
import { FrameKind, HEADER_BYTES, decodeFrame, encodeFrame } from '../shared/wire/frame.js';
import { openNodeGpu } from '../worker/node-gpu.js';
import { M, type MemorySwarm, OPT, batch, memorySwarm, model } from './memory-peers.js';

let gpu: Gpu;
beforeAll(async () => {
  gpu = await openNodeGpu();
});
afterAll(() => gpu?.device.destroy());

/** Peers named `s<stage><lane>` ("s0a", "s1a", …); `lanes[s]` is how many replicas stage s has. */
async function swarm(m: ModelSpec, layers: number[], dtype: Dtype, lanes = layers.map(() => 1)): Promise<MemorySwarm> {
  const cfgs = stageConfigs(m, layers);
  const specs = cfgs.flatMap((cfg, s) => Array.from({ length: lanes[s] }, (_, r) => ({ id: `s${s}${'abc'[r]}`, stage: s, cfg, init: initParams(cfg, 3), slots: cfgs.length - s })));
  return memorySwarm(gpu, specs, { stages: cfgs.length, dtype, optimizer: OPT, batch });
}

/** One round: every peer on a route computes its share; returns the last stages' loss sum per microbatch. */
async function round(sw: MemorySwarm, r: number, step: number, routes: string[][], signal = new AbortController().signal) {
  // As the session does when the round message arrives.
  for (const p of sw.peers.values()) p.mailbox.setRound(r, step);
  const results = await Promise.all([...sw.peers.values()].map(async (p) => ({ p, res: await p.runner.runRound(roundWorkOf(r, step, routes, p.id), signal) })));
  for (const p of sw.peers.values()) p.mailbox.forgetRoundsBefore(r + 1);
  const loss = results.reduce((s, { res }) => s + (res.lossSum ?? 0), 0);
  return { loss: loss / routes.length, results };
}

async function commit(sw: MemorySwarm, step: number) {
  for (const p of sw.peers.values()) await p.runner.apply(step);
}

const lane = (ids: string[]) => Array.from({ length: M }, () => ids);

describe('stage runners over in-memory channels', () => {
  it('3 stages with fp32 boundaries train exactly like the whole model in one block', async () => {
    const sw = await swarm(model, [1, 1, 1], 'fp32');
    const losses: number[] = [];
    for (let step = 1; step <= 4; step++) {
      losses.push((await round(sw, step, step, lane(['s0a', 's1a', 's2a']))).loss);
      await commit(sw, step);
    }
    const whole: BlockConfig = { ...model, hasEmbedding: true, hasHead: true };
    const rt = await BlockRuntime.create(gpu, whole, { init: initParams(whole, 3), optimizer: OPT });
    const want: number[] = [];
    for (let step = 1; step <= 4; step++) {
      let sum = 0;
      for (let mb = 0; mb < M; mb++) {
        sum += (await rt.forward(batch(step, mb, 'train'))).loss!;
        await rt.backward();
      }
      rt.step();
      want.push(sum / M);
    }
    for (let i = 0; i < 4; i++) expect(Math.abs(losses[i] - want[i])).toBeLessThan(1e-5 * want[i]);
    // Same parameters, stage by stage, by name.
    const all = await rt.readParams();
    for (const p of sw.peers.values()) {
      const got = await p.runtime.readParams();
      for (const q of p.runtime.layout.params) {
        const w = rt.layout.params.find((x) => x.name === q.name)!;
        for (let i = 0; i < q.size; i += 7) expect(Math.abs(got[q.offset + i] - all[w.offset + i])).toBeLessThan(1e-5);
      }
    }
    expect([...sw.peers.values()].every((p) => p.mailbox.rejected === 0)).toBe(true);
  });

  it('a discarded round leaves no trace: abort mid-round, discard, route the step again, and training is bit-for-bit the undisturbed one', async () => {
    const routes = lane(['s0a', 's1a', 's2a']);
    const plain = await swarm(model, [1, 1, 1], 'fp32');
    for (let step = 1; step <= 2; step++) {
      await round(plain, step, step, routes);
      await commit(plain, step);
    }
    const hit = await swarm(model, [1, 1, 1], 'fp32');
    await round(hit, 1, 1, routes);
    await commit(hit, 1);
    // Round 2 (step 2) fails part-way: microbatch 2 was routed to a stage-2 peer that is gone, so
    // the others have accumulated gradients for microbatches 0 and 1 and wait for the third when
    // the coordinator discards the round. They drop everything.
    const broken = [routes[0], routes[1], ['s0a', 's1a', 's2x']];
    const abort = new AbortController();
    const partial = ['s0a', 's1a', 's2a'].map((id) => hit.get(id).runner.runRound(roundWorkOf(2, 2, broken, id), abort.signal));
    expect((await partial[2]).microbatches).toBe(2); // the last stage did its two, gradients included
    await new Promise((r) => setTimeout(r, 100));
    abort.abort(new Error('round 2 discarded'));
    for (const r of await Promise.allSettled(partial.slice(0, 2))) expect(r.status).toBe('rejected');
    const dirty = await hit.get('s1a').runtime.readGrads();
    expect(dirty.some((g) => g !== 0)).toBe(true); // there really was something to discard
    for (const p of hit.peers.values()) p.runner.discard();
    // Step 2 again as round 3: its frames cannot be confused with round 2's.
    await round(hit, 3, 2, routes);
    await commit(hit, 2);
    for (const id of ['s0a', 's1a', 's2a']) expect(Array.from(await hit.get(id).runtime.readParams())).toEqual(Array.from(await plain.get(id).runtime.readParams()));
  });

  it('a replica serving two lanes computes both lanes’ microbatches, and training proceeds', async () => {
    // Stage 0 has two replicas, stage 1 one: it takes both lanes, as when its twin is lost.
    const sw = await swarm(model, [2, 1], 'fp32', [2, 1]);
    const routes = [
      ['s0a', 's1a'],
      ['s0b', 's1a'],
      ['s0a', 's1a'],
      ['s0b', 's1a'],
    ];
    const first = await round(sw, 1, 1, routes);
    const counts = new Map(first.results.map(({ p, res }) => [p.id, res.microbatches]));
    expect(Object.fromEntries(counts)).toEqual({ s0a: 2, s0b: 2, s1a: 4 });
    await commit(sw, 1);
    let last = first.loss;
    for (let step = 2; step <= 6; step++) {
      last = (await round(sw, step, step, routes)).loss;
      await commit(sw, step);
    }
    expect(last).toBeLessThan(first.loss - 0.2);
  });

  it('subspace boundaries (k=4 of 16, int8 coefficients) train, and move 4 bytes + scale per token', async () => {
    const sw = await swarm({ ...model, subspace: { k: 4, seed: 2 } }, [1, 1, 1], 'int8');
    const routes = lane(['s0a', 's1a', 's2a']);
    const losses: number[] = [];
    for (let step = 1; step <= 6; step++) {
      losses.push((await round(sw, step, step, routes)).loss);
      await commit(sw, step);
    }
    expect(losses.at(-1)!).toBeLessThan(losses[0] - 0.2);
    // per token: 4 int8 values; per row (token) a 4-byte scale; plus a 32-byte header per frame
    expect(sw.get('s0a').runner.wire.fwdSent).toBe(M * 6 * (32 + 16 * (4 + 4)));
  });

  it('two lanes of two stages average each stage’s weights every 2 steps and end bit-identical', async () => {
    const sw = await swarm(model, [2, 1], 'fp32', [2, 2]);
    const routes = [
      ['s0a', 's1a'],
      ['s0a', 's1a'],
      ['s0b', 's1b'],
      ['s0b', 's1b'],
    ];
    for (let step = 1; step <= 4; step++) {
      await round(sw, step, step, routes);
      await commit(sw, step);
      if (step % 2 === 0) {
        await Promise.all([...sw.peers.values()].map((p) => p.averager.average(step, [`s${p.stage}a`, `s${p.stage}b`], [])));
      }
      if (step === 1) {
        // Different data per lane: before any averaging the replicas have drifted apart.
        const [a, b] = await Promise.all([sw.get('s0a').runtime.readParams(), sw.get('s0b').runtime.readParams()]);
        expect(a.some((v, i) => v !== b[i])).toBe(true);
      }
    }
    for (const s of [0, 1]) {
      const [a, b] = await Promise.all([sw.get(`s${s}a`).runtime.readParams(), sw.get(`s${s}b`).runtime.readParams()]);
      expect(Array.from(a)).toEqual(Array.from(b));
    }
  });

  it('a listener (a joiner) receives the members’ average and ends bit-identical to them; a lost member is not waited for', async () => {
    const sw = await swarm(model, [2, 1], 'fp32', [3, 1]);
    const routes = [
      ['s0a', 's1a'],
      ['s0b', 's1a'],
    ];
    await round(sw, 1, 1, routes);
    await commit(sw, 1);
    const members = ['s0a', 's0b'];
    const n = await Promise.all(['s0a', 's0b', 's0c'].map((id) => sw.get(id).averager.average(1, members, ['s0c'])));
    expect(n).toEqual([2, 2, 2].map((x) => ({ n: x, outliers: [] })));
    const a = Array.from(await sw.get('s0a').runtime.readParams());
    expect(Array.from(await sw.get('s0c').runtime.readParams())).toEqual(a);
    expect(sw.get('s0c').runtime.stepCount).toBe(1);
    // Averaging at step 2 with a member that never sends: the others go on without it once told it is gone.
    const waiting = sw.get('s0a').averager.average(2, ['s0a', 's0b', 's0x'], []);
    const other = sw.get('s0b').averager.average(2, ['s0a', 's0b', 's0x'], []);
    setTimeout(() => ['s0a', 's0b'].forEach((id) => sw.get(id).averager.forget('s0x')), 50);
    expect(await Promise.all([waiting, other])).toEqual([2, 2].map((x) => ({ n: x, outliers: [] })));
  });
});

describe('a hostile neighbour', () => {
  /** Every frame `from` sends `to` is rewritten by `edit` on its way (what a hostile `from` would send). */
  function tamper(sw: MemorySwarm, to: string, from: string, edit: (bytes: Uint8Array) => Uint8Array): void {
    const box = sw.get(to).mailbox;
    const deliver = box.deliver.bind(box);
    box.deliver = (sender, bytes) => deliver(sender, sender === from ? edit(bytes) : bytes);
  }

  const path = ['s0a', 's1a', 's2a'];

  /** Round `r` on the path; the round is aborted (discarded) as soon as `victim` fails, as the coordinator would. */
  async function failingRound(sw: MemorySwarm, r: number, victim: string): Promise<{ error: unknown; ms: number }> {
    const abort = new AbortController();
    for (const p of sw.peers.values()) p.mailbox.setRound(r, r);
    const t0 = performance.now();
    const runs = path.map((id) => sw.get(id).runner.runRound(roundWorkOf(r, r, lane(path), id), abort.signal));
    const error = await runs[path.indexOf(victim)].then(
      () => undefined,
      (e) => e,
    );
    const ms = performance.now() - t0;
    abort.abort(new Error(`round ${r} discarded`));
    await Promise.allSettled(runs);
    for (const p of sw.peers.values()) p.runner.discard();
    return { error, ms };
  }

  const header = (bytes: Uint8Array) => ({
    round: new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true),
    mb: new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true),
  });

  it('a well-formed 1×1 activation fails the round at once with a HostileFrameError, not a crash in the runtime', async () => {
    const sw = await swarm(model, [1, 1, 1], 'fp32');
    tamper(sw, 's1a', 's0a', (b) =>
      encodeFrame({ kind: FrameKind.Activation, tag: header(b).round, microbatch: header(b).mb, rows: 1, cols: 1, dtype: 'fp32', tensor: Float32Array.of(1) }),
    );
    const { error, ms } = await failingRound(sw, 1, 's1a');
    expect(error).toBeInstanceOf(HostileFrameError);
    expect((error as HostileFrameError).from).toBe('s0a');
    expect((error as Error).message).toMatch(/s0a's Activation frame for round 1 microbatch 0: refused: .*1×1 fp32, expected 16×16 fp32/);
    expect(ms).toBeLessThan(5_000);
  });

  it('a NaN activation fails the round at once (the stage used to wait out its timeout and be blamed itself)', async () => {
    const sw = await swarm(model, [1, 1, 1], 'fp32');
    tamper(sw, 's1a', 's0a', (b) => {
      const c = b.slice();
      new DataView(c.buffer).setFloat32(HEADER_BYTES + 4 * 5, Number.NaN, true);
      return c;
    });
    const { error, ms } = await failingRound(sw, 1, 's1a');
    expect(error).toBeInstanceOf(HostileFrameError);
    expect((error as Error).message).toMatch(/^s0a's Activation frame for round 1 microbatch 0: refused: .*decodes to NaN/);
    expect(ms).toBeLessThan(5_000); // not the 20 s timeout
    expect(sw.get('s1a').mailbox.hostile.get('s0a')).toBeGreaterThanOrEqual(1);
  });

  it('gradients scaled ×100, once the band has seen honest ones, are taken and each reported for audit (the band alone cannot tell them from a loss spike)', async () => {
    const sw = await swarm(model, [1, 1, 1], 'fp32');
    for (let r = 1; r <= 3; r++) {
      await round(sw, r, r, lane(path));
      await commit(sw, r);
    }
    expect(sw.peers.get('s1a')!.suspects).toEqual([]);
    tamper(sw, 's1a', 's2a', (b) => {
      const f = decodeFrame(b);
      return encodeFrame({ ...f, tensor: f.tensor.map((v) => 100 * v) });
    });
    await round(sw, 4, 4, lane(path));
    expect(sw.peers.get('s1a')!.suspects.sort()).toEqual(Array.from({ length: M }, (_, mb) => `s2a:4:${mb}`));
    // Backprop carries the scale upstream, so s0a reports s1a too: an audit recomputes s1a from the
    // same gradient it received and clears it, while s2a's, recomputed from its honest inputs, convicts it.
    expect(sw.peers.get('s0a')!.suspects.sort()).toEqual(Array.from({ length: M }, (_, mb) => `s1a:4:${mb}`));
  });

  it('activations of an earlier step replayed under a later round are refused', async () => {
    const sw = await swarm(model, [1, 1, 1], 'fp32');
    const sent = new Map<string, Uint8Array>();
    tamper(sw, 's1a', 's0a', (b) => {
      const { round: r, mb } = header(b);
      if (r === 1) sent.set(`${mb}`, b);
      if (r < 3) return b;
      // Round 3: round 1's frame of the same microbatch, relabelled.
      const old = sent.get(`${mb}`)!.slice();
      new DataView(old.buffer).setUint32(8, r, true);
      return old;
    });
    for (let r = 1; r <= 2; r++) {
      await round(sw, r, r, lane(path));
      await commit(sw, r);
    }
    const { error } = await failingRound(sw, 3, 's1a');
    expect(error).toBeInstanceOf(HostileFrameError);
    expect((error as Error).message).toMatch(/refused: the payload repeats the one sent as kind 1 microbatch \d of step 1/);
  });
});
