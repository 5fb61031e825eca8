// The run's state machine (coordinator/run-control.ts) driven directly: a fake `send` records what
// each peer is told, a fake clock stands in for time, and small helpers act as the peers would
// (register, report links, become ready, answer each round with the microbatches its routes give
// them). No sockets, no GPU. Every message the coordinator sends is checked against the wire schema.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { microbatchesPerPeer } from '../coordinator/planner.js';
import { type CommitEvent, RunControl, VIEW_PER_ADJACENT_STAGE } from '../coordinator/run-control.js';
import { testRun as makeRun } from './test-run.js';
import { GRACE_MS } from '../coordinator/witness-sets.js';
import { FrameKind } from '../shared/wire/frame.js';
import {
  applyViewChange,
  type Capability,
  type HeldState,
  type PeerInfo,
  type Seal,
  type ServerMessage,
  type ServerMessageOf,
  ClientMessageSchema,
  MAX_MESSAGE_BYTES,
  ServerMessageSchema,
  type ServerMessageType,
} from '../shared/swarm/protocol.js';
import type { RunConfig } from '../shared/run/config.js';

/** Stage 0 holds 3 layers, stage 1 one: a one-layer GPU fits only stage 1. */
const SMALL_LAST_STAGE: Partial<RunConfig> = { layersPerStage: [3, 1] };

const cap = (maxLayers = 8): Capability => ({ adapter: 'test', kind: 'cpu', gflops: 10, memoryBytes: 1e9, maxLayers });
const hex = (s: string) => createHash('sha256').update(s).digest('hex');
/** The parameter hash peers of `stage` report after averaging at `step`. */
const stageHash = (stage: number, step: number) => hex(`stage ${stage} step ${step}`);
/** The seals a peer's report cites: the input frames its routes gave it (signatures are the server's to check; the state machine checks what they cover). */
function inputsOf(routes: string[][], round: number, id: string): Seal[] {
  const seal = (kind: number, microbatch: number, from: string): Seal => ({ kind, tag: round, microbatch, hash: '0'.repeat(64), from, to: id, sig: '0'.repeat(128) });
  return routes.flatMap((path, mb) => {
    const s = path.indexOf(id);
    if (s < 0) return [];
    return [...(s > 0 ? [seal(FrameKind.Activation, mb, path[s - 1])] : []), ...(s < path.length - 1 ? [seal(FrameKind.Gradient, mb, path[s + 1])] : [])];
  });
}

const accountOf = (id: string) => `0x${hex(id).slice(0, 40)}` as `0x${string}`;

type Sent = { to: string; msg: ServerMessage };

/** A RunControl with a recording `send`, a fake clock, and peers acted by the test. */
class Sim {
  clock = 1_000;
  readonly sent: Sent[] = [];
  readonly invalid: string[] = [];
  readonly commits: CommitEvent[] = [];
  readonly aborted: Array<{ round: number; step: number; reason: string }> = [];
  readonly trained: Array<{ step: number; valLoss?: number }> = [];
  readonly logs: string[] = [];
  /** Every round ever sent, by round number. */
  readonly rounds = new Map<number, { step: number; routes: string[][] }>();
  readonly rc: RunControl;
  /** Per-peer ms per microbatch (default 100): a peer's report of the round in flight comes that long per microbatch after it started. */
  speed: Record<string, number> = {};

  constructor(
    readonly run: RunConfig,
    audit?: { rate: number; random(): number },
  ) {
    this.rc = new RunControl({
      run,
      audit,
      now: () => this.clock,
      log: (l) => this.logs.push(l),
      send: (to, msg) => {
        const ok = ServerMessageSchema.safeParse(msg);
        if (!ok.success) this.invalid.push(`${msg.type} to ${to}: ${ok.error.message}`);
        if (msg.type === 'round') {
          const prev = this.rounds.get(msg.round);
          if (prev && JSON.stringify(prev) !== JSON.stringify({ step: msg.step, routes: msg.routes })) this.invalid.push(`round ${msg.round} sent with two different contents`);
          this.rounds.set(msg.round, { step: msg.step, routes: msg.routes });
        }
        this.sent.push({ to, msg });
      },
    });
    this.rc.on('commit', (c) => this.commits.push(c));
    this.rc.on('round-aborted', (a) => this.aborted.push(a));
    this.rc.on('trained', (t) => this.trained.push(t));
  }

  /** Messages of `type` (to `to`, sent after `since`), each with its recipient as `peer`. */
  msgs<T extends ServerMessageType>(type: T, o: { to?: string; since?: number } = {}): Array<ServerMessageOf<T> & { peer: string }> {
    return this.sent
      .slice(o.since ?? 0)
      .filter((s) => s.msg.type === type && (o.to === undefined || s.to === o.to))
      .map((s) => ({ ...(s.msg as ServerMessageOf<T>), peer: s.to }));
  }
  last<T extends ServerMessageType>(to: string, type: T): ServerMessageOf<T> | undefined {
    return this.msgs(type, { to }).at(-1);
  }
  mark(): number {
    return this.sent.length;
  }
  /** The view `id` holds from what it was told: its last assign, then the `peers` changes after it. */
  told(id: string): PeerInfo[] {
    let view: PeerInfo[] = [];
    for (const { to, msg } of this.sent) {
      if (to !== id) continue;
      if (msg.type === 'assign') view = msg.peers;
      if (msg.type === 'peers') view = applyViewChange(view, msg);
    }
    return view;
  }

  join(id: string, o: { maxLayers?: number; held?: HeldState[]; name?: string } = {}) {
    return this.rc.register(id, {
      name: o.name ?? `peer ${id}`,
      key: hex(id).padEnd(64, '0').slice(0, 64),
      capability: cap(o.maxLayers),
      account: accountOf(id),
      ...(o.held && { held: o.held }),
    });
  }

  /** Every live peer reports open channels to every peer it was told of. */
  linkAll(): void {
    for (const p of this.rc.live())
      this.rc.onLinks(
        p.peerId,
        this.told(p.peerId).map((q) => q.peerId),
      );
  }

  /** What `id` would report for round `round`: the microbatches its routes give it. */
  report(id: string, round = this.rc.currentRound!.round, over: { microbatches?: number; lossSum?: number; inputs?: Seal[] } = {}): string | undefined {
    const r = this.rounds.get(round);
    if (!r) throw new Error(`no round ${round} was sent`);
    const mine = r.routes.filter((path) => path.includes(id)).length;
    const microbatches = over.microbatches ?? mine;
    const last = this.rc.peer(id)?.stage === this.run.stages - 1;
    const inputs = over.inputs ?? inputsOf(r.routes, round, id);
    const current = this.rc.currentRound;
    if (current?.round === round) this.clock = Math.max(this.clock, current.startedAt + this.doneAfter(id, mine));
    return this.rc.onRoundDone(id, { type: 'round-done', round, microbatches, inputs, ...(last && { lossSum: over.lossSum ?? 2 * mine }) });
  }

  private doneAfter(id: string, microbatches: number): number {
    return (this.speed[id] ?? 100) * microbatches;
  }

  /** Every routed peer of the current round (but `except`) reports its share. */
  answer(except: string[] = []): number {
    const r = this.rc.currentRound;
    if (!r) throw new Error(`no round in flight (phase ${this.rc.phase}: ${this.rc.reason})`);
    const round = r.round;
    const work = microbatchesPerPeer(r.routes);
    for (const id of [...work.keys()].sort((a, b) => this.doneAfter(a, work.get(a)!) - this.doneAfter(b, work.get(b)!))) {
      // Each routed peer was told about this very round.
      expect(this.last(id, 'round')).toMatchObject({ round, step: r.step, routes: r.routes });
      if (!except.includes(id)) expect(this.report(id, round)).toBeUndefined();
    }
    return round;
  }

  /** Commit `n` rounds, the checkpoints peers report after each averaging included. */
  steps(n: number): void {
    for (let i = 0; i < n; i++) {
      const before = this.commits.length;
      this.answer();
      expect(this.commits.length).toBe(before + 1);
      const c = this.commits.at(-1)!;
      if (this.msgs('commit').at(-1)?.average) this.checkpoints(c.step);
    }
  }

  /** The active peers report their stage's hash after averaging at `step`. */
  checkpoints(step: number): void {
    for (const p of this.rc.live()) if (p.state === 'active') this.rc.onCheckpoint(p.peerId, { type: 'checkpoint', step, hash: stageHash(p.stage, step) });
  }

  /** Rounds sent to `id` (their numbers). */
  roundsOf(id: string, since = 0): number[] {
    return this.msgs('round', { to: id, since }).map((m) => m.round);
  }

  /**
   * The credit invariants over every commit so far: steps are committed once each, in order; each
   * commit's work is exactly its round's routes; and each (step, microbatch, stage) is credited once.
   */
  checkCredit(): void {
    expect(this.invalid).toEqual([]);
    const steps = this.commits.map((c) => c.step);
    steps.forEach((s, i) => expect(s).toBe(i === 0 ? steps[0] : steps[i - 1] + 1));
    const credited = new Set<string>();
    for (const c of this.commits) {
      const r = this.rounds.get(c.round)!;
      expect(r.step).toBe(c.step);
      expect(r.routes).toHaveLength(this.run.microbatches);
      const expected = [...microbatchesPerPeer(r.routes)].map(([peerId, n]) => ({ peerId, microbatches: n, stage: this.rc.peer(peerId)!.stage, account: accountOf(peerId) }));
      expect(sortWork(c.work)).toEqual(sortWork(expected));
      r.routes.forEach((path, mb) => {
        expect(path).toHaveLength(this.run.stages);
        path.forEach((id, s) => {
          expect(this.rc.peer(id)!.stage).toBe(s);
          const key = `${c.step}/${mb}/${s}`;
          expect(credited.has(key), `microbatch ${mb} of step ${c.step} at stage ${s} credited twice`).toBe(false);
          credited.add(key);
        });
      });
      for (let s = 0; s < this.run.stages; s++) expect(c.work.filter((w) => w.stage === s).reduce((n, w) => n + w.microbatches, 0)).toBe(this.run.microbatches);
    }
  }
}

function sortWork<T extends { peerId: string }>(w: T[]): T[] {
  return [...w].sort((a, b) => (a.peerId < b.peerId ? -1 : 1));
}

/** Peers registered in order, linked, ready at step 0: training has started. */
function started(run: RunConfig, ids: string[], expectStages?: number[], audit?: { rate: number; random(): number }): Sim {
  const sim = new Sim(run, audit);
  ids.forEach((id, i) => {
    const r = sim.join(id);
    expect(r.ok).toBe(true);
    if (expectStages && r.ok) expect(r.stage).toBe(expectStages[i]);
  });
  sim.linkAll();
  for (const id of ids) sim.rc.onReady(id, 0);
  expect(sim.rc.phase).toBe('training');
  expect(sim.rc.currentRound).toBeDefined();
  return sim;
}

/** Two lanes: a, c on stage 0; b, d on stage 1 (placement alternates, the tie going to the lower stage). */
const lanes = (over: Partial<RunConfig> = {}) => started(makeRun({ minPerStage: 2, ...over }), ['a', 'b', 'c', 'd'], [0, 1, 0, 1]);

// ---------------------------------------------------------------------------------------------

