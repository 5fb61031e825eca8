// What the swarm knows of each stage's training state, though it never holds one: the newest state
// (its step, and the parameter hash its replicas agreed on after averaging), and, while no live peer
// holds that state, the gone peer that does. A returning peer's kept state is taken only if it is
// that newest state (or a later committed one) with the agreed hash.
import type { RunConfig } from '../shared/run/config.js';
import type { HeldState } from '../shared/swarm/protocol.js';

interface StageState {
  /** The newest state of the stage the swarm knows of, and its parameter hash when known. */
  newest: { step: number; hash?: string };
  /** Parameter hashes the stage's members reported after averaging, by step (recent ones), with who reported each. */
  hashes: Map<number, Map<string, Set<string>>>;
  /** Name of the gone peer that holds `newest`, while no live peer does. */
  heldBy?: string;
}

export class StageStates {
  private readonly stages: StageState[];

  constructor(count: number) {
    this.stages = Array.from({ length: count }, () => ({ newest: { step: 0 }, hashes: new Map() }));
  }

  get count(): number {
    return this.stages.length;
  }
  newest(stage: number): Readonly<{ step: number; hash?: string }> {
    return this.stages[stage].newest;
  }
  heldBy(stage: number): string | undefined {
    return this.stages[stage].heldBy;
  }
  /** A live peer holds the stage's newest state again. */
  held(stage: number): void {
    this.stages[stage].heldBy = undefined;
  }

  /** Each stage's newest state, for the coordinator's store. */
  snapshot(): Array<{ step: number; hash?: string }> {
    return this.stages.map((s) => ({ ...s.newest }));
  }

  /** Take up saved states: every stage that trained past its seed waits for a returning peer. */
  resume(saved: ReadonlyArray<{ step: number; hash?: string }>): void {
    if (saved.length !== this.stages.length) throw new Error(`the saved run has ${saved.length} stages, this one ${this.stages.length}`);
    saved.forEach((s, i) => {
      this.stages[i].newest = { ...s };
      if (s.step > 0) this.stages[i].heldBy = 'the peers that trained it before the coordinator restarted';
    });
  }

  /**
   * A member's hash of its stage's parameters after averaging at `step` (the caller checks it may
   * vote). Once per member and step; replicas end averaging bit-identical, so the hash most of them
   * report is the stage's, and one member cannot plant a hash of its own. Votes older than `keepFrom` are dropped.
   */
  vote(stage: number, step: number, hash: string, peerId: string, keepFrom: number): void {
    const st = this.stages[stage];
    let votes = st.hashes.get(step);
    if (!votes) st.hashes.set(step, (votes = new Map()));
    if ([...votes.values()].some((who) => who.has(peerId))) return;
    votes.set(hash, (votes.get(hash) ?? new Set()).add(peerId));
    // A stage's newest state is the newest one a peer has confirmed it keeps: a peer killed
    // before it saved its state must not leave the run waiting for a state nobody has.
    if (step >= st.newest.step) st.newest = { step, hash: this.agreedHash(stage, step) };
    for (const old of [...st.hashes.keys()]) if (old < keepFrom) st.hashes.delete(old);
  }

  /**
   * An active member's vote after the averaging at `step`: counted only for a recent averaging step
   * of the run (at most `lastStep`, the last committed one).
   */
  memberVote(run: RunConfig, stage: number, step: number, hash: string, peerId: string, lastStep: number): void {
    const averaged = step % run.averageEvery === 0 || step === run.steps;
    const window = 4 * run.averageEvery;
    if (averaged && step <= lastStep && step >= lastStep - window) this.vote(stage, step, hash, peerId, step - window);
  }

  /** The stage's newest state with the hash more than half of `replicas` reported for it, if they did. */
  vouched(stage: number, replicas: number): { step: number; hash: string } | undefined {
    const { step } = this.stages[stage].newest;
    const hash = this.majority(stage, step, replicas);
    return hash === undefined ? undefined : { step, hash };
  }

