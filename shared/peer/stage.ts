// The stage the coordinator places this peer on: its seat (seat.ts: the block on the GPU and what
// runs it), built for the stage, and its training state, loaded from where the coordinator says (the
// seed, the state this peer kept, or a live replica, whichever of those opens a channel first).
// A newer placement supersedes one still loading.
import type { Gpu } from '../../kernels/context.js';
import type { CharCorpus } from '../engine/data.js';
import type { RunConfig } from '../run/config.js';
import { runCorpus, runStageConfigs } from '../run/derive.js';
import type { ServerMessageOf, StateSeal } from '../swarm/protocol.js';
import type { TrainState } from '../engine/checkpoint.js';
import { layout } from '../engine/model.js';
import type { MailboxOptions } from '../trust/mailbox.js';
import { stateProblem, type Vouched, vouchedProblem } from '../trust/state-check.js';
import type { PeerContext } from './context.js';
import type { Neighbours } from './neighbours.js';
import { StageSeat } from './seat.js';
import { largestMessageBytes } from './stage-frames.js';
import type { RunnerOptions } from './stage-runner.js';
import type { StateExchange } from './state-sync.js';
import { keepState, loadHeld } from './state-store.js';
import { paramsHash } from './state-sync.js';

export interface StageOptions {
  gpu(): Gpu;
  /** The detected GPU memory budget (the stage's KV cache gets what training leaves of it). */
  memoryBytes(): number;
  neighbours: Neighbours;
  states: StateExchange;
  /** Boundary frames out, sealed (the trust gate). */
  sendFrame(to: string, bytes: Uint8Array): void;
  /** A neighbour's frame refused as its fault, or out of its band (the neighbour reports). */
  onHostile: MailboxOptions['onHostile'];
  onSuspect: MailboxOptions['onSuspect'];
  extraWarmup: number;
  autotune: boolean;
  onBoundary?: RunnerOptions['onBoundary'];
  slowdown?: number;
  /** The stage is about to be given up (its counters are read one last time). */
  beforeDrop(): void;
}

export class Stage {
  seat?: StageSeat;
  /** Assign messages received so far (a load that fails while a newer one waits is not fatal). */
  private assigns = 0;
  /**
   * The replica this seat's state was fetched from, its step, and how many assigns had arrived when
   * the request went out: an assign that had arrived by then names no newer state of that replica.
   */
  private fetched?: { from: string; step: number; assignsSeen: number; seal: StateSeal };
  private corpus?: { runId: string; corpus: CharCorpus };

  constructor(
    private readonly ctx: PeerContext,
    private readonly o: StageOptions,
  ) {}

  /** An assign arrived (counted on arrival: a newer one supersedes a load still under way). Returns its number. */
  arrived(): number {
    return ++this.assigns;
  }

  /** The training text of the current run, once loaded. */
  get text(): CharCorpus | undefined {
    return this.corpus?.corpus;
  }

  /**
   * Take the stage the coordinator placed this peer on (the assign numbered `seq`) and load its state.
   * Returns the step of the state loaded, or undefined when a newer assign superseded this one.
   */
  async take(m: ServerMessageOf<'assign'>, seq: number): Promise<number | undefined> {
    this.ctx.emit('assigned', { stage: m.stage, run: m.run, state: m.state });
    this.ctx.setPhase('setting-up', `placed on stage ${m.stage} of ${m.run.stages}; loading the stage`);
    if (this.seat && (this.seat.stage !== m.stage || this.seat.run.runId !== m.run.runId)) this.drop();
    const cfg = runStageConfigs(m.run)[m.stage];
    this.o.neighbours.place(m.stage, m.state.from === 'replica' ? m.state.peers : [], largestMessageBytes(cfg, layout(cfg).total));
    this.seat ??= await this.build(m);
    // A newer assign is queued (a handoff naming where the stage's newest state is): it loads instead.
    if (this.assigns !== seq) return undefined;
    // A handoff naming the leaver this peer asked for its state after the handoff was sent: the leaver
    // kept that state before it said it leaves, so this peer has it, and a second fetch would only
    // race the leaver's exit.
    const f = this.fetched;
    if (m.state.from === 'replica' && f && f.assignsSeen >= seq && m.state.peers.includes(f.from)) {
      this.o.neighbours.stateSources.clear();
      return f.step;
    }
    try {
      const step = await this.load(m.state);
      this.o.neighbours.stateSources.clear();
      return step;
    } catch (e) {
      // Superseded while loading (its source left with a handoff): the newer assign decides.
      if (this.assigns !== seq) return void this.ctx.say(`${(e as Error).message}; following the newer assignment`);
      // Its source left before it could be asked again: offer what it gave before (the coordinator
      // takes it only if it is the stage's newest state).
      if (f && m.state.from === 'replica' && m.state.peers.includes(f.from)) {
        this.ctx.say(`${(e as Error).message}; offering the state ${f.from} gave before (step ${f.step})`);
        this.fetched = f;
        return f.step;
      }
      throw e;
    }
  }

  /** Give the stage up: free its GPU memory. */
  drop(): void {
    this.fetched = undefined;
    if (!this.seat) return;
    this.o.beforeDrop();
    this.seat.destroy();
    this.seat = undefined;
  }