describe('RunControl: start', () => {
  it('does not start before every stage has minPerStage ready peers, and says why', () => {
    const sim = new Sim(makeRun({ minPerStage: 2 }));
    expect(sim.rc.phase).toBe('waiting');
    for (const id of ['a', 'b', 'c', 'd', 'e']) expect(sim.join(id).ok).toBe(true);
    expect(sim.rc.peer('e')!.stage).toBe(0);
    // e has no channel to stage 1: it can be active, never routed.
    sim.linkAll();
    sim.rc.onLinks('e', ['a', 'c']);
    for (const q of ['b', 'd'])
      sim.rc.onLinks(
        q,
        sim.rc
          .live()
          .filter((p) => p.peerId !== q && p.peerId !== 'e')
          .map((p) => p.peerId),
      );
    for (const id of ['a', 'b', 'c', 'e']) sim.rc.onReady(id, 0);
    expect(sim.rc.phase).toBe('waiting');
    expect(sim.rc.reason).toBe('waiting for peers (ready stage 0: 2/2, stage 1: 1/2)');
    expect(sim.msgs('round')).toEqual([]);
    expect(sim.last('a', 'status')).toMatchObject({ phase: 'waiting', reason: 'waiting for peers (ready stage 0: 2/2, stage 1: 1/2)', step: 0, steps: 10 });
    expect(sim.last('d', 'status')?.reason).toMatch(/^waiting for peers \(/);

    const mark = sim.mark();
    sim.rc.onReady('d', 0);
    expect(sim.rc.phase).toBe('training');
    expect(sim.rc.reason).toBe('training');
    expect(
      sim
        .msgs('status', { since: mark })
        .map((m) => m.peer)
        .sort(),
    ).toEqual(['a', 'b', 'c', 'd', 'e']);
    for (const id of ['a', 'b', 'c', 'd', 'e']) expect(sim.rc.peer(id)!.state).toBe('active');
    const rounds = sim.msgs('round', { since: mark });
    const routed = [...microbatchesPerPeer(sim.rc.currentRound!.routes).keys()].sort();
    expect(routed).not.toContain('e');
    expect(rounds.map((m) => m.peer).sort()).toEqual(routed);
    expect(rounds.every((m) => m.round === rounds[0].round && m.step === 1)).toBe(true);
    expect(sim.invalid).toEqual([]);
  });

  it('a peer leaving before the start changes nothing for the others', () => {
    const sim = new Sim(makeRun({ minPerStage: 2 }));
    for (const id of ['a', 'b', 'c', 'd']) sim.join(id);
    const mark = sim.mark();
    sim.rc.onGone('d', 'connection closed');
    expect(sim.msgs('assign', { since: mark })).toEqual([]);
    expect(sim.last('b', 'peers')).toMatchObject({ added: [], removed: ['d'] });
    expect(sim.told('b').map((p) => p.peerId)).toEqual(['a', 'c']);
    expect(sim.rc.reason).toBe('waiting for peers (ready stage 0: 0/2, stage 1: 0/2)');
    // A newcomer takes the free place on stage 1.
    expect(sim.join('e')).toEqual({ ok: true, stage: 1 });
  });

  it('waits (without routing) until the ready peers have channels to each other', () => {
    const sim = new Sim(makeRun());
    sim.join('a');
    sim.join('b');
    sim.rc.onReady('a', 0);
    sim.rc.onReady('b', 0);
    expect(sim.msgs('round')).toEqual([]);
    expect(sim.rc.phase).toBe('paused');
    expect(sim.rc.reason).toMatch(/cannot route step 1: .*stage 0/);
    sim.linkAll();
    expect(sim.rc.phase).toBe('training');
    expect(
      sim
        .msgs('round')
        .map((m) => m.peer)
        .sort(),
    ).toEqual(['a', 'b']);
  });
});

describe('RunControl: commit', () => {
  it('routes two lanes, commits only when every routed peer reported, and credits exactly the routes', () => {
    const sim = lanes();
    const r1 = sim.rc.currentRound!;
    expect(r1.step).toBe(1);
    // Two lanes, taking turns (which comes first turns with the round).
    expect(r1.routes.slice(0, 2).map(String).sort()).toEqual(['a,b', 'c,d']);
    expect(r1.routes.slice(2)).toEqual(r1.routes.slice(0, 2));
    sim.clock += 700;
    expect(sim.report('a')).toBeUndefined();
    // Wrong counts and duplicate or foreign reports are refused and change nothing.
    expect(sim.report('b', r1.round, { microbatches: 3 })).toMatch(/routes 2 microbatches through b, it reported 3/);
    expect(sim.report('a')).toMatch(/already reported by a/);
    expect(sim.join('e').ok).toBe(true);
    expect(sim.rc.onRoundDone('e', { type: 'round-done', round: r1.round, microbatches: 0, inputs: [] })).toMatch(/routes nothing through e/);
    expect(sim.report('b')).toBeUndefined();
    expect(sim.report('c')).toBeUndefined();
    expect(sim.commits).toEqual([]);
    expect(sim.msgs('commit')).toEqual([]);
    expect(sim.rc.step).toBe(0);

    expect(sim.report('d')).toBeUndefined();
    expect(sim.commits).toHaveLength(1);
    const c = sim.commits[0];
    expect(c).toMatchObject({ step: 1, round: r1.round, ms: 700, loss: (2 * 2 + 2 * 2) / 4 });
    expect(sortWork(c.work)).toEqual([
      { peerId: 'a', account: accountOf('a'), stage: 0, microbatches: 2 },
      { peerId: 'b', account: accountOf('b'), stage: 1, microbatches: 2 },
      { peerId: 'c', account: accountOf('c'), stage: 0, microbatches: 2 },
      { peerId: 'd', account: accountOf('d'), stage: 1, microbatches: 2 },
    ]);
    expect(sim.rc.step).toBe(1);
    // The commit goes to every active peer (e is setting up), without averaging at step 1.
    const commits = sim.msgs('commit');
    expect(commits.map((m) => m.peer).sort()).toEqual(['a', 'b', 'c', 'd']);
    for (const m of commits) expect(m).toMatchObject({ round: r1.round, step: 1, apply: true });
    expect(commits[0].average).toBeUndefined();
    // The next step is routed at once.
    expect(sim.rc.currentRound).toMatchObject({ step: 2 });
    expect(sim.rc.currentRound!.round).toBeGreaterThan(r1.round);

    sim.steps(1);
    expect(sim.rc.step).toBe(2);
    const avg = sim.msgs('commit').filter((m) => m.step === 2);
    expect(avg).toHaveLength(4);
    expect(avg[0].average).toEqual({
      members: [
        ['a', 'c'],
        ['b', 'd'],
      ],
      listeners: [[], []],
    });
    sim.steps(3);
    expect(sim.commits.map((x) => x.step)).toEqual([1, 2, 3, 4, 5]);
    sim.checkCredit();
  });

  it('a replica that computed nothing since its stage last averaged listens instead of pulling the stage back to its weights', () => {
    const sim = started(makeRun({ averageEvery: 2, steps: 20 }), ['a', 'b', 'c'], [0, 1, 0]);
    sim.steps(3);
    sim.speed = { a: 100, b: 100, c: 1e6 }; // measured at step 4: c then gets no route
    sim.steps(3);
    const worked = (step: number) => sim.commits.find((x) => x.step === step)!.work.some((w) => w.peerId === 'c');
    const averaged = (step: number) => sim.msgs('commit').find((m) => m.step === step && m.apply)!.average;
    const roles = [2, 4, 6].map((step) => (worked(step - 1) || worked(step) ? 'member' : 'listener'));
    for (const [i, step] of [2, 4, 6].entries()) {
      expect(averaged(step)).toEqual(roles[i] === 'member' ? { members: [['a', 'c'], ['b']], listeners: [[], []] } : { members: [['a'], ['b']], listeners: [['c'], []] });
    }
    // Both cases happened: c trained before step 4 and was idle for steps 5 and 6.
    expect(roles.slice(1)).toEqual(['member', 'listener']);
    // Still active, and told every commit: it trains again when it is routed.
    expect(sim.rc.peer('c')?.state).toBe('active');
    expect(
      sim
        .msgs('commit', { to: 'c' })
        .map((m) => m.step)
        .slice(-3),
    ).toEqual([4, 5, 6]);
  });

  it('carries the swarm loss in the commit, but not a claim out of range, which every peer would refuse', () => {
    const sim = lanes();
    for (const id of ['a', 'b', 'c', 'd']) expect(sim.report(id)).toBeUndefined();
    expect(sim.last('a', 'commit')?.loss).toBe((2 * 2 + 2 * 2) / 4);
    for (const id of ['a', 'b', 'c', 'd']) expect(sim.report(id, sim.rc.currentRound!.round, { lossSum: 1e12 })).toBeUndefined();
    const commit = sim.last('a', 'commit')!;
    expect(commit.step).toBe(2);
    expect(commit).not.toHaveProperty('loss');
    expect(sim.invalid).toEqual([]);
    // A negative loss is no loss at all: the transport refuses the message, blaming its sender.
    expect(ClientMessageSchema.safeParse({ type: 'round-done', round: 3, microbatches: 2, lossSum: -1 }).success).toBe(false);
  });

  it('a peer a committed round found slower gets fewer microbatches next', () => {
    const sim = lanes();
    sim.speed = { a: 100, c: 200, b: 100, d: 100 };
    sim.steps(1);
    expect(sim.rc.peer('c')!.msPerMicrobatch).toBe(200);
    const w = microbatchesPerPeer(sim.rc.currentRound!.routes);
    expect(w.get('a')).toBe(3);
    expect(w.get('c')).toBe(1);
  });

  it('a peer reporting sooner than its stage’s median gets no more than an equal share, nor does one a little slower get less', () => {
    const sim = started(makeRun({ minPerStage: 3, microbatches: 6 }), ['a', 'b', 'c', 'd', 'e', 'f'], [0, 1, 0, 1, 0, 1]);
    // a reports at once (before it could have computed); e is 40 % slower than c: timing noise, not a straggler.
    sim.speed = { a: 1, c: 100, e: 140 };
    // A report carries no time to claim: one that does is refused.
    expect(ClientMessageSchema.safeParse({ type: 'round-done', round: 1, microbatches: 2, inputs: [], busyMs: 1 }).success).toBe(false);
    sim.steps(3);
    expect(sim.rc.peer('a')!.msPerMicrobatch).toBeLessThan(2);
    expect(sim.rc.peer('e')!.msPerMicrobatch).toBeCloseTo(140, 0);
    const w = microbatchesPerPeer(sim.rc.currentRound!.routes);
    expect([w.get('a'), w.get('c'), w.get('e')]).toEqual([2, 2, 2]);
  });
});

describe('RunControl: reports are checked against the routes', () => {
  it('purges a peer that reports a round done without the inputs its routes gave it, or with inputs they never gave it; the round is routed again without it and it cannot come back', () => {
    for (const lie of ['missing', 'foreign', 'other round', 'twice'] as const) {
      const sim = lanes();
      const r1 = sim.rc.currentRound!;
      const honest = inputsOf(r1.routes, r1.round, 'b');
      const forged = (m: Partial<Seal>) => ({ ...honest[0], ...m });
      const inputs = {
        missing: honest.slice(1),
        foreign: [...honest.slice(1), forged({ from: 'c' })],
        'other round': [...honest.slice(1), forged({ tag: r1.round + 1 })],
        twice: [...honest, honest[0]],
      }[lie];
      expect(sim.report('a')).toBeUndefined();
      expect(sim.report('b', r1.round, { inputs }), lie).toMatch(/^reported round \d+ done without /);
      expect(sim.rc.peer('b')?.state).toBe('gone');
      expect(sim.rc.peer('b')?.goneReason).toMatch(/^purged: reported round/);
      // The round it was in is discarded and routed again through the others; nobody was credited for it.
      expect(sim.msgs('commit').filter((c) => c.round === r1.round)).toEqual(expect.arrayContaining([expect.objectContaining({ apply: false })]));
      const r2 = sim.rc.currentRound!;
      expect(r2.step).toBe(1);
      expect(r2.routes.flat()).not.toContain('b');
      expect(sim.commits).toEqual([]);
      // Barred: neither its key nor its account may register again.
      expect(sim.rc.register('b2', { name: 'b again', key: sim.rc.peer('b')!.key, capability: cap() })).toEqual({ ok: false, reason: 'this peer was purged from the run' });
      expect(sim.rc.register('b3', { name: 'b again', key: 'f'.repeat(64), capability: cap(), account: accountOf('b') })).toEqual({
        ok: false,
        reason: 'this peer was purged from the run',
      });
    }
  });
});

describe('RunControl: spot checks', () => {
  /** A seeded stream of numbers in [0, 1) (the coordinator uses its CSPRNG). */
  const seeded = (seed: number) => () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const verdict = (sim: Sim, witness: string, a: { peer: string; microbatch: number }, ok: boolean, reason = ok ? 'agrees' : 'cos 0.1') =>
    sim.rc.onVerdict(witness, { type: 'verdict', round: sim.rc.currentRound!.round, microbatch: a.microbatch, peer: a.peer, ok, reason });
  const verifiesOf = (sim: Sim) => sim.sent.flatMap((x) => (x.msg.type === 'verify' ? [{ to: x.to, ...x.msg }] : []));
  const reportAll = (sim: Sim) => {
    const r = sim.rc.currentRound!;
    for (const id of r.work.keys()) expect(sim.report(id)).toBeUndefined();
    return r;
  };

  it('puts a new peer on probation: its work is audited every round until it passed 3 audits, then at the run’s rate', () => {
    const sim = started(makeRun({ minPerStage: 2 }), ['a', 'b', 'c', 'd'], [0, 1, 0, 1], { rate: 1e-9, random: seeded(3) });
    const audited: number[] = [];
    for (let i = 0; i < 5; i++) {
      const mark = sim.mark();
      const r = reportAll(sim);
      const audits = sim.msgs('audit', { since: mark });
      audited.push(audits.length);
      for (const a of audits) verdict(sim, a.witness, a, true);
      expect(sim.commits.at(-1)?.round).toBe(r.round);
    }
    expect(audited).toEqual([4, 4, 4, 0, 0]);
  });

  it('holds the commit until every audit is cleared; each audited peer is told its witness, each witness the frames its neighbours proved', () => {
    const sim = started(makeRun({ minPerStage: 2 }), ['a', 'b', 'c', 'd'], [0, 1, 0, 1], { rate: 1, random: seeded(7) });
    const r = reportAll(sim);
    expect(sim.commits).toEqual([]);
    const audits = sim.msgs('audit');
    const verifies = verifiesOf(sim);
    expect(audits.map((a) => a.peer).sort()).toEqual(['a', 'b', 'c', 'd']);
    for (const a of audits) {
      // The witness is the other replica of the audited peer's stage, and is told what to expect.
      const witness = { a: 'c', c: 'a', b: 'd', d: 'b' }[a.peer]!;
      expect(a.witness).toBe(witness);
      const v = verifies.find((x) => x.to === witness && x.microbatch === a.microbatch)!;
      expect(v).toMatchObject({ round: r.round, step: r.step, peer: a.peer });
      expect(Object.keys(v.frames).sort()).toEqual(sim.rc.peer(a.peer)!.stage === 0 ? ['gIn', 'yOut'] : ['dxOut', 'xIn']);
      expect(r.routes[a.microbatch]).toContain(a.peer);
    }
    for (const a of audits.slice(0, 3)) verdict(sim, a.witness, a, true);
    expect(sim.commits).toEqual([]);
    // A finding from someone who was not asked changes nothing.
    verdict(sim, 'zz', audits[3], false);
    verdict(sim, audits[3].witness, audits[3], true);
    expect(sim.commits.map((c) => c.step)).toEqual([1]);
  });

  it('a frame a receiver took out of band is audited before the round commits, even at audit rate 0; with no witness it commits unverified', () => {
    const sim = started(makeRun({ minPerStage: 2 }), ['a', 'b', 'c', 'd'], [0, 1, 0, 1], { rate: 0, random: seeded(5) });
    const r = sim.rc.currentRound!;
    const mb = r.routes.findIndex((path) => path[0] === 'a');
    const receiver = r.routes[mb][1];
    const suspect = (from: string, o: { peer?: string; microbatch?: number; round?: number } = {}) =>
      sim.rc.onSuspect(from, { type: 'suspect', round: o.round ?? r.round, peer: o.peer ?? 'a', microbatch: o.microbatch ?? mb, reason: 'RMS 0.06 is outside [2e-5, 0.02]' });
    // Only a peer the frame came to may say so, and only of a frame the round routed to it.
    const other = receiver === 'b' ? 'd' : 'b';
    expect(suspect(other)).toMatch(new RegExp(`^round \\d+ routes no frame of microbatch ${mb} from a to ${other}$`));
    expect(suspect(receiver, { peer: 'c', microbatch: mb })).toMatch(/routes no frame/);
    expect(suspect(receiver, { microbatch: 99 })).toMatch(/routes no frame/);
    expect(suspect(receiver, { round: r.round + 1 })).toBeUndefined();
    expect(suspect(receiver)).toBeUndefined();
    reportAll(sim);
    expect(sim.commits).toEqual([]);
    const audits = sim.msgs('audit');
    expect(audits).toEqual([expect.objectContaining({ peer: 'a', microbatch: mb, witness: 'c', round: r.round })]);
    verdict(sim, 'c', audits[0], true);
    expect(sim.commits.map((c) => c.step)).toEqual([1]);

    // One replica a stage: nobody can audit it, and the round is not held for it.
    const alone = started(makeRun(), ['a', 'b'], [0, 1], { rate: 0, random: seeded(5) });
    const r1 = alone.rc.currentRound!;
    expect(alone.rc.onSuspect('b', { type: 'suspect', round: r1.round, peer: 'a', microbatch: 0, reason: 'out of band' })).toBeUndefined();
    reportAll(alone);
    expect(alone.msgs('audit')).toEqual([]);
    expect(alone.commits.map((c) => c.step)).toEqual([1]);
  });

  it('a receiver whose suspect reports audits found unwarranted 3 times is no longer acted on', () => {
    // a and c on stage 0, b alone on stage 1: b receives every frame of a's. c joins at the first
    // averaging (after step 2): until then nobody can audit a, and b's reports cost it nothing.
    const sim = started(makeRun({ steps: 20 }), ['a', 'b', 'c'], [0, 1, 0], { rate: 0, random: seeded(5) });
    const audited: number[] = [];
    for (let i = 0; i < 7; i++) {
      const r = sim.rc.currentRound!;
      const mb = r.routes.findIndex((path) => path[0] === 'a');
      expect(sim.rc.onSuspect('b', { type: 'suspect', round: r.round, peer: 'a', microbatch: mb, reason: 'RMS far out' })).toBeUndefined();
      const mark = sim.mark();
      reportAll(sim);
      const audits = sim.msgs('audit', { since: mark });
      audited.push(audits.length);
      for (const a of audits) verdict(sim, a.witness, a, true);
    }
    expect(audited).toEqual([0, 0, 1, 1, 1, 0, 0]);
    expect(sim.commits).toHaveLength(7);
    // Each unconfirmed report cost b its share of the round; a report nobody could audit, nothing.
    const paid = sim.commits.map((c) => c.work.find((w) => w.peerId === 'b')!.microbatches);
    expect(paid.map((n) => n > 0)).toEqual([true, true, false, false, false, false, false]);
    expect(sim.commits.every((c) => c.work.every((w) => w.peerId === 'b' || w.microbatches > 0))).toBe(true);
    expect(sim.logs).toContain(
      `round ${sim.commits[2].round}: b is not paid for its share: its report of a's microbatch ${sim.rounds.get(sim.commits[2].round)!.routes.findIndex((p) => p[0] === 'a')} was found unwarranted`,
    );
  });

  it('a finding of wrong work with no third replica to settle it discards the round and purges nobody', () => {
    const sim = started(makeRun({ minPerStage: 2 }), ['a', 'b', 'c', 'd'], [0, 1, 0, 1], { rate: 1, random: seeded(3) });
    const r = reportAll(sim);
    const a = sim.msgs('audit').find((x) => x.peer === 'a')!;
    verdict(sim, a.witness, a, false);
    expect(sim.aborted).toEqual([
      { round: r.round, step: 1, reason: expect.stringMatching(/^c found a's microbatch \d wrong \(cos 0.1\), and no independent replica can settle it$/) },
    ]);
    expect(
      sim.rc
        .live()
        .map((p) => p.peerId)
        .sort(),
    ).toEqual(['a', 'b', 'c', 'd']);
    expect(sim.rc.currentRound!.step).toBe(1);
  });

  it('with three replicas the third settles a dispute: agreeing with the accuser it purges the accused, contradicting it the accuser', () => {
    for (const secondAgrees of [false, true]) {
      const sim = started(makeRun({ minPerStage: 3 }), ['a', 'b', 'c', 'd', 'e', 'f'], undefined, { rate: 1, random: seeded(11) });
      const r = reportAll(sim);
      const stage0 = sim.rc
        .live()
        .filter((p) => p.stage === 0)
        .map((p) => p.peerId);
      expect(stage0).toHaveLength(3);
      const audit = sim.msgs('audit').find((x) => stage0.includes(x.peer));
      if (!audit) throw new Error('no peer of stage 0 audited at rate 1');
      const mark = sim.mark();
      verdict(sim, audit.witness, audit, false);
      const second = sim.msgs('audit', { since: mark })[0];
      expect(second).toMatchObject({ peer: audit.peer, microbatch: audit.microbatch });
      expect([audit.peer, audit.witness]).not.toContain(second.witness);
      expect(verifiesOf(sim).slice(-1)).toEqual([expect.objectContaining({ to: second.witness, peer: audit.peer, microbatch: audit.microbatch })]);
      verdict(sim, second.witness, second, secondAgrees, secondAgrees ? 'agrees' : 'rel 0.4');
      const purged = secondAgrees ? audit.witness : audit.peer;
      expect(sim.rc.peer(purged)?.goneReason).toMatch(
        secondAgrees
          ? /^purged: it found \w+'s microbatch \d+ of round \d+ wrong, and 1 of 1 independent replicas recomputing it found it right$/
          : /^purged: its accuser and 1 of 1 independent replicas found its microbatch \d+ of round \d+ wrong: cos 0.1; rel 0.4$/,
      );
      expect(sim.rc.live().map((p) => p.peerId)).not.toContain(purged);
      expect(sim.rc.live()).toHaveLength(5);
      // The round was discarded (its purged peer was in it), or commits once the rest is cleared.
      if (r.work.has(purged)) expect(sim.aborted.map((x) => x.round)).toContain(r.round);
    }
  });

  it('a witness that got no bundle purges nobody when a panel recomputes it right; an accused that shows it to nobody is purged', () => {
    for (const shownToPanel of [true, false]) {
      const sim = started(makeRun({ minPerStage: 3 }), ['a', 'b', 'c', 'd', 'e', 'f'], undefined, { rate: 1, random: seeded(11) });
      const r = reportAll(sim);
      const audits = sim.msgs('audit');
      const audit = audits[0];
      const mark = sim.mark();
      const missing = {
        type: 'verdict' as const,
        round: r.round,
        microbatch: audit.microbatch,
        peer: audit.peer,
        ok: false,
        reason: `no bundle from ${audit.peer} within 8000 ms`,
        missing: true as const,
      };
      sim.rc.onVerdict(audit.witness, missing);
      const second = sim.msgs('audit', { since: mark })[0];
      expect(second).toMatchObject({ peer: audit.peer, microbatch: audit.microbatch });
      if (shownToPanel) verdict(sim, second.witness, second, true);
      else sim.rc.onVerdict(second.witness, missing);
      if (!shownToPanel) {
        expect(sim.rc.peer(audit.peer)?.goneReason).toMatch(
          /^purged: it showed its microbatch \d+ of round \d+ neither to its accuser nor to 1 of 1 independent replicas that asked: no bundle/,
        );
        expect(sim.rc.live()).toHaveLength(5);
        continue;
      }
      expect(sim.rc.live()).toHaveLength(6);
      // The rest of the round's audits agree: it commits, the accused paid.
      for (const a of audits.slice(1)) verdict(sim, a.witness, a, true);
      expect(sim.commits.map((c) => c.step)).toEqual([1]);
      expect(sim.commits[0].work.find((w) => w.peerId === audit.peer)?.microbatches).toBe(r.work.get(audit.peer));
    }
  });

  it('with six replicas two colluders cannot purge an honest one: a split panel widens to every independent replica, and its majority purges the accuser and its voucher', () => {
    const ids = Array.from({ length: 12 }, (_, i) => `p${String(i).padStart(2, '0')}`);
    const sim = started(makeRun({ minPerStage: 6 }), ids, undefined, { rate: 1, random: seeded(23) });
    reportAll(sim);
    const audit = sim.msgs('audit')[0];
    const accused = audit.peer;
    const accuser = audit.witness;
    let mark = sim.mark();
    verdict(sim, accuser, audit, false);
    const panel = sim.msgs('audit', { since: mark });
    // A third of six: a panel of two, neither of them a party.
    expect(panel.map((a) => a.peer)).toEqual([accused, accused]);
    expect(panel.map((a) => a.witness)).not.toContain(accuser);
    const [voucher, honest] = panel.map((a) => a.witness);
    mark = sim.mark();
    verdict(sim, voucher, audit, false, 'cos 0.2');
    verdict(sim, honest, audit, true);
    // Split: the two other replicas of the stage are asked too.
    const widened = sim.msgs('audit', { since: mark }).map((a) => a.witness);
    expect(widened).toHaveLength(2);
    expect([accused, accuser, voucher, honest].some((p) => widened.includes(p))).toBe(false);
    for (const w of widened) verdict(sim, w, audit, true);
    expect(sim.rc.peer(accuser)?.goneReason).toMatch(/^purged: it found \w+'s microbatch \d+ of round \d+ wrong, and 3 of 4 independent replicas recomputing it found it right$/);
    expect(sim.rc.peer(voucher)?.goneReason).toMatch(/^purged: it found .* wrong, and 3 of 4 independent/);
    expect(sim.rc.live().map((p) => p.peerId)).toContain(accused);
    expect(sim.rc.live()).toHaveLength(10);
  });

  it('audits nobody answers let the round commit after the limit; a second opinion that never comes discards the round', () => {
    const sim = started(makeRun({ minPerStage: 2 }), ['a', 'b', 'c', 'd'], [0, 1, 0, 1], { rate: 1, random: seeded(5) });
    reportAll(sim);
    sim.clock += 1000;
    sim.rc.auditsTimedOut(2000);
    expect(sim.commits).toEqual([]);
    sim.clock += 1500;
    sim.rc.auditsTimedOut(2000);
    expect(sim.commits.map((c) => c.step)).toEqual([1]);

    const three = started(makeRun({ minPerStage: 3 }), ['a', 'b', 'c', 'd', 'e', 'f'], undefined, { rate: 1, random: seeded(9) });
    const r = reportAll(three);
    const audit = three.msgs('audit')[0];
    verdict(three, audit.witness, audit, false);
    three.clock += 2500;
    three.rc.auditsTimedOut(2000);
    expect(three.aborted).toEqual([
      {
        round: r.round,
        step: 1,
        reason: `a disputed audit of round ${r.round} was not settled within 2000 ms: no panel member answered on ${audit.witness}'s finding against ${audit.peer}`,
      },
    ]);
    expect(three.rc.live()).toHaveLength(6);
  });

  it('a witness that leaves 2 audits unanswered holds at most 2 rounds for the limit, is not paid for them, then is drawn as a witness no more', () => {
    const sim = started(makeRun({ minPerStage: 3, steps: 30 }), ['a', 'b', 'c', 'd', 'e', 'f'], undefined, { rate: 1, random: seeded(11) });
    let silent: string | undefined;
    let held = 0;
    let unanswered = 0;
    let fined = 0;
    for (let i = 0; i < 30; i++) {
      const mark = sim.mark();
      const r = reportAll(sim);
      const audits = sim.msgs('audit', { since: mark });
      silent ??= audits[0].witness;
      const drawn = audits.some((a) => a.witness === silent);
      if (unanswered >= 2) expect(drawn).toBe(false);
      unanswered += audits.filter((a) => a.witness === silent).length;
      for (const a of audits) if (a.witness !== silent) verdict(sim, a.witness, a, true);
      // Held for the limit exactly when it was drawn and stayed silent.
      expect(sim.commits.at(-1)?.round !== r.round).toBe(drawn);
      if (drawn) {
        held++;
        sim.clock += 2500;
        sim.rc.auditsTimedOut(2000);
      }
      expect(sim.commits.at(-1)?.round).toBe(r.round);
      // Silence past the limit costs its share of the round (honest witnesses answer "missing" well before).
      const pay = sim.commits.at(-1)!.work.find((w) => w.peerId === silent)!.microbatches;
      expect(pay === 0).toBe(drawn && r.work.has(silent));
      if (pay === 0) fined++;
    }
    expect(unanswered).toBe(2);
    expect(fined).toBe(held);
    expect(held).toBeLessThanOrEqual(2);
    // It still trains: silence costs it the witness's seat, not its place.
    expect(sim.rc.live().map((p) => p.peerId)).toContain(silent);
  });

  /** a, c, e on stage 0 and b, d, f on stage 1, all linked but e, which has no channel to a replica of its stage. */
  function eUnwitnessed(): Sim {
    const sim = new Sim(makeRun({ minPerStage: 2 }), { rate: 1, random: seeded(4) });
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) sim.join(id);
    sim.linkAll();
    sim.rc.onLinks('e', ['b', 'd', 'f']);
    return sim;
  }

  it('with spot checks on, a stage starts once its ready peers are linked to their witnesses, and says so while it waits', () => {
    const sim = eUnwitnessed();
    sim.rc.onLinks('a', ['b', 'd', 'f']);
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) sim.rc.onReady(id, 0);
    expect(sim.rc.phase).toBe('waiting');
    expect(sim.rc.reason).toBe('waiting for peers (ready and linked to their witnesses stage 0: 0/2, stage 1: 2/2)');
    sim.rc.onLinks('a', ['b', 'c', 'd', 'f']);
    expect(sim.rc.phase).toBe('training');
  });

  it('before the start, a witness that never links is replaced after its grace by the timer alone: no message need come', () => {
    // A stage of three where one replica links to none of its stage: a set drawn with it in stays unchecked until redrawn.
    let waited = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const sim = new Sim(makeRun({ minPerStage: 2 }), { rate: 1, random: seeded(seed) });
      for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) sim.join(id);
      sim.linkAll();
      const stage0 = sim.rc
        .live()
        .filter((p) => p.stage === 0)
        .map((p) => p.peerId);
      const loner = stage0[2];
      sim.rc.onLinks(
        loner,
        sim.told(loner).flatMap((q) => (q.stage === 0 ? [] : [q.peerId])),
      );
      // Ready first, it is the only candidate of the next one ready: sets are drawn once a stage has its quorum.
      for (const id of [loner, ...['a', 'b', 'c', 'd', 'e', 'f'].filter((x) => x !== loner)]) sim.rc.onReady(id, 0);
      if (sim.rc.phase !== 'waiting') continue;
      waited++;
      sim.clock += GRACE_MS - 1;
      sim.rc.recheckStart();
      expect(sim.rc.phase).toBe('waiting');
      sim.clock += 2;
      sim.rc.recheckStart();
      expect(sim.rc.phase, sim.rc.reason).toBe('training');
    }
    expect(waited, 'some seed drew the unlinked replica into a set').toBeGreaterThan(0);
  });

  it('routes no work to a replica no witness can check until its channel to one opens, then audits it', () => {
    const sim = eUnwitnessed();
    for (const id of ['a', 'b', 'c', 'd', 'e', 'f']) sim.rc.onReady(id, 0);
    const clearRound = () => {
      const mark = sim.mark();
      reportAll(sim);
      const audits = sim.msgs('audit', { since: mark });
      for (const a of audits) verdict(sim, a.witness, a, true);
      return audits.map((a) => a.peer);
    };
    expect(sim.rc.phase).toBe('training');
    expect(sim.rc.currentRound!.routes.flat()).not.toContain('e');
    clearRound();
    // Round 2 was routed before e's channel opened; the round after it is not.
    sim.rc.onLinks('e', ['a', 'b', 'c', 'd', 'f']);
    expect(sim.rc.currentRound!.routes.flat()).not.toContain('e');
    clearRound();
    expect(sim.commits.map((c) => c.step)).toEqual([1, 2]);
    expect(sim.rc.currentRound!.routes.flat()).toContain('e');
    expect(clearRound()).toContain('e');
  });
});

