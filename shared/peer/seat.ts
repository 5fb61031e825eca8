// The stage a peer holds: its block runtime on the GPU, the runner of its training rounds, its
// replica averaging, its side of generation and its inboxes, all sized for that stage. A peer
// placed on another stage builds a new seat; leaving destroys it, which frees the GPU.
import type { Gpu } from '../../kernels/context.js';
import { BlockRuntime } from '../engine/block-runtime.js';
import type { CharCorpus } from '../engine/data.js';
import type { BlockConfig } from '../engine/model.js';
import { dtypeOf, quantStep } from '../wire/codec.js';
import { runLearningRate, runStageConfigs, trainBatch, valBatch } from '../run/derive.js';
import { ReplicaAverager } from './averaging.js';
import { decodeCheckpoint } from '../engine/checkpoint.js';
import { type WitnessDeps, auditShapes } from '../trust/audit.js';
import { DecodeBatcher, decodeRows } from './decode-batcher.js';
import { kvEntriesWithin } from '../engine/kv-decoder.js';
import { bytes } from '../base/sizes.js';
import { GenerationPeer } from './generate.js';
import { SERVE_SHARE, ServeShare } from './serve-share.js';
import { GEN_OPEN_REQUESTS, Mailbox, type MailboxOptions } from '../trust/mailbox.js';
import { stageFrames } from './stage-frames.js';
import { type RunnerOptions, StageRunner } from './stage-runner.js';
import { type StageSnapshot, snapshotOf } from './state-sync.js';
import type { RunConfig } from '../run/config.js';

export interface SeatOptions {
  gpu: Gpu;
  run: RunConfig;
  stage: number;
  corpus: CharCorpus;
  self: string;
  send(to: string, bytes: Uint8Array): void;
  /** Whether a data channel to a peer is open now. */
  linked(peerId: string): boolean;
  now(): number;
  log(line: string): void;
  /** How long to wait for a neighbour's frame. */
  timeoutMs: number;
  /** Forwards stage 0 keeps in flight beyond the pipeline depth (hides a gradient's round trip on a slow network). */
  extraWarmup: number;
  /** Measure matmul variants for this stage's shapes before building (slower start, faster steps). */
  autotune: boolean;
  /** GPU memory this peer may use (the detected budget): its KV cache gets what training leaves. */
  memoryBytes: number;
  /** What setting up is doing now (compiling on a CPU adapter can take minutes: say so). */
  progress?(what: string): void;
  onBoundary?: RunnerOptions['onBoundary'];
  slowdown?: RunnerOptions['slowdown'];
  /** A neighbour sent a frame refused as its fault (see Mailbox). */
  onHostile?: MailboxOptions['onHostile'];
  onSuspect?: MailboxOptions['onSuspect'];
}

export class StageSeat {
  readonly cfg: BlockConfig;
  readonly mailbox: Mailbox;
  readonly runner: StageRunner;
  readonly averager: ReplicaAverager;
  readonly generation: GenerationPeer;
  private readonly batcher?: DecodeBatcher;
  /** What a witness needs to recompute a replica's microbatch (audit.ts). */
  readonly witness: WitnessDeps;
  /** The newest state this peer can give a joiner: its last averaged one (or the one it keeps on leaving). */
  snapshot?: StageSnapshot;

