// The entropy-coded subspace codec (subspace:k=K:e<b>) in a real swarm: two worker processes over
// WebRTC on loopback. Every boundary frame is dithered with a step of its column's RMS and
// entropy-coded: the receiver must take each frame (its shape says dithered), decode each value
// within half a step of what was sent, and the wire must carry about b bits a coefficient.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SWARM_DEFAULTS, type SwarmResult, runSwarm } from '../cli/swarm.js';
import { parseCodec, quantStep } from '../shared/wire/codec.js';
import { expectWithinHalfStep } from './step-reference.js';
import { TINY_MODEL } from './tiny-swarm.js';

const CODEC = 'subspace:k=8:e3';
const K = 8;
const STEPS = 8;
const out = mkdtempSync(join(tmpdir(), 'swarm-entropy-test-'));
let result: SwarmResult;

beforeAll(async () => {
  result = await runSwarm({
    ...SWARM_DEFAULTS,
    workers: 2,
    stages: 2,
    layers: 2,
    ...TINY_MODEL,
    microbatches: 2,
    steps: STEPS,
    lr: 1e-2,
    evalEvery: STEPS,
    evalBatches: 2,
    codec: CODEC,
    out,
    quiet: true,
    dump: true,
    quickStart: true,
  });
}, 300_000);

const f32 = (file: string) => new Float32Array(new Uint8Array(readFileSync(file)).buffer);

describe(`a swarm with the ${CODEC} codec (2 processes, WebRTC)`, () => {
  it('trains every step with no frame refused', () => {
    expect(result.loss.map(([step]) => step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
    for (const p of result.peers) expect(p.stats.rejectedFrames).toBe(0);
    expect(result.peers.find((p) => p.stage === 1)!.val.at(-1)![1]).toBeLessThan(Math.log(65));
  });

  it('decodes every value within half its column step of what was sent', () => {
    const dir = join(out, 'boundaries');
    const sent = readdirSync(dir).filter((f) => f.endsWith('-sent.f32'));
    expect(sent.length).toBeGreaterThan(0);
    const step = quantStep(parseCodec(CODEC))!;
    for (const f of sent) expectWithinHalfStep(f32(join(dir, f)), f32(join(dir, f.replace('-sent', '-received'))), K, step, f);
  });

  it('sends about 3 bits a coefficient: about half of raw int8, headers and scales included', () => {
    const s0 = result.peers.find((p) => p.stage === 0)!.stats;
    const perToken = s0.fwdBytesSent / s0.fwdTokens;
    // Per frame of 64 tokens: a 32-byte header and 8 f32 scales, then 8 coefficients a token at
    // ~3.2 bits and the frequency table (which a frame this small amortizes poorly).
    const rawInt8 = K + (32 + 4 * K) / 64;
    expect(perToken).toBeGreaterThan((3 * K) / 8);
    expect(perToken).toBeLessThan(0.55 * rawInt8);
  });
});