describe('RunControl: failure mid-round', () => {
  it('discards the round of a lost peer and routes the same step again through the survivors', () => {
    const sim = lanes();
    sim.steps(1);
    const r2 = sim.rc.currentRound!;
    expect(r2.step).toBe(2);
    expect(sim.report('a')).toBeUndefined();
    expect(sim.report('b')).toBeUndefined();
    const mark = sim.mark();
    sim.rc.onGone('d', 'connection closed');

    // The round is discarded everywhere that is left…
    const discards = sim.msgs('commit', { since: mark });
    expect(discards.map((m) => m.peer).sort()).toEqual(['a', 'b', 'c']);
    for (const m of discards) expect(m).toMatchObject({ round: r2.round, step: 2, apply: false });
    expect(sim.aborted).toEqual([{ round: r2.round, step: 2, reason: expect.stringContaining('d was lost') }]);
    expect(
      sim
        .msgs('peer-lost', { since: mark })
        .map((m) => m.peer)
        .sort(),
    ).toEqual(['a', 'b', 'c']);
    // …and step 2 is routed again, as a new round, without d.
    const r3 = sim.rc.currentRound!;
    expect(r3.round).toBeGreaterThan(r2.round);
    expect(r3.step).toBe(2);
    expect(r3.routes).toHaveLength(4);
    for (const path of r3.routes) expect(path[1]).toBe('b');
    expect(r3.routes.flat()).not.toContain('d');
    expect(sim.rc.step).toBe(1);

    // A late report for the discarded round changes nothing.
    expect(sim.report('c', r2.round)).toBeUndefined();
    expect(sim.rc.onRoundDone('d', { type: 'round-done', round: r2.round, microbatches: 2, lossSum: 1, inputs: [] })).toBeUndefined();
    expect(sim.commits).toHaveLength(1);
    expect(sim.rc.currentRound).toBe(r3);

    sim.steps(3);
    expect(sim.commits.map((c) => c.step)).toEqual([1, 2, 3, 4]);
    expect(sim.commits[1].round).toBe(r3.round);
    expect(sim.commits[1].work.find((w) => w.peerId === 'b')?.microbatches).toBe(4);
    sim.checkCredit();
  });

  it('a graceful leave of a routed peer that is not the last of its stage also discards and re-routes', () => {
    const sim = lanes();
    const r1 = sim.rc.currentRound!;
    sim.answer(['c']);
    sim.rc.onGone('c', 'leave: pause', {});
    expect(sim.msgs('handoff')).toEqual([]);
    expect(sim.aborted.map((a) => a.round)).toEqual([r1.round]);
    expect(sim.rc.currentRound!.step).toBe(1);
    for (const path of sim.rc.currentRound!.routes) expect(path[0]).toBe('a');
    sim.steps(2);
    sim.checkCredit();
  });

  it('a stalled peer discards the round and the stalled channel is routed around', () => {
    const sim = lanes();
    sim.steps(1);
    const r = sim.rc.currentRound!;
    // Stalls that do not concern the round are ignored.
    sim.rc.onStalled('b', { type: 'stalled', round: r.round - 1, from: 'a', reason: 'old' });
    sim.rc.onStalled('e', { type: 'stalled', round: r.round, from: 'a', reason: 'not in it' });
    expect(sim.rc.currentRound).toBe(r);
    // A stall is blamed only on a neighbour of the reporter's own path: naming anyone else is refused and changes nothing.
    expect(sim.rc.onStalled('b', { type: 'stalled', round: r.round, from: 'nobody', reason: 'made up' })).toBe(`round ${r.round} routes nothing between b and nobody`);
    expect(sim.rc.onStalled('b', { type: 'stalled', round: r.round, from: 'c', reason: 'another lane' })).toBe(`round ${r.round} routes nothing between b and c`);
    expect(sim.rc.currentRound).toBe(r);
    sim.rc.onStalled('b', { type: 'stalled', round: r.round, from: 'a', reason: 'no activation in time' });
    expect(sim.aborted).toEqual([{ round: r.round, step: 2, reason: expect.stringContaining('b waited in vain for a') }]);
    expect(
      sim
        .msgs('commit')
        .filter((m) => !m.apply)
        .map((m) => m.peer)
        .sort(),
    ).toEqual(['a', 'b', 'c', 'd']);
    const again = sim.rc.currentRound!;
    expect(again.step).toBe(2);
    expect(again.round).toBeGreaterThan(r.round);
    for (const path of again.routes) expect(path).not.toEqual(['a', 'b']);
    expect(again.routes.flat()).toContain('a'); // a still works, over its other channel
    sim.steps(2);
    sim.checkCredit();
  });

  it('hands the spare microbatch of a round to each of the tied peers in turn: over rounds they earn alike', () => {
    const sim = started(makeRun({ microbatches: 3, minPerStage: 2, steps: 20 }), ['a', 'b', 'c', 'd'], [0, 1, 0, 1]);
    const total = new Map<string, number>();
    for (let i = 0; i < 6; i++) {
      for (const [peer, n] of sim.rc.currentRound!.work) total.set(peer, (total.get(peer) ?? 0) + n);
      sim.answer();
    }
    expect(Object.fromEntries(total)).toEqual({ a: 9, b: 9, c: 9, d: 9 });
  });

  it('a stall cuts only the channel it names, for 50 rounds: a peer blaming its neighbours round after round runs out of channels, and each loses only the one to it', () => {
    const sim = started(makeRun({ minPerStage: 3, steps: 200 }), ['a', 'b', 'c', 'd', 'e', 'f'], [0, 1, 0, 1, 0, 1]);
    const blamed = new Set<string>();
    for (let i = 0; i < 20 && sim.rc.currentRound!.work.has('b'); i++) {
      const r = sim.rc.currentRound!;
      const path = r.routes.find((p) => p.includes('b'))!;
      sim.rc.onStalled('b', { type: 'stalled', round: r.round, from: path[0], reason: 'nothing came' });
      blamed.add(path[0]);
    }
    // Each stall cut one of b's 3 channels, never the same twice: then b has none left to be routed over.
    expect([...blamed].sort()).toEqual(['a', 'c', 'e']);
    expect(sim.aborted).toHaveLength(3);
    // The peers it blamed still take work (over their channels to d and f), and the rounds commit.
    for (let i = 0; i < 5; i++) {
      expect(sim.rc.currentRound!.routes.flat()).not.toContain('b');
      expect(sim.rc.currentRound!.work.has('a') && sim.rc.currentRound!.work.has('c') && sim.rc.currentRound!.work.has('e')).toBe(true);
      sim.answer();
    }
    // Its channels reporting open again changes nothing; 50 rounds on, they are routed again.
    sim.linkAll();
    sim.answer();
    expect(sim.rc.currentRound!.routes.flat()).not.toContain('b');
    for (let i = 0; i < 50; i++) sim.answer();
    expect(sim.rc.currentRound!.routes.flat()).toContain('b');
  });

  it('cuts are routed around only while a path remains: with every channel cut, the run goes on over them', () => {
    const sim = lanes();
    for (let i = 0; i < 2; i++) {
      const r = sim.rc.currentRound!;
      const [x, y] = r.routes[0];
      sim.rc.onStalled(y, { type: 'stalled', round: r.round, from: x, reason: 'nothing came' });
    }
    sim.steps(2);
    expect(sim.commits.map((c) => c.step)).toEqual([1, 2]);
  });

  it('a channel of the round going down discards and re-routes; other channels do not', () => {
    const sim = lanes();
    const r = sim.rc.currentRound!;
    // a–d is no hop of lanes a→b, c→d: the round goes on.
    sim.rc.onLinks('a', ['b', 'c']);
    expect(sim.rc.currentRound).toBe(r);
    expect(sim.aborted).toEqual([]);
    // c–d is.
    sim.rc.onLinks('d', ['a', 'b']);
    expect(sim.aborted).toEqual([{ round: r.round, step: 1, reason: expect.stringContaining('between d and c closed') }]);
    const again = sim.rc.currentRound!;
    expect(again.step).toBe(1);
    for (const path of again.routes) {
      expect(path).not.toEqual(['c', 'd']);
      expect(path).not.toEqual(['a', 'd']);
    }
    sim.steps(3);
    sim.checkCredit();
  });

  it('a round that timed out is discarded and the same step routed again', () => {
    const sim = lanes();
    sim.steps(2);
    const r = sim.rc.currentRound!;
    sim.clock += 60_001;
    sim.rc.watchRound(60_000);
    expect(sim.aborted).toEqual([{ round: r.round, step: 3, reason: expect.stringContaining('more than 60000 ms') }]);
    expect(sim.rc.currentRound).toMatchObject({ step: 3 });
    expect(sim.rc.currentRound!.round).toBeGreaterThan(r.round);
    // d's answer to the discarded round arrives late: nothing happens.
    expect(sim.report('d', r.round)).toBeUndefined();
    expect(sim.rc.step).toBe(2);
    sim.steps(2);
    expect(sim.commits.map((c) => c.step)).toEqual([1, 2, 3, 4]);
    sim.checkCredit();
  });

  it('a peer that withholds its report is asked what it waits for once long late; still silent, it loses every channel and the round goes on without it', () => {
    const sim = started(makeRun({ microbatches: 6, minPerStage: 3 }), ['a', 'b', 'c', 'd', 'e', 'f'], [0, 1, 0, 1, 0, 1]);
    sim.steps(1);
    const withheld: number[] = [];
    for (let i = 0; i < 6 && sim.rc.currentRound!.work.has('f'); i++) {
      const r = sim.rc.currentRound!;
      const mark = sim.mark();
      sim.clock += 1000;
      sim.answer(['f']);
      // The others took 1.25 s: f has max(5 s, 2 × 1.25 s) more before it is asked.
      sim.clock += 4_999;
      sim.rc.watchRound(600_000);
      expect(sim.msgs('late', { since: mark })).toEqual([]);
      sim.clock += 2;
      sim.rc.watchRound(600_000);
      expect(sim.msgs('late', { since: mark })).toEqual([{ type: 'late', round: r.round, peer: 'f' }]);
      // It does not answer: 5 s later the round goes on without it.
      sim.clock += 4_999;
      sim.rc.watchRound(600_000);
      expect(sim.rc.currentRound).toBe(r);
      sim.clock += 2;
      sim.rc.watchRound(600_000);
      expect(sim.aborted.at(-1)).toEqual({ round: r.round, step: 2, reason: `f had not reported round ${r.round} long after the others had, nor said what it waited for` });
      withheld.push(r.round);
    }
    // One round: it lost every channel at once.
    expect(withheld).toHaveLength(1);
    expect(sim.rc.currentRound!.work.has('f')).toBe(false);
    sim.steps(2);
    expect(sim.commits.map((c) => c.step)).toEqual([1, 2, 3]);
    expect(sim.rc.live().map((p) => p.peerId)).toContain('f');
  });

  it("a round nobody reports, long past its peers' measured speeds, asks every routed peer once what it waits for, so a stuck peer is named; the silent are not benched", () => {
    const sim = started(makeRun({ microbatches: 6, minPerStage: 3 }), ['a', 'b', 'c', 'd', 'e', 'f'], [0, 1, 0, 1, 0, 1]);
    // Nobody is measured in the first round (nor is a newcomer later): it waits for the limit alone.
    sim.clock += 30_000;
    sim.rc.watchRound(600_000);
    expect(sim.msgs('late')).toEqual([]);
    sim.steps(1);
    const r = sim.rc.currentRound!;
    const mark = sim.mark();
    // Each peer reported the last round 30 s after its start: asked after max(5 s, 2 × 30 s) with no report at all.
    sim.clock += 59_999;
    sim.rc.watchRound(600_000);
    expect(sim.msgs('late', { since: mark })).toEqual([]);
    sim.clock += 2;
    sim.rc.watchRound(600_000);
    const asked = sim.msgs('late', { since: mark }) as Array<{ peer: string }>;
    expect(asked.map((m) => m.peer).sort()).toEqual([...r.work.keys()].sort());
    // Nobody answers: asked once, nobody benched, the round waits on.
    sim.clock += 10_000;
    sim.rc.watchRound(600_000);
    expect(sim.msgs('late', { since: mark })).toHaveLength(asked.length);
    expect(sim.rc.currentRound).toBe(r);
    // A stage-0 peer names the stage-1 peer it waits for: that channel is cut and the round is routed again.
    const [a, b] = r.routes[0];
    expect(sim.rc.onStalled(a, { type: 'stalled', round: r.round, from: b, reason: `still waiting for ${b}'s gradient frame` })).toBeUndefined();
    expect(sim.aborted.at(-1)?.reason).toContain(`${a} waited in vain for ${b}`);
    expect(sim.rc.currentRound!.routes.some((path) => path.join() === [a, b].join())).toBe(false);
    sim.steps(2);
    expect(sim.commits.map((c) => c.step)).toEqual([1, 2, 3]);
  });

  it('a peer late because a neighbour withheld its frame names it when asked: only that channel is cut, and nobody is benched', () => {
    const sim = started(makeRun({ microbatches: 6, minPerStage: 3 }), ['a', 'b', 'c', 'd', 'e', 'f'], [0, 1, 0, 1, 0, 1]);
    sim.steps(1);
    const r = sim.rc.currentRound!;
    // b reported (it claims to have sent its gradients); a, on one of b's paths, still waits for one.
    const a = r.routes.find((p) => p[1] === 'b')![0];
    sim.answer([a]);
    sim.clock += 5_001;
    sim.rc.watchRound(600_000);
    expect(sim.msgs('late')).toEqual([{ type: 'late', round: r.round, peer: a }]);
    expect(sim.rc.onStalled(a, { type: 'stalled', round: r.round, from: 'b', reason: "still waiting for b's gradient frame" })).toBeUndefined();
    expect(sim.aborted.at(-1)?.reason).toContain(`${a} waited in vain for b`);
    const again = sim.rc.currentRound!;
    expect(again.routes.some((path) => path.join() === [a, 'b'].join())).toBe(false);
    expect(again.work.has(a) && again.work.has('b')).toBe(true);
    sim.steps(2);
  });

  it('never commits a step twice through several failures in a row', () => {
    const sim = started(makeRun({ microbatches: 6, minPerStage: 3 }), ['a', 'b', 'c', 'd', 'e', 'f'], [0, 1, 0, 1, 0, 1]);
    sim.steps(1);
    sim.answer(['b']);
    sim.rc.onGone('a', 'lost');
    sim.answer(['d']);
    sim.clock += 2;
    sim.rc.watchRound(1);
    sim.answer(['c', 'e']);
    sim.rc.onGone('f', 'lost');
    sim.steps(4);
    expect(sim.commits.map((c) => c.step)).toEqual([1, 2, 3, 4, 5]);
    expect(sim.aborted.map((a) => a.step)).toEqual([2, 2, 2]);
    sim.checkCredit();
  });
});