  /**
   * Why a state of `step` hashing to `hash`, loaded by a joiner of a stage with `replicas` active
   * members, is not one they vouch for, if it is not: past `lastStep` (the last commit), or not the
   * hash more than half of them (else more than half of those that reported) reported for that
   * step. A tie vouches for nothing. Step 0 is the seeded init, which the joiner checks itself; a
   * stage with no replica has nobody to vouch.
   */
  unvouched(stage: number, step: number, hash: string, replicas: number, lastStep: number): string | undefined {
    if (replicas === 0 || step === 0) return undefined;
    if (step > lastStep) return `step ${step} is past the run's last commit, step ${lastStep}`;
    const votes = this.stages[stage].hashes.get(step);
    if (!votes?.size) return `no replica of stage ${stage} reported a state at step ${step}`;
    const reporters = [...votes.values()].reduce((n, who) => n + who.size, 0);
    const expected = this.majority(stage, step, replicas) ?? this.majority(stage, step, reporters);
    if (!expected) return `its replicas reported ${votes.size} different states at step ${step}, none by most of them`;
    return expected === hash ? undefined : `it hashes to ${hash.slice(0, 12)}…, not the ${expected.slice(0, 12)}… its replicas reported`;
  }

  /**
   * Why a state of `stage` at `step` hashing to `hash`, which `peerId` signed as one it gave, proves
   * it lied, if it does: no replica can hold a step past `lastStep` (the last commit); and an honest
   * one holds at a step the hash it reported itself or, loaded again, one another member reported.
   * A signer that reported nothing for that step is not proven anything.
   */
  contradiction(stage: number, step: number, hash: string, peerId: string, lastStep: number): string | undefined {
    const st = this.stages[stage];
    if (!st) return undefined;
    if (step > lastStep) return `it gave a state of stage ${stage} at step ${step}, past the run's last commit (step ${lastStep})`;
    const votes = st.hashes.get(step);
    const own = [...(votes ?? [])].find(([, who]) => who.has(peerId))?.[0];
    if (own === undefined || own === hash || [...(votes?.get(hash) ?? [])].some((q) => q !== peerId)) return undefined;
    return `it gave a state of stage ${stage} at step ${step} hashing to ${hash.slice(0, 12)}…, having reported ${own.slice(0, 12)}… for that step`;
  }

  /** The hash more than half of `of` members reported for `step`, if one was. */
  private majority(stage: number, step: number, of: number): string | undefined {
    const votes = this.stages[stage].hashes.get(step);
    return votes && [...votes].find(([, who]) => 2 * who.size > of)?.[0];
  }

  /** The members that reported another hash than `hash` for `step`. */
  dissenters(stage: number, step: number, hash: string): string[] {
    return [...(this.stages[stage].hashes.get(step) ?? [])].flatMap(([h, who]) => (h === hash ? [] : [...who]));
  }

  /** The hash most of a stage's members reported for `step`, if any reported. */
  agreedHash(stage: number, step: number): string | undefined {
    const votes = this.stages[stage].hashes.get(step);
    if (!votes) return undefined;
    return [...votes].reduce<[string, Set<string>] | undefined>((best, v) => (!best || v[1].size > best[1].size ? v : best), undefined)?.[0];
  }

  /**
   * The stage's last replica is gone: its newest state left with it, a state it kept at the step it
   * stopped (never beyond `lastStep`, the run's last commit) or else its last averaged one. Before
   * the first averaging that is the seeded init, which any peer can rebuild: then nobody has to come back.
   */
  lastReplicaGone(stage: number, name: string, lastStep: number, kept?: { step: number; hash: string }): void {
    const st = this.stages[stage];
    if (kept && kept.step >= st.newest.step && kept.step <= lastStep) st.newest = { ...kept };
    else st.newest = { step: st.newest.step, hash: st.newest.hash ?? this.agreedHash(stage, st.newest.step) };
    if (st.newest.step > 0) st.heldBy = name;
  }

  /**
   * Whether `h` brings its stage back: its newest step or a later committed one (≤ `lastStep`), with
   * the hash its members reported, if known.
   */
  restores(h: HeldState, lastStep: number): boolean {
    const st = this.stages[h.stage];
    const known = this.agreedHash(h.stage, h.step) ?? (st.newest.step === h.step ? st.newest.hash : undefined);
    return h.step >= st.newest.step && h.step <= lastStep && (known === undefined || known === h.hash);
  }
}
