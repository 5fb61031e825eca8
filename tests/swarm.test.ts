// A real swarm: the coordinator in this process, three worker processes (Dawn + WebRTC over
// loopback), three pipeline stages, subspace-compressed int8 boundaries.
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SWARM_DEFAULTS, type SwarmResult, runSwarm } from '../cli/swarm.js';
import { TINY_MODEL } from './tiny-swarm.js';

const out = mkdtempSync(join(tmpdir(), 'swarm-test-'));
let result: SwarmResult;

beforeAll(async () => {
  result = await runSwarm({
    ...SWARM_DEFAULTS,
    workers: 3,
    stages: 3,
    layers: 3,
    ...TINY_MODEL,
    microbatches: 2,
    steps: 12,
    lr: 1e-2,
    evalEvery: 6,
    evalBatches: 2,
    codec: 'subspace:k=8:int8',
    out,
    quiet: true,
    dump: true,
    quickStart: true,
  });
}, 300_000);

const f32 = (file: string) => new Float32Array(new Uint8Array(readFileSync(file)).buffer);

describe('local swarm over WebRTC (3 processes, 3 stages)', () => {
  it("trains: the last stage's training loss falls and validation is measured", () => {
    const last = result.peers.find((p) => p.stage === 2)!;
    expect(last.train).toHaveLength(12);
    const first = (last.train[0][1] + last.train[1][1]) / 2;
    const end = (last.train[10][1] + last.train[11][1]) / 2;
    expect(end).toBeLessThan(first - 0.1);
    expect(last.val.map((v) => v[0])).toEqual([6, 12]);
    // The coordinator's view: every step committed once, in order.
    expect(result.loss.map(([step]) => step)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });

  it('every boundary tensor the receiver decoded matches what the sender encoded, within int8 rounding', () => {
    const dir = join(out, 'boundaries');
    const sent = readdirSync(dir).filter((f) => f.endsWith('-sent.f32'));
    // 2 boundaries × 2 directions × 2 microbatches at step 1
    expect(sent).toHaveLength(8);
    for (const f of sent) {
      const recvFile = join(dir, f.replace('-sent', '-received'));
      expect(existsSync(recvFile)).toBe(true);
      const a = f32(join(dir, f));
      const b = f32(recvFile);
      expect(b.length).toBe(a.length);
      // Per-row absmax int8 (dense) or per-column (subspace): either way each value is within half a
      // quantization step of the largest magnitude in the tensor.
      const maxAbs = a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      expect(worst).toBeLessThanOrEqual((maxAbs / 127) * 0.5 * 1.0001);
      expect(worst).toBeGreaterThan(0); // it really was quantized
    }
  });

  it('no peer holds more than its stage, the coordinator received no weights, no frame was rejected', () => {
    expect(result.peers.map((p) => p.stats.layersHeld).sort()).toEqual([1, 1, 1]);
    expect(result.coordinator.binaryBytesReceived).toBe(0);
    expect(result.coordinator.badMessages).toBe(0);
    for (const p of result.peers) expect(p.stats.rejectedFrames).toBe(0);
  });

  it('subspace boundaries carry k values per token: forward bytes are k int8 + scales + headers', () => {
    const s0 = result.peers.find((p) => p.stage === 0)!.stats;
    const tokens = 4 * 16;
    expect(s0.fwdTokens).toBe(12 * 2 * tokens);
    // at most k = 8 bytes per token plus per-frame overhead (header, scales); far below d = 32 fp32 values
    expect(s0.fwdBytesSent / s0.fwdTokens).toBeLessThan(8 + 4 + 1);
  });
});