describe('RunControl: joining after the start', () => {
  it('places a joiner, loads it from the replicas, and routes it only after it listened at averaging', () => {
    const sim = started(makeRun({ averageEvery: 2 }), ['a', 'b'], [0, 1]);
    // b is three times slower than a: stage 1 has the least capacity.
    sim.speed = { a: 100, b: 300 };
    sim.steps(1);
    const mark = sim.mark();
    const j = sim.join('j');
    expect(j).toEqual({ ok: true, stage: 1 });
    expect(sim.last('j', 'assign')).toMatchObject({ stage: 1, state: { from: 'replica', peers: ['b'] } });
    expect(sim.told('a')).toContainEqual(expect.objectContaining({ peerId: 'j', stage: 1, name: 'peer j' }));
    sim.linkAll();
    sim.rc.onReady('j', 0);
    expect(sim.rc.peer('j')!.state).toBe('ready');
    expect(sim.roundsOf('j')).toEqual([]);

    // Step 2 is an averaging step: j listens.
    sim.steps(1);
    const avg = sim.msgs('commit', { since: mark }).filter((m) => m.step === 2);
    expect(avg.map((m) => m.peer).sort()).toEqual(['a', 'b', 'j']);
    expect(avg[0].average).toEqual({ members: [['a'], ['b']], listeners: [[], ['j']] });
    expect(sim.rc.peer('j')!.state).toBe('active');
    // From the next round on, j computes.
    const r3 = sim.rc.currentRound!;
    expect(r3.step).toBe(3);
    expect(microbatchesPerPeer(r3.routes).get('j')).toBeGreaterThan(0);
    expect(sim.roundsOf('j')).toEqual([r3.round]);
    expect(sim.commits.every((c) => c.work.every((w) => w.peerId !== 'j'))).toBe(true);
    sim.steps(2);
    expect(sim.commits.at(-1)!.work.some((w) => w.peerId === 'j')).toBe(true);
    sim.checkCredit();
  });

  it('a joiner not ready at an averaging commit waits for the next one', () => {
    const sim = started(makeRun({ averageEvery: 2 }), ['a', 'b'], [0, 1]);
    sim.steps(1);
    sim.join('j');
    sim.linkAll();
    sim.steps(1); // averaging at step 2 while j is setting up
    expect(sim.rc.peer('j')!.state).toBe('setup');
    sim.rc.onReady('j', 2);
    sim.steps(1);
    expect(sim.rc.peer('j')!.state).toBe('ready');
    expect(sim.roundsOf('j')).toEqual([]);
    sim.steps(1); // averaging at step 4
    expect(
      sim
        .msgs('commit')
        .filter((m) => m.step === 4)[0]
        .average!.listeners.flat(),
    ).toEqual(['j']);
    expect(sim.roundsOf('j')).toEqual([sim.rc.currentRound!.round]);
  });
});

