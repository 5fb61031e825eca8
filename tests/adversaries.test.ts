// Adversarial peers as real processes in a real swarm (Dawn + WebRTC over loopback): one worker
// among five honest ones sends, on whichever stage it lands, every tensor ×1.5 (plausible: only
// recomputation tells), every tensor zero, or frames with a NaN in them. Each is caught (spot
// checks at rate 1 here; plain defects shown to the coordinator with the sender's seal), purged,
// none of its work is committed, the run trains every step without it and nobody honest is blamed.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Attack } from '../bench/adversary.js';
import { LocalSwarm } from '../cli/local-swarm.js';
import { SWARM_DEFAULTS, runConfig } from '../cli/swarm.js';
import type { CommitEvent } from '../coordinator/run-control.js';
import { DEFAULT_DATA } from '../worker/node-corpus.js';
import { TINY_MODEL } from './tiny-swarm.js';

const ADVERSARY = fileURLToPath(new URL('../bench/adversary.ts', import.meta.url));
const STEPS = 12;

const CASES: Array<{ attack: Attack; caught: RegExp }> = [
  { attack: 'scale-outputs', caught: /^purged: two witnesses found its microbatch \d+ of round \d+ wrong: its (output|input gradient) is not what its weights compute/ },
  { attack: 'zero-outputs', caught: /^purged: sent p\d+-[0-9a-f]{6} a defective frame \(round \d+, microbatch \d+\): .*zero/ },
  { attack: 'nan-outputs', caught: /^purged: sent p\d+-[0-9a-f]{6} a defective frame \(round \d+, microbatch \d+\): wire frame \(nonfinite\)/ },
];

describe.each(CASES)('a peer that attacks with $attack (real processes)', ({ attack, caught }) => {
  const out = mkdtempSync(join(tmpdir(), `adversary-${attack}-`));
  let swarm: LocalSwarm;
  const commits: CommitEvent[] = [];
  const gone: Array<{ peerId: string; reason: string }> = [];
  let adversary = '';

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
    c.on('register', (r) => r.name === 'worker-5' && (adversary = r.peerId));
    c.on('peer-gone', (g) => gone.push(g));
    await swarm.listen();
    for (let i = 0; i < 5; i++) swarm.spawn(i);
    swarm.spawn(5, ['--attack', attack], ADVERSARY);
    await c.trained;
  }, 600_000);

  afterAll(async () => swarm?.close());

  it('is purged for what it did; nobody honest is blamed', () => {
    expect(gone.map((g) => g.peerId)).toEqual([adversary]);
    expect(gone[0].reason).toMatch(caught);
  });

  it('none of its work is committed, and the run trains every step without it', () => {
    expect(commits.flatMap((c) => c.work).filter((w) => w.peerId === adversary)).toEqual([]);
    expect(commits.map((c) => c.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
  });
});
