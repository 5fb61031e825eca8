// Adversarial peers as real processes in a real swarm (Dawn + WebRTC over loopback): a worker that
// sends plausible but wrong outputs (every tensor it sends ×1.5: no norm check can tell) among
// honest replicas. The spot checks (audits at rate 1 here) catch it by recomputation; two witnesses
// convict it; it is purged, the run goes on without it and no honest peer is ever blamed.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalSwarm } from '../cli/local-swarm.js';
import { SWARM_DEFAULTS, runConfig } from '../cli/swarm.js';
import type { CommitEvent } from '../coordinator/run-control.js';
import { DEFAULT_DATA } from '../worker/node-corpus.js';
import { TINY_MODEL } from './tiny-swarm.js';

const ADVERSARY = fileURLToPath(new URL('../bench/adversary.ts', import.meta.url));
const STEPS = 24;
const out = mkdtempSync(join(tmpdir(), 'adversaries-'));
let swarm: LocalSwarm;
const commits: CommitEvent[] = [];
const gone: Array<{ peerId: string; name: string; reason: string; step: number }> = [];
const names = new Map<string, string>();

beforeAll(async () => {
  const run = await runConfig({
    ...SWARM_DEFAULTS,
    ...TINY_MODEL,
    stages: 2,
    minPerStage: 3,
    layers: 2,
    microbatches: 6,
    steps: STEPS,
    averageEvery: 4,
    evalEvery: 0,
    evalBatches: 0,
    out,
  });
  swarm = new LocalSwarm({ run, data: DEFAULT_DATA, out, quickStart: true, coordinator: { auditRate: 1 } });
  const c = swarm.coordinator;
  c.on('commit', (e) => commits.push(e));
  c.on('register', (r) => names.set(r.peerId, r.name));
  c.on('peer-gone', (g) => gone.push({ ...g, step: c.control.step }));
  await swarm.listen();
  for (let i = 0; i < 5; i++) swarm.spawn(i);
  swarm.spawn(5, ['--attack', 'scale-outputs'], ADVERSARY);
  await c.trained;
}, 900_000);

afterAll(async () => swarm?.close());

describe('a peer whose outputs are plausible but wrong (real processes)', () => {
  it('is convicted by two witnesses and purged; nobody honest is blamed', () => {
    const adversary = [...names].find(([, n]) => n === 'worker-5')![0];
    const purged = gone.filter((g) => g.reason.startsWith('purged: '));
    expect(purged.map((g) => g.peerId)).toEqual([adversary]);
    expect(purged[0].reason).toMatch(/^purged: two witnesses found its microbatch \d+ of round \d+ wrong: its (output|input gradient) is not what its weights compute/);
    expect(gone.filter((g) => g.peerId !== adversary)).toEqual([]);
  });

  it('is caught in the first round it computes (audits at rate 1): none of its work is ever committed', () => {
    const adversary = [...names].find(([, n]) => n === 'worker-5')![0];
    expect(commits.flatMap((c) => c.work).filter((w) => w.peerId === adversary)).toEqual([]);
  });

  it('the run trains every step without it', () => {
    expect(commits.map((c) => c.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
  });
});