  private constructor(
    readonly o: SeatOptions,
    readonly runtime: BlockRuntime,
  ) {
    this.cfg = runtime.cfg;
    const { run, stage } = o;
    const step = quantStep(run.codec);
    const frames = stageFrames({ cfg: this.cfg, dtype: dtypeOf(run.codec), step, params: runtime.layout.total, microbatches: run.microbatches, evalBatches: run.evalBatches });
    this.mailbox = new Mailbox({ ...frames, onHostile: o.onHostile, onSuspect: o.onSuspect });
    this.witness = {
      runtime,
      shapes: auditShapes(frames.shapes),
      batch: (step, mb) => trainBatch(run, o.corpus, step, mb),
      anchor: () => this.snapshot && { params: decodeCheckpoint(this.snapshot.bytes).params, step: this.snapshot.step },
      lr: run.optimizer.lr,
    };
    this.runner = new StageRunner({
      runtime,
      stage,
      stages: run.stages,
      dtype: dtypeOf(run.codec),
      step,
      batch: (step, mb, split) => (split === 'train' ? trainBatch(run, o.corpus, step, mb) : valBatch(run, o.corpus, mb)),
      mailbox: this.mailbox,
      send: o.send,
      lr: (step) => runLearningRate(run, step),
      now: o.now,
      timeoutMs: o.timeoutMs,
      onBoundary: o.onBoundary,
      slowdown: o.slowdown,
    });
    this.averager = new ReplicaAverager({
      runtime,
      self: o.self,
      mailbox: this.mailbox,
      send: o.send,
      linked: o.linked,
      timeoutMs: o.timeoutMs,
      log: o.log,
      anchor: this.witness.anchor,
      lr: run.optimizer.lr,
    });
    this.batcher = this.kvCache(runtime);
    this.generation = new GenerationPeer({
      runtime,
      stage,
      stages: run.stages,
      dtype: dtypeOf(run.codec),
      slot: 0,
      timeoutMs: o.timeoutMs,
      now: o.now,
      batcher: this.batcher,
      training: () => this.runner.training,
    });
  }

  /** The stage's KV cache, as many requests as the memory budget leaves room for after training (none: every token re-forwards its window). */
  private kvCache(runtime: BlockRuntime): DecodeBatcher | undefined {
    const { o } = this;
    const room = o.memoryBytes - runtime.gpuBytes;
    const requests = kvEntriesWithin(runtime.cfg, room, decodeRows(runtime.cfg), GEN_OPEN_REQUESTS);
    if (requests === 0) {
      o.log(`no room for a KV cache (${bytes(Math.max(0, room))} of the memory budget left after training): answers re-forward their window per token, and not while training`);
      return undefined;
    }
    if (requests < GEN_OPEN_REQUESTS)
      o.log(`the memory budget leaves room for a KV cache of ${requests} requests (of ${GEN_OPEN_REQUESTS}): more at once are told the stage is busy`);
    const share = new ServeShare({ ...SERVE_SHARE, now: o.now });
    return DecodeBatcher.of(runtime, { requests, now: o.now, pace: { share, training: () => this.runner.training, drained: () => o.gpu.device.queue.onSubmittedWorkDone() } });
  }

  static async create(o: SeatOptions): Promise<StageSeat> {
    const cfg = runStageConfigs(o.run)[o.stage];
    // Stage 0 keeps one microbatch in flight per later stage (the pipeline's depth), plus the extra;
    // a later stage needs as many as can be in flight past it.
    const slots = Math.max(1, o.run.stages - o.stage + (o.stage < o.run.stages - 1 ? o.extraWarmup : 0));
    const runtime = await BlockRuntime.create(o.gpu, cfg, {
      seed: o.run.seed,
      optimizer: o.run.optimizer,
      slots,
      autotune: o.autotune,
      onTuneProgress: (done, total) => o.progress?.(`timing matmul variants for stage ${o.stage}'s shapes (${done}/${total})`),
    });
    // Compile every kernel now: on a CPU adapter a cold shader cache takes minutes, and that must not happen mid-round.
    o.progress?.(`compiling stage ${o.stage}'s kernels (minutes on a CPU adapter with a cold shader cache)`);
    await runtime.warmUp();
    return new StageSeat(o, runtime);
  }

  get stage(): number {
    return this.o.stage;
  }

  get run(): RunConfig {
    return this.o.run;
  }

  /** The current state as a snapshot (reads the GPU). */
  async capture(): Promise<StageSnapshot> {
    return snapshotOf(await this.runtime.saveState(), { runId: this.o.run.runId, stage: this.o.stage });
  }

  /** Free the GPU memory this stage holds. */
  destroy(): void {
    this.batcher?.destroy();
    this.runtime.destroy();
  }
}