describe('RunControl: stage hashes after averaging', () => {
  it('purges a member most of its stage’s other replicas left out of the average as no replica’s, and not on one replica’s word', () => {
    const sim = started(makeRun({ minPerStage: 3, averageEvery: 2, steps: 20 }), ['a', 'b', 'c', 'd', 'e', 'f']);
    sim.answer();
    sim.answer();
    const [x, y, z] = sim.rc
      .live()
      .filter((p) => p.stage === 0)
      .map((p) => p.peerId);
    const other = sim.rc.live().find((p) => p.stage === 1)!.peerId;
    const hash = 'a'.repeat(64);
    sim.rc.onCheckpoint(y, { type: 'checkpoint', step: 2, hash, outliers: [x] });
    sim.rc.onCheckpoint(other, { type: 'checkpoint', step: 2, hash, outliers: [x] }); // another stage's replica has no say
    sim.rc.onCheckpoint(y, { type: 'checkpoint', step: 4, hash, outliers: [x] }); // a step not committed yet
    expect(sim.rc.peer(x)?.state).toBe('active');
    sim.rc.onCheckpoint(z, { type: 'checkpoint', step: 2, hash, outliers: [x] });
    expect(sim.rc.peer(x)?.goneReason).toBe(`purged: its weights at the averaging after step 2 moved beyond any replica's training, as 2 of 2 of its stage's replicas found`);
  });

  it('a joiner is told the hash most replicas vouched for, and one that loads a state they do not vouch for (another hash, a step nobody reported or past the last commit) loads again', () => {
    const sim = started(makeRun({ minPerStage: 3, averageEvery: 2, steps: 20 }), ['a', 'b', 'c', 'd', 'e', 'f']);
    sim.answer();
    sim.answer();
    const stage0 = sim.rc.live().filter((p) => p.stage === 0);
    const good = 'a'.repeat(64);
    sim.rc.onCheckpoint(stage0[0].peerId, { type: 'checkpoint', step: 2, hash: good });
    // One vote of three is no majority: nothing is vouched for yet.
    expect(sim.rc.register('j0', { name: 'j0', key: '8'.repeat(64), capability: cap() }).ok).toBe(true);
    const j0 = sim.last('j0', 'assign')!;
    expect(j0.state).toEqual({ from: 'replica', peers: expect.any(Array) });
    const hashOf = (stage: number) => (stage === 0 ? good : 'c'.repeat(64));
    for (const p of sim.rc.live()) if (p.state === 'active' && p !== stage0[0]) sim.rc.onCheckpoint(p.peerId, { type: 'checkpoint', step: 2, hash: hashOf(p.stage) });
    const placed = sim.rc.register('j', { name: 'joiner', key: '9'.repeat(64), capability: cap() });
    if (!placed.ok) throw new Error(placed.reason);
    expect(sim.last('j', 'assign')!.state).toEqual({ from: 'replica', peers: expect.any(Array), vouched: { step: 2, hash: hashOf(placed.stage) } });
    const mark = sim.mark();
    sim.rc.onReady('j', 2, 'b'.repeat(64));
    expect(sim.rc.peer('j')!.state).toBe('setup');
    expect(sim.msgs('assign', { since: mark, to: 'j' })).toHaveLength(1);
    // A newer state than the one vouched for (a poisoner's claim of an averaging since): nobody reported it, or it is past the last commit.
    sim.rc.onReady('j', 1, hashOf(placed.stage));
    sim.rc.onReady('j', 3, hashOf(placed.stage));
    expect(sim.msgs('assign', { since: mark, to: 'j' })).toHaveLength(3);
    expect(sim.logs.filter((l) => l.startsWith('j loaded')).slice(-2)).toEqual([
      `j loaded a state of stage ${placed.stage} at step 1 its replicas do not vouch for (no replica of stage ${placed.stage} reported a state at step 1): loading again`,
      `j loaded a state of stage ${placed.stage} at step 3 its replicas do not vouch for (step 3 is past the run's last commit, step 2): loading again`,
    ]);
    sim.rc.onReady('j', 2, hashOf(placed.stage));
    expect(sim.rc.peer('j')!.state).toBe('ready');
  });

  it('has a replica whose weights after averaging are not the ones most of its stage hold load the stage’s state again', () => {
    const sim = started(makeRun({ minPerStage: 3, averageEvery: 2, steps: 20 }), ['a', 'b', 'c', 'd', 'e', 'f']);
    sim.answer();
    sim.answer();
    const [x, y, z] = sim.rc
      .live()
      .filter((p) => p.stage === 0)
      .map((p) => p.peerId);
    const good = 'a'.repeat(64);
    sim.rc.onCheckpoint(x, { type: 'checkpoint', step: 2, hash: 'f'.repeat(64) });
    sim.rc.onCheckpoint(y, { type: 'checkpoint', step: 2, hash: good });
    expect(sim.rc.peer(x)!.state).toBe('active'); // one against one: no majority of three
    const mark = sim.mark();
    sim.rc.onCheckpoint(z, { type: 'checkpoint', step: 2, hash: good });
    expect(sim.rc.peer(x)!.state).toBe('setup');
    expect(sim.msgs('assign', { since: mark, to: x })).toEqual([
      expect.objectContaining({ stage: 0, state: { from: 'replica', peers: [y, z].sort(), vouched: { step: 2, hash: good } } }),
    ]);
  });

  it('counts one vote per active member for a recent averaging step; the hash most members report is the stage’s', () => {
    const sim = started(makeRun({ minPerStage: 3, averageEvery: 2, steps: 20 }), ['a', 'b', 'c', 'd', 'e', 'f']);
    // Two steps committed, no checkpoint reported yet (sim.steps would report them).
    sim.answer();
    sim.answer();
    expect(sim.rc.step).toBe(2);
    const stage0 = sim.rc
      .live()
      .filter((p) => p.stage === 0)
      .map((p) => p.peerId);
    const [x, y, z] = stage0;
    const good = 'a'.repeat(64);
    const fake = 'f'.repeat(64);
    sim.rc.onCheckpoint(x, { type: 'checkpoint', step: 2, hash: fake }); // first, but alone
    sim.rc.onCheckpoint(x, { type: 'checkpoint', step: 2, hash: fake }); // once per member
    sim.rc.onCheckpoint(y, { type: 'checkpoint', step: 2, hash: good });
    sim.rc.onCheckpoint(z, { type: 'checkpoint', step: 2, hash: good });
    sim.rc.onCheckpoint(y, { type: 'checkpoint', step: 1, hash: fake }); // not an averaging step
    sim.rc.onCheckpoint(y, { type: 'checkpoint', step: 4, hash: fake }); // not committed yet
    expect(sim.rc.register('j', { name: 'joiner', key: '9'.repeat(64), capability: cap() }).ok).toBe(true); // still ready-less: no vote
    sim.rc.onCheckpoint('j', { type: 'checkpoint', step: 2, hash: fake });
    // All of stage 0 is lost: only a peer holding the agreed state may bring it back.
    for (const id of stage0) sim.rc.onGone(id, 'crashed');
    const back = (id: string, hash: string) =>
      sim.rc.register(id, { name: id, key: id.padEnd(64, '0'), capability: cap(), held: [{ runId: sim.run.runId, stage: 0, step: 2, hash }] });
    const fakeBack = back('a1', fake);
    expect(fakeBack.ok && sim.last('a1', 'assign')!.state).not.toEqual(expect.objectContaining({ from: 'own' }));
    const b1 = back('b1', good);
    expect(b1).toEqual({ ok: true, stage: 0 });
    expect(sim.last('b1', 'assign')!.state).toEqual({ from: 'own', step: 2, hash: good });
  });
});

