// Pipeline peers in one process on one GPU, their data channels in memory: each peer has an id, a
// stage's runtime, a mailbox, a stage runner and a generation peer, as a seat of the peer session
// has; `send` delivers a copy to the receiver's mailbox a tick later, as a real channel would.
// Large messages go through ChunkedLink with small chunks, so reassembly is exercised too.
import type { Gpu } from '../kernels/context.js';
import { charCorpus, sampleBatch } from '../shared/engine/data.js';
import type { ModelSpec } from '../shared/run/derive.js';
import { BlockRuntime } from '../shared/engine/block-runtime.js';
import type { BlockConfig } from '../shared/engine/model.js';
import type { AdamW } from '../shared/engine/optimizer.js';
import { ReplicaAverager } from '../shared/peer/averaging.js';
import { DecodeBatcher } from '../shared/peer/decode-batcher.js';
import { GenerationPeer, type Hop } from '../shared/peer/generate.js';
import { Mailbox } from '../shared/trust/mailbox.js';
import { stageFrames } from '../shared/peer/stage-frames.js';
import { type Batch, StageRunner } from '../shared/peer/stage-runner.js';
import type { Dtype } from '../shared/wire/codec.js';
import { ChunkedLink, memoryChannelPair } from '../shared/wire/link.js';

/** A tiny corpus, model and data order the in-memory tests share: M microbatches of 2×8 tokens per step. */
const TEXT =
  'To be, or not to be, that is the question:\nWhether tis nobler in the mind to suffer\nThe slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\nAnd by opposing end them.\n';
export const corpus = charCorpus(TEXT.repeat(4), 0.25);
export const M = 3;
export const batch = (step: number, mb: number, split: 'train' | 'val') => sampleBatch(split === 'train' ? corpus.train : corpus.val, 2, 8, 5, step * 100 + mb);
/**
 * Clipping is per stage in a pipeline (each stage clips its own gradient norm), so checks of
 * exactness against the whole model turn it off; everything else must match.
 */
export const OPT = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1e9 };
export const model: ModelSpec = { vocab: corpus.vocab.length, dModel: 16, nHead: 2, nLayer: 3, seq: 8, batch: 2 };

export interface MemoryPeer {
  id: string;
  stage: number;
  runtime: BlockRuntime;
  mailbox: Mailbox;
  runner: StageRunner;
  averager: ReplicaAverager;
  generation: GenerationPeer;
  /** Training frames it took out of their norm band (a session reports them for audit), as `from:round:microbatch`. */
  suspects: string[];
  /** Bytes this peer put on its channels, chunk headers included. */
  sent(): number;
  hop(to: string): Hop;
}

export interface PeerSpec {
  id: string;
  stage: number;
  cfg: BlockConfig;
  init: Float32Array;
  slots: number;
  /** Activation slot generation uses (default 0). */
  generationSlot?: number;
  /** Slots training may use (default all). */
  trainingSlots?: number;
  /** Keeps no KV cache (a GPU with no memory left for one): every request must re-forward its window. */
  noCache?: boolean;
}

export interface MemorySwarm {
  peers: Map<string, MemoryPeer>;
  get(id: string): MemoryPeer;
}

export async function memorySwarm(
  gpu: Gpu,
  specs: PeerSpec[],
  o: { stages: number; dtype: Dtype; optimizer: AdamW; batch(step: number, mb: number, split: 'train' | 'val'): Batch; timeoutMs?: number },
): Promise<MemorySwarm> {
  const peers = new Map<string, MemoryPeer>();
  // One chunked link per ordered pair, created on first use.
  const links = new Map<string, ChunkedLink>();
  const link = (from: string, to: string): ChunkedLink => {
    const key = `${from}>${to}`;
    let l = links.get(key);
    if (!l) {
      const [a, b] = memoryChannelPair();
      l = new ChunkedLink(a, 4096);
      const rx = new ChunkedLink(b, 4096);
      rx.onMessage((bytes) => peers.get(to)?.mailbox.deliver(from, bytes));
      links.set(key, l);
    }
    return l;
  };
  for (const s of specs) {
    const runtime = await BlockRuntime.create(gpu, s.cfg, { init: s.init, optimizer: o.optimizer, slots: s.slots });
    // Built as a seat builds it (these tests route at most M microbatches per round and do not evaluate).
    const suspects: string[] = [];
    const mailbox = new Mailbox({
      ...stageFrames({ cfg: s.cfg, dtype: o.dtype, params: runtime.layout.total, microbatches: M, evalBatches: 0 }),
      onSuspect: (from, w) => suspects.push(`${from}:${w.round}:${w.mb}`),
    });
    const send = (to: string, bytes: Uint8Array) => link(s.id, to).send(bytes);
    const timeoutMs = o.timeoutMs ?? 20_000;
    // Every replica starts from the same weights: the anchor robust averaging judges moves from.
    const start = { params: await runtime.readParams(), step: 0 };
    peers.set(s.id, {
      id: s.id,
      stage: s.stage,
      runtime,
      mailbox,
      runner: new StageRunner({
        runtime,
        stage: s.stage,
        stages: o.stages,
        dtype: o.dtype,
        batch: o.batch,
        mailbox,
        send,
        lr: () => o.optimizer.lr,
        now: () => performance.now(),
        timeoutMs,
        slots: s.trainingSlots,
      }),
      averager: new ReplicaAverager({ runtime, self: s.id, mailbox, send, linked: () => true, timeoutMs, log: () => {}, anchor: () => start, lr: o.optimizer.lr }),
      generation: new GenerationPeer({
        runtime,
        stage: s.stage,
        stages: o.stages,
        dtype: o.dtype,
        slot: s.generationSlot ?? 0,
        timeoutMs,
        now: () => performance.now(),
        ...(!s.noCache && { batcher: DecodeBatcher.of(runtime, { now: () => performance.now() }) }),
      }),
      suspects,
      sent: () => [...links].filter(([k]) => k.startsWith(`${s.id}>`)).reduce((n, [, l]) => n + l.bytesSent, 0),
      hop: (to) => ({ send: (b) => send(to, b), inbox: mailbox.from(to).gen }),
    });
  }
  return { peers, get: (id) => peers.get(id)! };
}