  private async build(m: ServerMessageOf<'assign'>): Promise<StageSeat> {
    return StageSeat.create({
      gpu: this.o.gpu(),
      memoryBytes: this.o.memoryBytes(),
      run: m.run,
      stage: m.stage,
      corpus: await this.corpusOf(m.run),
      self: this.ctx.peerId(),
      send: this.o.sendFrame,
      linked: (p) => this.o.neighbours.linked(p),
      now: () => this.ctx.host.now(),
      log: (l) => this.ctx.say(l),
      timeoutMs: this.ctx.timeoutMs,
      extraWarmup: this.o.extraWarmup,
      autotune: this.o.autotune,
      onBoundary: this.o.onBoundary,
      slowdown: this.o.slowdown,
      onHostile: this.o.onHostile,
      onSuspect: this.o.onSuspect,
      progress: (what) => this.ctx.setPhase('setting-up', what),
    });
  }

  /** Load the stage's state from where the coordinator says; returns its step. */
  private async load(source: ServerMessageOf<'assign'>['state']): Promise<number> {
    const seat = this.seat!;
    this.fetched = undefined;
    if (source.from === 'seed') {
      seat.snapshot = await seat.capture();
      return 0;
    }
    if (source.from === 'own') {
      const c = await loadHeld(this.ctx.host.storage, { runId: seat.run.runId, stage: seat.stage }, source.step, source.hash);
      this.check(c, 'the state this peer kept');
      seat.runtime.loadState(c);
      seat.snapshot = await seat.capture();
      return c.step;
    }
    // A replica's state of step 0 is the seeded init this peer just built: it must be that one.
    const seed = { step: 0, hash: (await seat.capture()).paramsHash };
    return this.fetch(source.peers, source.vouched, seed);
  }

  /** From whichever replica's channel opens first; a replica that fails or is gone is skipped. */
  private async fetch(peers: readonly string[], vouched: Vouched | undefined, seed: Vouched): Promise<number> {
    const seat = this.seat!;
    const errors: string[] = [];
    const left = new Set(peers);
    while (left.size > 0) {
      const from = await this.o.neighbours.firstChannel(left);
      if (!from) break;
      left.delete(from);
      try {
        this.ctx.setPhase('setting-up', `downloading stage ${seat.stage}'s state from ${from}`);
        const assignsSeen = this.assigns;
        const { state: c, seal } = await this.o.states.fetch(from, seat.stage, this.ctx.timeoutMs);
        await this.checkGiven(c, from, seal, [vouched, c.step === 0 ? seed : undefined]);
        seat.runtime.loadState(c);
        seat.snapshot = await seat.capture();
        await keepState(this.ctx.host.storage, seat.snapshot, seat.run.runId);
        this.ctx.say(`loaded stage ${seat.stage}'s state at step ${c.step} from ${from}`);
        this.fetched = { from, step: c.step, assignsSeen, seal };
        return c.step;
      } catch (e) {
        errors.push(`${from}: ${(e as Error).message}`);
        if (left.size > 0) this.ctx.say(`could not load stage ${seat.stage}'s state from ${from}: ${(e as Error).message}; trying another replica`);
      }
    }
    const why = errors.join('; ') || `no data channel opened within ${this.ctx.timeoutMs} ms`;
    throw new Error(`could not load stage ${seat.stage}'s state from ${peers.join(', ')}: ${why}`);
  }

  /** The seal of the replica whose state this seat holds, when it holds one it fetched. */
  sealOfLoaded(): StateSeal | undefined {
    return this.fetched?.seal;
  }

  /** Refuse a replica's state (below); the replica's seal of a refused one goes to the coordinator, which holds what it reported for that step. */
  private async checkGiven(c: TrainState, from: string, seal: StateSeal, vouched: Array<Vouched | undefined>): Promise<void> {
    try {
      this.check(c, `${from}'s state`);
      for (const v of vouched) await this.checkVouched(c, v, from);
    } catch (e) {
      this.ctx.send({ type: 'bad-state', seal });
      throw e;
    }
  }

  /**
   * Refuse a state older than the one the stage's replicas vouched for, or of that step with other
   * parameters. A newer one (an averaging since the assign) is taken: the coordinator checks its
   * hash when this peer reports ready.
   */
  private async checkVouched(c: TrainState, vouched: Vouched | undefined, from: string): Promise<void> {
    const problem = vouched && vouchedProblem({ step: c.step, hash: await paramsHash(c.params) }, vouched);
    if (problem) throw new Error(`${from}'s state is refused: ${problem}`);
  }

  /** Refuse a state no honest replica of this stage could hold (trust/state-check.ts). */
  private check(c: TrainState, what: string): void {
    const seat = this.seat!;
    const problem = stateProblem(c, { floats: seat.runtime.layout.total, lastStep: seat.run.steps });
    if (problem) throw new Error(`${what} is refused: ${problem}`);
  }

  private async corpusOf(run: RunConfig): Promise<CharCorpus> {
    if (this.corpus?.runId !== run.runId) this.corpus = { runId: run.runId, corpus: await runCorpus(run, await this.ctx.host.loadCorpus(run)) };
    return this.corpus.corpus;
  }
}