describe('RunControl: the last replica of a stage lost', () => {
  /** Steps 1–5 committed (averaged at 2 and 4), the round of step 6 in flight: b, stage 1's only peer, is lost. */
  function orphaned() {
    const sim = started(makeRun(SMALL_LAST_STAGE), ['a', 'b'], [0, 1]);
    sim.steps(5);
    expect(sim.rc.currentRound!.step).toBe(6);
    const mark = sim.mark();
    sim.rc.onGone('b', 'connection closed');
    return { sim, mark };
  }

  it('pauses the run, waiting for a peer for that stage', () => {
    const { sim, mark } = orphaned();
    expect(sim.msgs('commit', { since: mark })).toEqual([expect.objectContaining({ peer: 'a', step: 6, apply: false })]);
    expect(sim.rc.currentRound).toBeUndefined();
    expect(sim.rc.phase).toBe('paused');
    expect(sim.rc.reason).toBe('waiting for a peer for stage 1 (its newest state, step 4, is with peer b)');
    expect(sim.last('a', 'status')).toMatchObject({ phase: 'paused', reason: sim.rc.reason, step: 5 });
    expect(sim.msgs('round', { since: mark })).toEqual([]);
  });

  it('a stage lost before its first averaging restarts from the seed: no pause waiting for a peer, a fresh peer takes it', () => {
    const sim = started(makeRun(SMALL_LAST_STAGE), ['a', 'b'], [0, 1]);
    sim.steps(1); // no averaging yet (averageEvery 2): the stage's newest state is the seeded init
    sim.rc.onGone('b', 'connection closed');
    expect(sim.rc.reason).toBe('waiting for a peer for stage 1');
    expect(sim.join('c')).toEqual({ ok: true, stage: 1 });
    expect(sim.last('c', 'assign')!.state).toEqual({ from: 'seed' });
    sim.linkAll();
    sim.rc.onReady('c', 0);
    expect(sim.rc.phase).toBe('training');
    expect(sim.rc.currentRound!.step).toBe(2);
  });

  it('a peer loading from the lost replica loads anew from the peer that brings the state back', () => {
    // j fits only stage 1; it is placed there, loading from b, while b is alive.
    const sim = started(makeRun(SMALL_LAST_STAGE), ['a', 'b'], [0, 1]);
    sim.steps(5);
    expect(sim.join('j', { maxLayers: 1 })).toEqual({ ok: true, stage: 1 });
    expect(sim.last('j', 'assign')!.state).toMatchObject({ from: 'replica', peers: ['b'] });
    sim.rc.onGone('b', 'connection closed');
    expect(sim.rc.phase).toBe('paused');
    // b comes back with its kept state at the newest averaging point (4): j is told to load from it.
    sim.join('b2', { held: [{ runId: 'rc-test', stage: 1, step: 4, hash: stageHash(1, 4) }] });
    sim.linkAll();
    sim.rc.onReady('b2', 4);
    expect(sim.rc.phase).toBe('training');
    expect(sim.last('j', 'assign')!.state).toMatchObject({ from: 'replica', peers: ['b2'] });
  });

  it('places a fresh peer on another stage and refuses one that only fits the orphaned stage', () => {
    const { sim } = orphaned();
    expect(sim.join('f')).toEqual({ ok: true, stage: 0 });
    expect(sim.last('f', 'assign')!.state).toMatchObject({ from: 'replica', peers: ['a'] });
    const g = sim.join('g', { maxLayers: 1 });
    expect(g.ok).toBe(false);
    if (!g.ok) expect(g.reason).toMatch(/waiting for the peer that holds their newest state/);
    expect(sim.rc.phase).toBe('paused');
  });

  it('does not accept a held state with the wrong hash, an older step or another run', () => {
    const { sim } = orphaned();
    const held = (over: Partial<HeldState>): HeldState[] => [{ runId: 'rc-test', stage: 1, step: 4, hash: stageHash(1, 4), ...over }];
    for (const [id, h] of [
      ['x1', held({ hash: hex('tampered') })],
      ['x2', held({ step: 2, hash: stageHash(1, 2) })],
      ['x3', held({ runId: 'other-run' })],
      ['x4', held({ stage: 0, hash: stageHash(0, 4) })],
    ] as const) {
      const r = sim.join(id, { maxLayers: 1, held: [...h] });
      expect(r.ok, id).toBe(false);
    }
    // A GPU that fits stage 0 is placed there as a fresh peer, not on stage 1 with its own state.
    expect(sim.join('x5', { held: held({ hash: hex('tampered') }) })).toEqual({ ok: true, stage: 0 });
    expect(sim.last('x5', 'assign')!.state.from).toBe('replica');
    expect(sim.rc.phase).toBe('paused');
  });

  it('resumes at the next step once a peer brings the newest state back', () => {
    const { sim } = orphaned();
    sim.join('f');
    const held: HeldState[] = [{ runId: 'rc-test', stage: 1, step: 4, hash: stageHash(1, 4) }];
    expect(sim.join('b2', { maxLayers: 1, held })).toEqual({ ok: true, stage: 1 });
    expect(sim.last('b2', 'assign')).toMatchObject({ stage: 1, state: { from: 'own', step: 4, hash: stageHash(1, 4) } });
    expect(sim.rc.phase).toBe('paused');
    sim.linkAll();
    sim.rc.onReady('f', 4);
    expect(sim.rc.phase).toBe('paused');
    expect(sim.rc.reason).toMatch(/^waiting for a peer for stage 1 \(b2 setting up\)/);
    const mark = sim.mark();
    sim.rc.onReady('b2', 4);
    expect(sim.rc.phase).toBe('training');
    expect(sim.rc.currentRound).toMatchObject({ step: 6 });
    expect(
      sim
        .msgs('round', { since: mark })
        .map((m) => m.peer)
        .sort(),
    ).toEqual(['a', 'b2']);
    sim.steps(3);
    expect(sim.commits.map((c) => c.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // f listened at step 6 and computes since.
    expect(sim.commits.at(-1)!.work.some((w) => w.peerId === 'f')).toBe(true);
    sim.checkCredit();
  });

  it('a peer that is ready at the newest state when the last replica is lost takes over without a pause', () => {
    const sim = started(makeRun(), ['a', 'b'], [0, 1]);
    sim.speed = { a: 100, b: 300 };
    sim.steps(1);
    sim.join('j');
    sim.linkAll();
    sim.steps(1); // averaging at 2; j is still setting up
    sim.rc.onReady('j', 2);
    sim.rc.onGone('b', 'lost');
    expect(sim.rc.peer('j')!.state).toBe('active');
    expect(sim.rc.phase).toBe('training');
    expect(sim.rc.currentRound).toMatchObject({ step: 3 });
    sim.steps(2);
    sim.checkCredit();
  });

  it('moves a peer loading from the lost replica to another stage, and tells the others where it is now', () => {
    const sim = started(makeRun(), ['a', 'b'], [0, 1]);
    sim.speed = { a: 100, b: 300 };
    sim.steps(2);
    expect(sim.join('j')).toEqual({ ok: true, stage: 1 });
    expect(sim.last('j', 'assign')!.state).toMatchObject({ from: 'replica', peers: ['b'] });
    sim.rc.onGone('b', 'lost');
    // j cannot get stage 1's state any more: placed again, on stage 0, from a.
    expect(sim.rc.peer('j')!.stage).toBe(0);
    expect(sim.last('j', 'assign')).toMatchObject({ stage: 0, state: { from: 'replica', peers: ['a'] } });
    // a must learn that j is on stage 0 now (it connects to the peers of its stage and the next).
    expect(sim.told('a')).toContainEqual(expect.objectContaining({ peerId: 'j', stage: 0, name: 'peer j' }));
    expect(sim.invalid).toEqual([]);
  });

  it('keeps the peer that brings the state back on its stage when another peer of the stage goes', () => {
    const sim = started(makeRun(SMALL_LAST_STAGE), ['a', 'b'], [0, 1]);
    sim.speed = { a: 100, b: 300 };
    sim.steps(2);
    // j fits only stage 1 and is loading from b when b is lost: it stays (there is nowhere else).
    expect(sim.join('j', { maxLayers: 1 })).toEqual({ ok: true, stage: 1 });
    sim.rc.onGone('b', 'lost');
    expect(sim.rc.peer('j')!.stage).toBe(1);
    const held: HeldState[] = [{ runId: 'rc-test', stage: 1, step: 2, hash: stageHash(1, 2) }];
    expect(sim.join('b2', { held })).toEqual({ ok: true, stage: 1 });
    // j gives up (its source is gone): b2, who holds the stage's state, must stay where it is.
    sim.rc.onGone('j', 'no message for 60000 ms (timeout 60000 ms while setup)');
    expect(sim.rc.peer('b2')!.stage).toBe(1);
    expect(sim.msgs('assign', { to: 'b2' })).toHaveLength(1);
    sim.linkAll();
    sim.rc.onReady('b2', 2);
    expect(sim.rc.phase).toBe('training');
    sim.steps(2);
    expect(sim.commits.map((c) => c.step)).toEqual([1, 2, 3, 4]);
    sim.checkCredit();
  });
});

describe('RunControl: graceful leave of the last replica', () => {
  /** a on stage 0; b on stage 1; h (fits only stage 1) joined after the start and is setting up from b. Steps 1–3 committed. */
  function withHeir() {
    const sim = started(makeRun(SMALL_LAST_STAGE), ['a', 'b'], [0, 1]);
    sim.steps(2);
    expect(sim.join('h', { maxLayers: 1 })).toEqual({ ok: true, stage: 1 });
    expect(sim.last('h', 'assign')!.state).toMatchObject({ from: 'replica', peers: ['b'] });
    sim.linkAll();
    sim.steps(1);
    expect(sim.rc.currentRound!.step).toBe(4);
    const mark = sim.mark();
    const kept = { step: 3, hash: hex('b kept at 3') };
    sim.rc.onGone('b', 'leave: pause', { kept });
    return { sim, mark, kept };
  }

  it('hands the state to the peer setting up for the stage, which resumes the run once ready', () => {
    const { sim, mark } = withHeir();
    // The leaver is told to hand its state to h; h is told to take it from the leaver.
    expect(sim.msgs('handoff', { since: mark })).toEqual([{ type: 'handoff', to: 'h', peer: 'b' }]);
    expect(sim.last('h', 'assign')).toMatchObject({ stage: 1, state: { from: 'replica', peers: ['b'] } });
    expect(sim.msgs('assign', { to: 'h', since: mark })).toHaveLength(1);
    expect(sim.msgs('commit', { since: mark })).toEqual([expect.objectContaining({ peer: 'a', step: 4, apply: false })]);
    expect(sim.rc.phase).toBe('paused');
    expect(sim.rc.reason).toMatch(/waiting for a peer for stage 1 \(h setting up\)/);

    const resumed = sim.mark();
    sim.rc.onReady('h', 3);
    expect(sim.rc.phase).toBe('training');
    expect(sim.rc.currentRound).toMatchObject({ step: 4 });
    expect(
      sim
        .msgs('round', { since: resumed })
        .map((m) => m.peer)
        .sort(),
    ).toEqual(['a', 'h']);
    sim.steps(2);
    expect(sim.commits.map((c) => c.step)).toEqual([1, 2, 3, 4, 5]);
    sim.checkCredit();
  });

  it('takes the kept state, newer than the last averaging, as the stage newest', () => {
    const { sim, kept } = withHeir();
    // The heir comes up with the last averaged state (step 2) only: not the newest, no resume.
    sim.rc.onReady('h', 2);
    expect(sim.rc.peer('h')!.state).toBe('ready');
    expect(sim.rc.phase).toBe('paused');
    // The leaver comes back: its state at the last averaging is not the newest any more…
    const r1 = sim.join('b2', { maxLayers: 1, held: [{ runId: 'rc-test', stage: 1, step: 2, hash: stageHash(1, 2) }] });
    expect(r1.ok).toBe(false);
    // …the kept one is.
    expect(sim.join('b3', { maxLayers: 1, held: [{ runId: 'rc-test', stage: 1, ...kept }] })).toEqual({ ok: true, stage: 1 });
    expect(sim.last('b3', 'assign')!.state).toEqual({ from: 'own', ...kept });
    sim.linkAll();
    sim.rc.onReady('b3', 3);
    expect(sim.rc.phase).toBe('training');
    expect(sim.rc.currentRound).toMatchObject({ step: 4 });
    sim.steps(1);
    expect(sim.commits.map((c) => c.step)).toEqual([1, 2, 3, 4]);
    // h listened at step 4 and takes part from step 5 on.
    expect(sim.msgs('commit').filter((m) => m.step === 4 && m.apply)[0].average!.listeners).toEqual([[], ['h']]);
    expect(microbatchesPerPeer(sim.rc.currentRound!.routes).has('h')).toBe(true);
    sim.checkCredit();
  });

  it('only the last replica hands off, even when another peer of the stage has the same name', () => {
    // Names are what volunteers type: two GPUs of one volunteer may share one.
    const sim = new Sim(makeRun(SMALL_LAST_STAGE));
    expect(sim.join('a')).toEqual({ ok: true, stage: 0 });
    expect(sim.join('b', { name: 'vol' })).toEqual({ ok: true, stage: 1 });
    sim.linkAll();
    sim.rc.onReady('a', 0);
    sim.rc.onReady('b', 0);
    sim.steps(2);
    // j (same name as b) is setting up from b when b is lost; b2 brings the state back.
    expect(sim.join('j', { maxLayers: 1, name: 'vol' })).toEqual({ ok: true, stage: 1 });
    sim.rc.onGone('b', 'lost');
    const held: HeldState[] = [{ runId: 'rc-test', stage: 1, step: 2, hash: stageHash(1, 2) }];
    expect(sim.join('b2', { maxLayers: 1, held })).toEqual({ ok: true, stage: 1 });
    // j leaves: it holds nothing of the stage, so it hands nothing over and b2 keeps loading its own state.
    sim.rc.onGone('j', 'leave: pause', {});
    expect(sim.msgs('handoff')).toEqual([]);
    expect(sim.msgs('assign', { to: 'b2' }).map((m) => m.state.from)).toEqual(['own']);
    sim.linkAll();
    sim.rc.onReady('b2', 2);
    expect(sim.rc.currentRound).toMatchObject({ step: 3 });
  });

  it('without a peer to hand to, the stage waits for the leaver to come back with what it kept', () => {
    const sim = started(makeRun(), ['a', 'b'], [0, 1]);
    sim.steps(3);
    const kept = { step: 3, hash: hex('b kept at 3') };
    sim.rc.onGone('b', 'leave: pause', { kept });
    expect(sim.msgs('handoff')).toEqual([]);
    expect(sim.rc.reason).toBe('waiting for a peer for stage 1 (its newest state, step 3, is with peer b)');
    expect(sim.join('b2', { held: [{ runId: 'rc-test', stage: 1, step: 3, hash: hex('something else') }] })).toEqual({ ok: true, stage: 0 });
    expect(sim.join('b3', { held: [{ runId: 'rc-test', stage: 1, ...kept }] })).toEqual({ ok: true, stage: 1 });
    sim.linkAll();
    sim.rc.onReady('b3', 3);
    expect(sim.rc.currentRound).toMatchObject({ step: 4 });
  });
});

describe('RunControl: serving', () => {
  it('serves after the last step; path() avoids excluded peers and fails when a stage has nobody', () => {
    const sim = lanes({ serve: true, steps: 3 });
    sim.steps(3);
    expect(sim.rc.phase).toBe('serving');
    expect(sim.rc.reason).toBe('trained: serving inference');
    expect(sim.rc.currentRound).toBeUndefined();
    expect(sim.trained).toEqual([{ step: 3, valLoss: undefined }]);
    expect(sim.msgs('stop')).toEqual([]);
    expect(sim.msgs('commit').filter((m) => m.step === 3)[0].average).toBeDefined(); // the last step is averaged

    // Paths are drawn at random among the linked ones: over many draws, every replica is on some.
    const drawn = new Set(Array.from({ length: 64 }, () => sim.rc.path()!.join('-')));
    expect([...drawn].sort()).toEqual(['a-b', 'a-d', 'c-b', 'c-d']);
    expect(sim.rc.path(new Set(['a', 'b']))).toEqual(['c', 'd']);
    expect(sim.rc.path(new Set(['a', 'c']))).toBeUndefined();
    // A fresh joiner loads the final state from a replica and serves as soon as it is ready.
    expect(sim.join('e')).toEqual({ ok: true, stage: 0 });
    expect(sim.last('e', 'assign')!.state).toMatchObject({ from: 'replica', peers: ['a', 'c'] });
    sim.linkAll();
    sim.rc.onReady('e', 3);
    expect(sim.rc.peer('e')!.state).toBe('active');
    expect(sim.rc.path(new Set(['a', 'c']))?.[0]).toBe('e');
    sim.rc.onGone('e', 'lost');
    sim.rc.onGone('b', 'lost');
    expect(sim.rc.path()?.[1]).toBe('d');
    sim.rc.onGone('d', 'lost');
    expect(sim.rc.path()).toBeUndefined();
    expect(sim.rc.phase).toBe('serving');
    expect(sim.rc.reason).toMatch(/^serving paused: waiting for a peer for stage 1/);
    // A joiner in serving loads the final state and serves.
    const held: HeldState[] = [{ runId: 'rc-test', stage: 1, step: 3, hash: stageHash(1, 3) }];
    expect(sim.join('d2', { held })).toEqual({ ok: true, stage: 1 });
    sim.linkAll();
    sim.rc.onReady('d2', 3);
    expect(sim.rc.reason).toBe('trained: serving inference');
    expect(sim.rc.path(new Set(['a']))).toEqual(['c', 'd2']);
    expect(sim.msgs('round').filter((m) => m.step > 3)).toEqual([]);
    expect(sim.invalid).toEqual([]);
  });

  it('without serve the run finishes and every peer is told to stop', () => {
    const sim = lanes({ steps: 2 });
    sim.steps(2);
    expect(sim.rc.phase).toBe('finished');
    expect(sim.trained).toEqual([{ step: 2, valLoss: undefined }]);
    expect(
      sim
        .msgs('stop')
        .map((m) => m.peer)
        .sort(),
    ).toEqual(['a', 'b', 'c', 'd']);
    expect(sim.join('late')).toEqual({ ok: false, reason: 'the run is finished' });
  });
});

describe('RunControl: evaluation', () => {
  it('takes a validation loss only from the last peer of that step’s evaluation path, once', () => {
    const sim = started(makeRun({ steps: 4, evalEvery: 2, evalBatches: 1, minPerStage: 2 }), ['a', 'b', 'c', 'd'], [0, 1, 0, 1]);
    const evaluated: Array<{ step: number; valLoss: number }> = [];
    sim.rc.on('evaluated', (e) => evaluated.push(e));
    sim.steps(2);
    const path = sim.msgs('commit', { to: 'a' }).find((m) => m.step === 2)!.eval!.path;
    const other = path.at(-1) === 'b' ? 'd' : 'b';
    sim.rc.onEvaluated(other, 2, 0.01); // another last-stage replica: not asked
    sim.rc.onEvaluated(path.at(-1)!, 3, 0.01); // a step nobody evaluated
    sim.rc.onEvaluated(path.at(-1)!, 2, 2.5);
    sim.rc.onEvaluated(path.at(-1)!, 2, 0.01); // again
    expect(evaluated).toEqual([{ step: 2, valLoss: 2.5 }]);
  });

  it('evaluates every evalEvery steps and at the last; trained waits for the final evaluation', () => {
    const sim = started(makeRun({ steps: 5, evalEvery: 2, evalBatches: 3 }), ['a', 'b'], [0, 1]);
    const evaluated: Array<{ step: number; valLoss: number }> = [];
    sim.rc.on('evaluated', (e) => evaluated.push(e));
    sim.steps(5);
    const evals = sim.msgs('commit', { to: 'a' }).map((m) => [m.step, m.eval] as const);
    expect(evals).toEqual([
      [1, undefined],
      [2, { path: ['a', 'b'], batches: 3 }],
      [3, undefined],
      [4, { path: ['a', 'b'], batches: 3 }],
      [5, { path: ['a', 'b'], batches: 3 }],
    ]);
    expect(sim.rc.phase).toBe('finished');
    expect(sim.rc.awaitingFinalEval).toBe(true);
    expect(sim.trained).toEqual([]);
    expect(sim.msgs('stop')).toEqual([]);
    // An earlier step's result, or a report from a stage that does not evaluate, does not end the run.
    sim.rc.onEvaluated('b', 4, 2.5);
    sim.rc.onEvaluated('a', 5, 9.9);
    expect(evaluated).toEqual([{ step: 4, valLoss: 2.5 }]);
    expect(sim.trained).toEqual([]);
    sim.rc.onEvaluated('b', 5, 1.5);
    expect(sim.trained).toEqual([{ step: 5, valLoss: 1.5 }]);
    expect(sim.rc.valLoss).toBe(1.5);
    expect(sim.rc.awaitingFinalEval).toBe(false);
    expect(
      sim
        .msgs('stop')
        .map((m) => m.peer)
        .sort(),
    ).toEqual(['a', 'b']);
  });

  it('finishEvaluation() ends a run whose final evaluation does not come', () => {
    const sim = started(makeRun({ steps: 2, evalEvery: 2, evalBatches: 1, serve: true }), ['a', 'b'], [0, 1]);
    sim.steps(2);
    expect(sim.rc.phase).toBe('serving');
    expect(sim.trained).toEqual([]);
    sim.rc.onEvaluated('b', 1, 3.5); // an earlier evaluation's loss is not the final one's
    sim.rc.finishEvaluation();
    sim.rc.finishEvaluation(); // once only
    expect(sim.trained).toEqual([{ step: 2, valLoss: undefined }]);
    expect(sim.msgs('stop')).toEqual([]); // still serving
  });

  it('finishEvaluation() does nothing while training', () => {
    const sim = started(makeRun({ steps: 4, evalEvery: 2, evalBatches: 1 }), ['a', 'b'], [0, 1]);
    sim.steps(1);
    sim.rc.finishEvaluation();
    expect(sim.trained).toEqual([]);
    expect(sim.rc.phase).toBe('training');
  });
});

describe('RunControl: resuming after the coordinator crashed', () => {
  it('takes up the saved step: returning peers bring their stages back, no committed step is routed again, the barred stay barred', () => {
    const sim = started(makeRun({ averageEvery: 2 }), ['a', 'b'], [0, 1]);
    sim.steps(3); // averaged at step 2; step 3 committed
    sim.join('m');
    sim.rc.purge('m', 'caught');
    const saved = JSON.parse(JSON.stringify(sim.rc.snapshot()));
    expect(saved).toMatchObject({
      step: 3,
      started: true,
      stages: [
        { step: 2, hash: stageHash(0, 2) },
        { step: 2, hash: stageHash(1, 2) },
      ],
    });

    // A new coordinator, nobody connected: every stage waits for a peer holding its state.
    const next = new Sim(makeRun({ averageEvery: 2 }));
    next.rc.resume(saved);
    expect(next.rc.step).toBe(3);
    expect(next.rc.phase).toBe('paused');
    expect(next.rc.reason).toMatch(/^waiting for a peer for stage 0 \(its newest state, step 2, is with the peers that trained it before the coordinator restarted\)/);
    // A peer holding nothing cannot take a stage that waits for its state; the purged one is refused.
    expect(next.join('fresh')).toEqual({ ok: false, reason: expect.stringMatching(/waiting for the peer that holds their newest state/) });
    expect(next.rc.register('m2', { name: 'm', key: hex('m').padEnd(64, '0').slice(0, 64), capability: cap() })).toEqual({
      ok: false,
      reason: 'this peer was purged from the run',
    });
    // A state beyond the last committed step is no state the run ever had.
    const held = (stage: number, step: number, hash: string): HeldState[] => [{ runId: 'rc-test', stage, step, hash }];
    expect(next.join('liar', { held: held(0, 4, hex('future')) })).toEqual({ ok: false, reason: expect.stringMatching(/waiting for the peer/) });
    // a kept its live state at step 3; b only the averaged one at step 2.
    expect(next.join('a2', { held: held(0, 3, hex('a at 3')) })).toEqual({ ok: true, stage: 0 });
    expect(next.last('a2', 'assign')?.state).toEqual({ from: 'own', step: 3, hash: hex('a at 3') });
    expect(next.join('b2', { held: held(1, 2, stageHash(1, 2)) })).toEqual({ ok: true, stage: 1 });
    next.linkAll();
    next.rc.onReady('a2', 3);
    next.rc.onReady('b2', 2);
    expect(next.rc.phase).toBe('training');
    expect(next.rc.currentRound).toMatchObject({ step: 4, round: saved.round + 1 });
    next.steps(7);
    expect(next.commits.map((c) => c.step)).toEqual([4, 5, 6, 7, 8, 9, 10]);
    expect(next.trained).toEqual([{ step: 10, valLoss: undefined }]);
    next.checkCredit();
  });

  it('a serving run saved after its last step is trained at once (settlement goes on); a finished or stopped one stays so', () => {
    const sim = started(makeRun({ steps: 2, serve: true }), ['a', 'b'], [0, 1]);
    sim.steps(2);
    expect(sim.rc.phase).toBe('serving');
    const done = new Sim(makeRun({ steps: 2, serve: true }));
    done.rc.resume(sim.rc.snapshot());
    expect(done.trained).toEqual([{ step: 2, valLoss: undefined }]);
    expect(done.rc.phase).toBe('serving');

    const finished = started(makeRun({ steps: 2 }), ['a', 'b'], [0, 1]);
    finished.steps(2);
    const over = new Sim(makeRun({ steps: 2 }));
    over.rc.resume(finished.rc.snapshot());
    expect(over.rc.phase).toBe('finished');
    expect(over.msgs('round')).toEqual([]);

    const stopped = started(makeRun(), ['a', 'b'], [0, 1]);
    stopped.rc.stop('operator stopped it');
    const again = new Sim(makeRun());
    again.rc.resume(stopped.rc.snapshot());
    expect(again.rc.phase).toBe('stopped');
    expect(again.join('c')).toEqual({ ok: false, reason: 'the run is stopped' });
  });
});

describe('RunControl: at scale', () => {
  const eightStages = () =>
    makeRun({
      stages: 8,
      layersPerStage: [1, 1, 1, 1, 1, 1, 1, 1],
      model: { vocab: 65, dModel: 32, nHead: 4, nLayer: 8, seq: 16, batch: 4 },
      minPerStage: 1000,
    });

  it('2,000 peers: every message fits, views stay bounded, a join or leave costs messages to its neighbourhood only', () => {
    const sim = new Sim(eightStages());
    for (let i = 0; i < 2000; i++) sim.join(`p${i}`);
    const tooBig = sim.sent.filter((s) => Buffer.byteLength(JSON.stringify(s.msg)) > MAX_MESSAGE_BYTES);
    expect(tooBig.map((s) => `${s.msg.type} to ${s.to}`)).toEqual([]);
    const perStage = 2000 / 8;
    for (const id of ['p0', 'p777', 'p1999']) {
      const view = sim.told(id);
      expect(view.map((p) => p.peerId).sort()).toEqual(
        sim.rc
          .view(id)
          .map((p) => p.peerId)
          .sort(),
      );
      expect(view.length).toBeLessThanOrEqual(perStage - 1 + 2 * (VIEW_PER_ADJACENT_STAGE + 1));
    }
    let mark = sim.mark();
    sim.join('late');
    // Its assign, its stage's replicas and its links of adjacent stages; statuses are held back.
    expect(new Set(sim.sent.slice(mark).map((s) => s.to)).size).toBeLessThan(perStage + 4 * VIEW_PER_ADJACENT_STAGE);
    mark = sim.mark();
    sim.rc.onGone('p5', 'connection closed');
    expect(new Set(sim.sent.slice(mark).map((s) => s.to)).size).toBeLessThan(perStage + 4 * VIEW_PER_ADJACENT_STAGE);
    expect(sim.invalid).toEqual([]);
  });

  it('holds back a new reason in the same phase for statusEveryMs, but not a new phase', () => {
    const sent: Array<{ to: string; msg: ServerMessage }> = [];
    let clock = 0;
    const rc = new RunControl({ run: makeRun({ minPerStage: 2 }), now: () => clock, send: (to, msg) => sent.push({ to, msg }), statusEveryMs: 1000 });
    const statuses = () => sent.filter((s) => s.msg.type === 'status').map((s) => `${s.to}: ${(s.msg as ServerMessageOf<'status'>).reason}`);
    for (const id of ['a', 'b', 'c']) rc.register(id, { name: id, key: hex(id), capability: cap() });
    rc.onReady('a', 0);
    expect(statuses()).toEqual([]);
    clock += 1000;
    rc.onReady('b', 0);
    expect(statuses()).toEqual(['a', 'b', 'c'].map((id) => `${id}: waiting for peers (ready stage 0: 1/2, stage 1: 1/2)`));
    sent.length = 0;
    rc.onReady('c', 0);
    expect(statuses()).toEqual([]);
    clock += 10;
    rc.flushStatus();
    expect(statuses()).toEqual(['a', 'b', 'c'].map((id) => `${id}: waiting for peers (ready stage 0: 2/2, stage 1: 1/2)`));
    sent.length = 0;
    rc.flushStatus();
    expect(statuses()).toEqual([]);
    rc.stop('operator');
    expect(statuses()).toEqual(['a', 'b', 'c'].map((id) => `${id}: operator`));
  });
});
