// The run's state machine's parts, each on its own (coordinator/roster.ts, stage-states.ts,
// membership.ts, departures.ts, routing.ts, rounds.ts, round-audits.ts, averaging-roles.ts,
// evaluation.ts, readiness.ts, run-phase.ts): the rules each one keeps, with no RunControl around
// them. tests/run-control.test.ts checks them composed.
import { describe, expect, it } from 'vitest';
import { AveragingRoles } from '../coordinator/averaging-roles.js';
import { Departures } from '../coordinator/departures.js';
import { Evaluations } from '../coordinator/evaluation.js';
import { Membership } from '../coordinator/membership.js';
import { OutlierVotes } from '../coordinator/outlier-votes.js';
import { Readiness } from '../coordinator/readiness.js';
import { peerAddress, Registrar } from '../coordinator/registration.js';
import { RoundAudits } from '../coordinator/round-audits.js';
import { Rounds } from '../coordinator/rounds.js';
import { Routing } from '../coordinator/routing.js';
import { GRACE_MS, MAX_REDRAWS, SET_SIZE, WitnessSets } from '../coordinator/witness-sets.js';
import { type PeerRecord, Roster } from '../coordinator/roster.js';
import { RunPhase } from '../coordinator/run-phase.js';
import { StageStates } from '../coordinator/stage-states.js';
import type { RunConfig } from '../shared/run/config.js';
import { PeerKey } from '../shared/swarm/identity.js';
import type { Seal, ServerMessage } from '../shared/swarm/protocol.js';
import { FrameKind } from '../shared/wire/frame.js';
import { testRun } from './test-run.js';

const hash = (c: string) => c.repeat(64);

function record(peerId: string, stage: number, state: PeerRecord['state'] = 'active'): PeerRecord {
  return {
    peerId,
    name: peerId,
    key: peerId.padEnd(64, '0'),
    capability: { adapter: 't', kind: 'cpu', gflops: 1, memoryBytes: 1e9, maxLayers: 8 },
    held: [],
    stage,
    state,
    links: new Set(),
    assignedAt: 0,
  };
}

/** A roster of `peers` ([id, stage, state]) placed in their views, every pair of neighbours linked both ways. */
function rosterOf(run: RunConfig, peers: Array<[string, number, PeerRecord['state']?]>): Roster {
  const roster = new Roster(run.layersPerStage.length, 8);
  for (const [id, stage, state] of peers) {
    const p = record(id, stage, state);
    roster.add(p);
    roster.place(p, stage);
  }
  for (const p of roster.live()) p.links = new Set(roster.viewIds(p.peerId));
  return roster;
}

const seal = (kind: number, tag: number, microbatch: number, from: string, to: string): Seal => ({ kind, tag, microbatch, hash: hash('0'), from, to, sig: '0'.repeat(128) });

describe('coordinator parts', () => {
  it('roster: no witness shares an account or an address with the peer it judges; a panel outvotes a third of the stage', () => {
    const roster = rosterOf(testRun(), [
      ['a', 0],
      ['b', 0],
      ['c', 0],
      ['d', 0],
      ['x', 1],
    ]);
    roster.get('a')!.account = '0x00000000000000000000000000000000000000aa';
    roster.get('b')!.account = '0x00000000000000000000000000000000000000AA';
    roster.get('a')!.address = '203.0.113.5';
    roster.get('c')!.address = '203.0.113.5';
    expect(roster.witnesses('a')).toEqual(['d']);
    expect([roster.independent('b', 'c'), roster.independent('a', 'b'), roster.independent('a', 'c'), roster.independent('a', 'gone')]).toEqual([true, false, false, false]);
    expect([roster.tolerated('a'), roster.tolerated('x')]).toEqual([1, 1]);
    // From the network within 2 s of each other: one burst, neither judges the other.
    Object.assign(roster.get('b')!, { address: '198.51.100.1', arrivedAt: 10_000 });
    Object.assign(roster.get('d')!, { address: '198.51.100.2', arrivedAt: 11_999 });
    expect(roster.independent('b', 'd')).toBe(false);
    roster.get('d')!.arrivedAt = 12_000;
    expect(roster.independent('b', 'd')).toBe(true);
    for (const id of ['e', 'f']) {
      roster.add(record(id, 0));
      roster.place(roster.get(id)!, 0);
    }
    expect(roster.tolerated('a')).toBe(2);
  });

  it('outlier votes: a member left out of the average is purged once most of its stage’s other independent replicas name it; a lone name or a stranger’s convicts nobody', () => {
    const electorate = (named: string) => ['a', 'b', 'c', 'd', 'e'].filter((p) => p !== named);
    const log: string[] = [];
    const votes = new OutlierVotes({ electorate, log: (l) => log.push(l) });
    expect(votes.report(4, 'b', ['a'], 2)).toEqual([]);
    expect(votes.report(4, 'x', ['a'], 2)).toEqual([]); // not of its stage
    expect(votes.report(4, 'b', ['a'], 2)).toEqual([]); // once per reporter
    expect(votes.report(4, 'c', ['a'], 2)).toEqual([]);
    expect(votes.report(4, 'd', ['a', 'a'], 2)).toEqual([
      { peer: 'a', reason: "its weights at the averaging after step 4 moved beyond any replica's training, as 3 of 4 of its stage's replicas found" },
    ]);
    // Two colluders of five naming an honest replica: no majority.
    expect([votes.report(6, 'd', ['b'], 2), votes.report(6, 'e', ['b'], 2)]).toEqual([[], []]);
    // Votes of old averagings are dropped.
    expect(votes.report(20, 'a', ['c'], 2)).toEqual([]);
    expect(votes.report(6, 'a', ['b'], 2)).toEqual([]);
    expect(log[0]).toBe("b left a's weights out of the average at step 4 as no replica's (1 of 4 replicas so far)");
    // In a stage of two, one replica's name never convicts the other.
    const pair = new OutlierVotes({ electorate: (named) => ['p', 'q'].filter((x) => x !== named), log: () => {} });
    expect(pair.report(4, 'q', ['p'], 2)).toEqual([]);
  });

  it('registrar: an address holds at most 4 live peers and registers at most 12 times a minute; loopback carries no address', async () => {
    let now = 0;
    const registrar = new Registrar<object>(() => now);
    // A real key with a proof of zeros: refused at the proof unless crowding refuses it first.
    const key = (await PeerKey.generate()).publicHex;
    const msg = { type: 'register', name: 'n', key, keyProof: '00'.repeat(64), capability: record('z', 0).capability } as const;
    const attempt = (live: PeerRecord[], address: string) => {
      const conn = {};
      registrar.nonceFor(conn);
      return registrar.problem(conn, msg, [], live, address);
    };
    // The live cap is asked right before placing (the server places synchronously after it).
    const four = ['a', 'b', 'c', 'd'].map((id) => ({ ...record(id, 0), address: '203.0.113.5' }));
    expect(registrar.full('203.0.113.5', four)).toBe('203.0.113.5 already takes part with 4 peers; at most 4 per address');
    expect(registrar.full('203.0.113.5', four.slice(1))).toBeUndefined();
    expect(registrar.full(undefined, four)).toBeUndefined();
    for (let i = 0; i < 11; i++) await attempt([], '198.51.100.7');
    expect(await attempt([], '198.51.100.7')).toMatch(/^the key proof/);
    // A flood past the rate keeps being refused (and the registrar remembers only the last 13 attempts of it).
    for (let i = 0; i < 100; i++) expect(await attempt([], '198.51.100.7')).toBe('198.51.100.7 registered more than 12 times in the last minute');
    expect(await attempt([], '198.51.100.8')).toMatch(/^the key proof/);
    // A small-order key, under which an all-zero proof verifies for about half of all nonces.
    const conn = {};
    registrar.nonceFor(conn);
    expect(await registrar.problem(conn, { ...msg, key: '00'.repeat(32) }, [], [])).toBe(
      'the key proves nothing: it is a point of small order, under which trivial signatures verify',
    );
    now += 60_001;
    expect(await attempt([], '198.51.100.7')).toMatch(/^the key proof/);
    expect([
      peerAddress('::ffff:127.0.0.1'),
      peerAddress('::1'),
      peerAddress('127.0.0.1'),
      peerAddress('127.0.0.2'),
      peerAddress('::ffff:203.0.113.5'),
      peerAddress('2001:db8::1'),
      peerAddress(undefined),
    ]).toEqual([undefined, undefined, undefined, '127.0.0.2', '203.0.113.5', '2001:db8::1', undefined]);
  });

  it('roster: a witness is a replica of the same stage linked both ways; an unmeasured peer counts as the stage median', () => {
    const run = testRun();
    const roster = rosterOf(run, [
      ['a', 0],
      ['b', 0],
      ['c', 0],
      ['x', 1],
    ]);
    roster.get('c')!.links.delete('a'); // one end only: no channel
    expect(roster.witnesses('a')).toEqual(['b']);
    expect(roster.typicalMs(0)).toBe(1000);
    roster.get('a')!.msPerMicrobatch = 10;
    roster.get('b')!.msPerMicrobatch = 30;
    roster.get('c')!.msPerMicrobatch = 20;
    expect(roster.typicalMs(0)).toBe(20);
    roster.retire(roster.get('b')!, 'lost');
    expect(roster.active(0).map((p) => p.peerId)).toEqual(['a', 'c']);
    expect(roster.get('b')!.links.size).toBe(0);
    expect(roster.viewIds('a')).toContain('b'); // until forgotten
    roster.forget('b');
    expect(roster.viewIds('a')).not.toContain('b');
  });

  it('stage states: the hash most members report is the stage’s, one vote per member, old votes dropped', () => {
    const st = new StageStates(2);
    st.vote(1, 4, hash('a'), 'p', 0);
    st.vote(1, 4, hash('b'), 'q', 0);
    st.vote(1, 4, hash('b'), 'r', 0);
    st.vote(1, 4, hash('c'), 'r', 0); // a second vote of r changes nothing
    expect(st.agreedHash(1, 4)).toBe(hash('b'));
    expect(st.newest(1)).toEqual({ step: 4, hash: hash('b') });
    st.vote(1, 12, hash('d'), 'p', 8);
    expect(st.agreedHash(1, 4)).toBeUndefined();
    // A returning peer's state restores the stage only at its newest step or a later committed one, with the agreed hash.
    expect(st.restores({ runId: 'r', stage: 1, step: 12, hash: hash('d') }, 12)).toBe(true);
    expect(st.restores({ runId: 'r', stage: 1, step: 12, hash: hash('e') }, 12)).toBe(false);
    expect(st.restores({ runId: 'r', stage: 1, step: 14, hash: hash('f') }, 12)).toBe(false);
    expect(st.restores({ runId: 'r', stage: 1, step: 8, hash: hash('f') }, 12)).toBe(false);
  });

  it('stage states: a joiner’s state is vouched for by more than half of the replicas (or of those that reported), never by a tie', () => {
    const st = new StageStates(1);
    st.vote(0, 4, hash('a'), 'p', 0);
    st.vote(0, 4, hash('b'), 'q', 0);
    // Two replicas, one hash each: neither the first reported nor the other vouches.
    expect(st.unvouched(0, 4, hash('a'), 2, 4)).toBe('its replicas reported 2 different states at step 4, none by most of them');
    expect(st.unvouched(0, 4, hash('b'), 2, 4)).toBe('its replicas reported 2 different states at step 4, none by most of them');
    expect(st.vouched(0, 2)).toBeUndefined();
    st.vote(0, 4, hash('b'), 'r', 0);
    expect(st.unvouched(0, 4, hash('b'), 3, 4)).toBeUndefined();
    expect(st.unvouched(0, 4, hash('a'), 3, 4)).toMatch(/^it hashes to [0-9a-f]{12}…, not the [0-9a-f]{12}… its replicas reported$/);
    // Of 5 replicas only 3 reported: 2 of them agreeing is most of those that did.
    expect(st.unvouched(0, 4, hash('b'), 5, 4)).toBeUndefined();
    expect(st.vouched(0, 3)).toEqual({ step: 4, hash: hash('b') });
    expect(st.vouched(0, 5)).toBeUndefined();
    expect(st.unvouched(0, 8, hash('b'), 3, 4)).toBe("step 8 is past the run's last commit, step 4");
    expect(st.unvouched(0, 2, hash('b'), 3, 4)).toBe('no replica of stage 0 reported a state at step 2');
    expect(st.unvouched(0, 0, hash('z'), 3, 4)).toBeUndefined(); // the seed: the joiner checks it itself
  });

  it('stage states: a stage’s last replica gone takes the newest state with it, a kept one only within the run’s steps', () => {
    const st = new StageStates(2);
    st.vote(0, 4, hash('a'), 'p', 0);
    st.lastReplicaGone(0, 'worker-1', 6, { step: 9, hash: hash('b') });
    expect(st.newest(0)).toEqual({ step: 4, hash: hash('a') });
    expect(st.heldBy(0)).toBe('worker-1');
    st.lastReplicaGone(0, 'worker-2', 6, { step: 6, hash: hash('c') });
    expect(st.newest(0)).toEqual({ step: 6, hash: hash('c') });
    st.lastReplicaGone(1, 'worker-3', 6); // never averaged: the seed, which anyone rebuilds
    expect(st.heldBy(1)).toBeUndefined();
    expect(() => st.resume([{ step: 1 }])).toThrow(/saved run has 1 stages, this one 2/);
  });

  it('rounds: numbers are never reused, and a report must cover exactly its routes and cite exactly its inputs', () => {
    const rounds = new Rounds();
    rounds.resume(41);
    const routes = [
      ['a', 'x'],
      ['b', 'x'],
    ];
    const r = rounds.start(3, routes, 0);
    expect([r.round, rounds.stepOf(42), Object.fromEntries(r.work)]).toEqual([42, 3, { a: 1, x: 2, b: 1 }]);
    const x = record('x', 1);
    const inputs = [seal(FrameKind.Activation, 42, 0, 'a', 'x'), seal(FrameKind.Activation, 42, 1, 'b', 'x')];
    const done = (o: object) => ({ type: 'round-done' as const, round: 42, microbatches: 2, inputs, ...o });
    expect(rounds.report(x, done({ round: 41 }), 0)).toEqual({ kind: 'late' });
    expect(rounds.report(record('z', 1), done({}), 0)).toEqual({ kind: 'error', error: 'round 42 routes nothing through z' });
    expect(rounds.report(x, done({ microbatches: 1 }), 0)).toMatchObject({ kind: 'error' });
    expect(rounds.report(x, done({ inputs: inputs.slice(0, 1) }), 0)).toEqual({ kind: 'purge', reason: 'reported round 42 done without the activation of microbatch 1 from b' });
    expect(rounds.report(x, done({ inputs: [...inputs, seal(FrameKind.Gradient, 42, 0, 'a', 'x')] }), 0)).toMatchObject({
      kind: 'purge',
      reason: expect.stringMatching(/never routed to it/),
    });
    expect(rounds.report(x, done({ inputs: [...inputs, seal(FrameKind.Activation, 41, 0, 'a', 'x')] }), 0)).toMatchObject({ reason: expect.stringMatching(/seals of its own/) });
    expect(rounds.report(x, done({}), 0)).toEqual({ kind: 'taken', complete: false });
    expect(x.msPerMicrobatch).toBe(1); // a claimed zero counts as 1 ms, never as infinitely fast
    expect(rounds.report(x, done({}), 0)).toEqual({ kind: 'error', error: 'round 42 was already reported by x' });
    expect(rounds.end()).toBe(r);
    expect(rounds.start(3, routes, 0).round).toBe(43);
  });

  it('round audits: nothing to audit commits at once; a suspect must name a frame the round routed to its reporter', () => {
    const sent: ServerMessage[] = [];
    const audits = new RoundAudits({
      send: (_, m) => sent.push(m),
      log: () => {},
      assigned: () => ['w'],
      now: () => 0,
      audit: { rate: 0, random: () => 0 },
      panel: { witnesses: () => ['w'], independent: () => true, tolerated: () => 1 },
    });
    const r = new Rounds().start(1, [['a', 'x']], 0);
    expect(audits.onSuspect(r, 'x', { type: 'suspect', round: 1, peer: 'b', microbatch: 0, reason: 'far out' })).toMatch(/routes no frame of microbatch 0 from b to x/);
    expect(audits.onSuspect(r, 'x', { type: 'suspect', round: 1, peer: 'a', microbatch: 0, reason: 'far out' })).toBeUndefined();
    expect(audits.begin(r)).toEqual({ kind: 'wait' }); // the suspect is audited whatever the rate
    expect(sent.map((m) => [m.type, 'witness' in m ? m.witness : undefined])).toEqual([
      ['audit', 'w'],
      ['verify', undefined],
    ]);
    expect(audits.begin(new Rounds().start(1, [['a', 'x']], 0))).toEqual({ kind: 'commit' });
  });

  it('averaging roles: replicas that computed since the last averaging are members, an idle one and joiners listen', () => {
    const roles = new AveragingRoles();
    const [a, b, c, j] = [record('a', 0), record('b', 0), record('c', 0), record('j', 0, 'ready')];
    roles.credit(new Map([['a', 2]]));
    roles.credit(new Map([['b', 1]]));
    expect(roles.roles(false, [{ active: [a, b, c], ready: [j] }])).toEqual({ members: [['a', 'b', 'c']], listeners: [[]], joining: [] });
    expect(roles.roles(true, [{ active: [a, b, c], ready: [j] }])).toEqual({ members: [['a', 'b']], listeners: [['c', 'j']], joining: ['j'] });
    // Counted afresh after averaging: nobody computed since, so every replica is a member.
    expect(roles.roles(true, [{ active: [a, b, c], ready: [] }]).members).toEqual([['a', 'b', 'c']]);
  });

  it('evaluations: a validation loss is taken once, only from the last peer of its path; the final one ends training', () => {
    const ev = new Evaluations();
    ev.planned(4, ['a', 'x'], false, 2);
    ev.planned(10, ['b', 'y'], true, 2);
    expect(ev.take('a', 4)).toBe(false);
    expect(ev.take('x', 4)).toBe(true);
    expect(ev.take('x', 4)).toBe(false);
    expect([ev.awaitingFinal, ev.isFinal(10)]).toEqual([true, true]);
    ev.endFinal();
    expect(ev.awaitingFinal).toBe(false);
  });

  it('run phase: a new phase goes out at once, a new reason in the same phase at most every everyMs', () => {
    let now = 0;
    const sent: ServerMessage[] = [];
    const changed: string[] = [];
    const phase = new RunPhase({
      now: () => now,
      log: () => {},
      everyMs: 1000,
      broadcast: (m) => sent.push(m),
      progress: () => ({ step: 3, steps: 10 }),
      changed: (p, r) => changed.push(`${p}: ${r}`),
    });
    phase.set('waiting', 'one');
    phase.set('waiting', 'two');
    expect(sent).toHaveLength(1);
    phase.flush();
    expect(sent.at(-1)).toEqual({ type: 'status', phase: 'waiting', reason: 'two', step: 3, steps: 10 });
    now = 2000;
    phase.set('waiting', 'three');
    phase.set('training', 'training');
    expect(sent.map((m) => m.type === 'status' && m.reason)).toEqual(['one', 'two', 'three', 'training']);
    expect(changed).toEqual(['waiting: one', 'waiting: two', 'waiting: three', 'training: training']);
    expect(phase.over).toBe(false);
  });

  it('readiness: with spot checks and replicas required, a ready peer counts once linked to the witnesses drawn for it among the ready', () => {
    const run = testRun({ minPerStage: 2 });
    const roster = rosterOf(run, [
      ['a', 0, 'ready'],
      ['b', 0, 'ready'],
      ['c', 0, 'ready'],
      ['x', 1, 'ready'],
      ['y', 1, 'ready'],
    ]);
    roster.get('y')!.links.delete('x');
    const sets = new WitnessSets({ roster, muted: () => false, now: () => 0, random: () => 0, quorum: 2 });
    const checkable = (p: string) => sets.checkable(p);
    const readiness = new Readiness({ run, roster, stages: new StageStates(2), checkable });
    expect(readiness.canStart()).toBe(false);
    expect(readiness.waitingReason()).toBe('waiting for peers (ready and linked to their witnesses stage 0: 2/2, stage 1: 0/2)');
    // A link to some other replica is not enough: a's one witness (of b and c) is drawn, and a must
    // reach it (b's witness, a, is then out of b's reach too).
    const witness = sets.members('a')[0];
    expect(witness).toBe('b');
    expect(sets.members('b')).toEqual(['a']);
    roster.get('a')!.links.delete(witness);
    expect(readiness.waitingReason()).toBe('waiting for peers (ready and linked to their witnesses stage 0: 1/2, stage 1: 0/2)');
    roster.get('a')!.links.add(witness);
    roster.get('y')!.links.add('x');
    expect(readiness.canStart()).toBe(true);
    expect(new Readiness({ run, roster, stages: new StageStates(2) }).canStart()).toBe(true);
    expect(readiness.missingReason(1)).toBe('waiting for a peer for stage 1 (x, y setting up)');
  });

  it('witness sets: a peer the roster no longer knows has none, never one drawn among every stage’s peers', () => {
    const roster = rosterOf(testRun({ minPerStage: 2 }), [
      ['a', 0, 'active'],
      ['b', 0, 'active'],
      ['x', 1, 'active'],
      ['y', 1, 'active'],
    ]);
    const sets = new WitnessSets({ roster, muted: () => false, now: () => 0, random: () => 0, quorum: 2 });
    expect(sets.members('a')).toEqual(['b']);
    expect(sets.members('gone')).toEqual([]);
    expect(sets.witnesses('gone')).toEqual([]);
  });

  it('witness sets: before the start, none is drawn until the stage has a quorum of ready peers (the first two ready are not made each other’s only witness)', () => {
    const roster = rosterOf(testRun({ minPerStage: 3 }), [
      ['a', 0, 'ready'],
      ['b', 0, 'ready'],
      ['c', 0, 'setup'],
      ['x', 1, 'ready'],
    ]);
    const sets = new WitnessSets({ roster, muted: () => false, now: () => 0, random: () => 0, quorum: 3 });
    expect(sets.members('a')).toEqual([]);
    expect(sets.checkable('a')).toBe(false);
    roster.get('c')!.state = 'ready';
    // Now drawn among all three: a's one witness is b or c at random (the first, for a draw of 0).
    expect(sets.members('a')).toEqual(['b']);
    expect(sets.members('c')).toEqual(['a']);
  });

  it('routing: a replica measured slow once is not starved for good: idle rounds bring its measure back until it is routed and measured again', () => {
    const run = testRun();
    const roster = rosterOf(run, [
      ['a', 0],
      ['b', 0],
      ['c', 0],
      ['x', 1],
    ]);
    roster.get('a')!.msPerMicrobatch = 100;
    roster.get('b')!.msPerMicrobatch = 100;
    roster.get('c')!.msPerMicrobatch = 900; // its first round, say, with cold caches
    const routing = new Routing({ run, roster });
    const firsts = (round: number) => {
      const plan = routing.planStep(round);
      return plan.ok ? plan.routes.map((p) => p[0]) : [];
    };
    expect(firsts(1)).not.toContain('c');
    let round = 2;
    while (!firsts(round).includes('c')) {
      round++;
      expect(round, 'c is routed again within a few rounds').toBeLessThan(12);
    }
    expect(roster.get('c')!.msPerMicrobatch).toBeGreaterThan(100); // relaxed toward the median, never below it
    expect(roster.get('a')!.msPerMicrobatch).toBe(100); // routed replicas keep their own measure
  });

  it('routing: with spot checks on, work goes only to replicas linked to their assigned witnesses, where a stage has any', () => {
    const run = testRun();
    const roster = rosterOf(run, [
      ['a', 0],
      ['b', 0],
      ['c', 0],
      ['x', 1],
    ]);
    for (const id of ['b', 'c']) roster.get('a')!.links.delete(id);
    const sets = new WitnessSets({ roster, muted: () => false, now: () => 0, random: () => 0.99, quorum: 2 });
    expect(['a', 'b', 'c'].map((p) => sets.members(p))).toEqual([['c'], ['c'], ['b']]);
    const plan = new Routing({ run, roster, checkable: (p) => sets.checkable(p) }).planStep(1);
    expect(plan.ok && [...new Set(plan.routes.map((p) => p[0]))].sort()).toEqual(['b', 'c']);
    const naive = new Routing({ run, roster }).planStep(1);
    expect(naive.ok && new Set(naive.routes.map((p) => p[0])).has('a')).toBe(true);
    const routing = new Routing({ run, roster });
    const path = routing.path(new Set(['a', 'b']));
    expect(path).toEqual(['c', 'x']);
    expect(routing.onPathsThrough('x')).toEqual(['c', 'x']);
  });

  it('witness sets: a finding no panel could settle benches the accused until it links to another independent replica; an honest one, linked to all, is never benched', () => {
    const run = testRun();
    const roster = rosterOf(run, [
      ['a', 0],
      ['b', 0],
      ['c', 0],
      ['x', 1],
    ]);
    // a reports a channel to b alone (one-witness-link): its set of one is b, so it is checkable.
    roster.get('a')!.links.delete('c');
    const sets = new WitnessSets({ roster, muted: () => false, now: () => 0, random: () => 0, quorum: 2 });
    expect([sets.members('a'), sets.checkable('a')]).toEqual([['b'], true]);
    // b finds a wrong, and nobody but b could sit on the panel: a gets no work until it links to c.
    sets.noPanel('a', 'b');
    expect(sets.checkable('a')).toBe(false);
    const routed = () => {
      const plan = new Routing({ run, roster, checkable: (p) => sets.checkable(p) }).planStep(1);
      return plan.ok ? [...new Set(plan.routes.map((p) => p[0]))].sort() : [];
    };
    expect(routed()).not.toContain('a');
    roster.get('a')!.links.add('c');
    expect(sets.checkable('a')).toBe(true);
    expect(routed()).toContain('a');
    // An honest peer, linked to every replica, keeps its work whatever one accuser says.
    sets.noPanel('b', 'a');
    expect(sets.checkable('b')).toBe(true);
    // With no third replica to link to, an accused could do nothing: it keeps its work (the round is discarded, as before).
    const pair = rosterOf(run, [
      ['p', 0],
      ['q', 0],
      ['y', 1],
    ]);
    const pairSets = new WitnessSets({ roster: pair, muted: () => false, now: () => 0, random: () => 0, quorum: 2 });
    pairSets.noPanel('p', 'q');
    expect(pairSets.checkable('p')).toBe(true);
    // A replica of the accuser's account sits on no panel, an unlinked independent one could; once the accuser is gone, it accuses nobody any more.
    const four = rosterOf(run, [
      ['a', 0],
      ['b', 0],
      ['c', 0],
      ['d', 0],
      ['x', 1],
    ]);
    const twin = '0x000000000000000000000000000000000000000b' as const;
    four.get('b')!.account = twin;
    four.get('c')!.account = twin;
    four.get('a')!.links.delete('d');
    const fourSets = new WitnessSets({ roster: four, muted: () => false, now: () => 0, random: () => 0, quorum: 2 });
    expect([fourSets.members('a'), fourSets.checkable('a')]).toEqual([['b', 'c'], true]);
    fourSets.noPanel('a', 'b');
    expect(fourSets.checkable('a')).toBe(false);
    four.get('b')!.state = 'gone';
    expect(fourSets.checkable('a')).toBe(true);
  });

  it('witness sets: drawn by the coordinator, not by a peer’s channels; a member that never links is replaced after the grace, at most MAX_REDRAWS times', () => {
    const roster = rosterOf(testRun(), [
      ['a', 0],
      ['b', 0],
      ['c', 0],
      ['d', 0],
      ['e', 0],
      ['f', 0],
      ['x', 1],
    ]);
    let now = 0;
    let draws = 0;
    const sets = new WitnessSets({ roster, muted: () => false, now: () => now, random: () => [0.1, 0.7, 0.4, 0.9, 0.2][draws++ % 5], quorum: 2 });
    const first = [...sets.members('a')];
    expect(first).toHaveLength(SET_SIZE);
    expect(first).not.toContain('a');
    // a opens channels only to the replicas outside its set: it gets no work, and no say.
    const outside = ['b', 'c', 'd', 'e', 'f'].filter((p) => !first.includes(p));
    roster.get('a')!.links = new Set([...outside, 'x']);
    expect(sets.checkable('a')).toBe(false);
    expect(sets.witnesses('a')).toEqual([]);
    now += GRACE_MS - 1;
    expect(sets.members('a')).toEqual(first);
    let replaced = 0;
    let before = first;
    for (let i = 0; i < 20; i++) {
      now += GRACE_MS;
      const after = [...sets.members('a')];
      replaced += before.filter((w) => !after.includes(w)).length;
      before = after;
    }
    expect(replaced).toBeGreaterThan(0);
    expect(replaced).toBeLessThanOrEqual(MAX_REDRAWS);
    // A member gone is replaced at once.
    roster.retire(roster.get(sets.members('b')[0])!, 'lost');
    expect(sets.members('b')).toHaveLength(SET_SIZE);
    expect(sets.members('b').every((w) => roster.get(w)!.state === 'active')).toBe(true);
  });

  it('membership and departures: a purged account is refused; a leaving last replica hands its state to a peer setting up', () => {
    const run = testRun();
    const roster = new Roster(2, 8);
    const stages = new StageStates(2);
    const sent: Array<{ to: string; m: ServerMessage }> = [];
    const o = { run, roster, stages, send: (to: string, m: ServerMessage) => sent.push({ to, m }), now: () => 0, log: () => {}, step: () => 4 };
    const membership = new Membership(o);
    const reg = (name: string, maxLayers = 8) => ({ name, key: name.padEnd(64, '0'), capability: { adapter: 't', kind: 'cpu' as const, gflops: 1, memoryBytes: 1e9, maxLayers } });
    expect(membership.register('a', reg('a'))).toEqual({ ok: true, stage: 0 });
    expect(membership.register('x', reg('x'))).toEqual({ ok: true, stage: 1 });
    expect(membership.register('tiny', reg('tiny', 1))).toEqual({ ok: false, reason: 'this GPU can hold 1 layer(s); the smallest stage of this run has 2' });
    membership.bar(roster.get('x')!);
    expect(membership.register('x2', { ...reg('x2'), key: roster.get('x')!.key })).toEqual({ ok: false, reason: 'this peer was purged from the run' });
    roster.get('a')!.state = 'active';
    stages.vote(0, 4, hash('a'), 'a', 0);
    expect(membership.register('h', reg('h'))).toEqual({ ok: true, stage: 0 });
    const departures = new Departures({ ...o, membership, started: () => true, onPathsThrough: () => [] });
    const gone = departures.depart('a', 'paused', { kept: { step: 4, hash: hash('a') } });
    expect([gone?.graceful, stages.heldBy(0), roster.get('h')?.heirOf]).toEqual([true, 'a', 'a']);
    expect(sent.filter((s) => s.m.type === 'handoff')).toEqual([{ to: 'a', m: { type: 'handoff', to: 'h' } }]);
    const assigned = sent.filter((s) => s.to === 'h' && s.m.type === 'assign').at(-1)?.m;
    expect(assigned?.type === 'assign' && assigned.state).toEqual({ from: 'replica', peers: ['a'] });
    expect(departures.depart('a', 'again')).toBeUndefined();
  });
});
