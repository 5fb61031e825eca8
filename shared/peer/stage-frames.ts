// What a stage's neighbours may send it, exactly: for each kind of frame the one shape an honest
// peer sends (stage-runner.ts, averaging.ts, generate.ts), and how much one sender may have held at
// once. The mailbox decodes nothing else, so no frame can cost more than an honest one.
import { boundaryWidth } from '../engine/model.js';
import type { BlockConfig } from '../engine/model.js';
import type { Dtype } from '../wire/codec.js';
import { FrameKind, type FrameShape, type FrameShapes } from '../wire/frame.js';
import { START_COLS } from './generate-frames.js';
import { AVG_STEPS_HELD, GEN_FRAMES_PER_REQUEST, GEN_OPEN_REQUESTS, type MailboxOptions, REPLICA_COLS } from '../trust/mailbox.js';

export interface StageFrameSpec {
  /** The stage's block: its first stage holds the embedding, its last the head. */
  cfg: BlockConfig;
  /** The run's boundary dtype (dtypeOf(run.codec)), and its quantizer step if it has one (quantStep). */
  dtype: Dtype;
  step?: number;
  /** Floats of the stage's parameters (layout.total, a multiple of REPLICA_COLS). */
  params: number;
  /** Microbatches per round, and validation batches per evaluation: what one sender sends per round. */
  microbatches: number;
  evalBatches: number;
}

const exactly = (rows: number, cols: number, dtype: Dtype): FrameShape => ({ minRows: rows, maxRows: rows, cols, dtype, tokens: false });

/** The shapes and per-sender caps of a stage's mailbox. */
export function stageFrames(o: StageFrameSpec): Pick<MailboxOptions, 'shapes' | 'perSender'> {
  const { cfg, dtype } = o;
  if (o.params % REPLICA_COLS !== 0) throw new Error(`${o.params} parameters do not make rows of ${REPLICA_COLS}`);
  const N = cfg.batch * cfg.seq;
  const width = boundaryWidth(cfg);
  const boundary = { ...exactly(N, width, dtype), ...(o.step !== undefined && { step: o.step }) };
  // Training frames carry no token ids: every stage derives the batch from the shared data order.
  const shapes: FrameShapes = { [FrameKind.ReplicaWeights]: exactly(o.params / REPLICA_COLS, REPLICA_COLS, 'fp32') };
  if (!cfg.hasEmbedding) {
    shapes[FrameKind.Activation] = boundary;
    shapes[FrameKind.EvalActivation] = boundary;
    shapes[FrameKind.GenerateStart] = exactly(1, START_COLS, 'fp32');
    // The rows of sequence 0's real positions, with their ids when boundaries are subspace coefficients.
    shapes[FrameKind.GenerateActivation] = { minRows: 1, maxRows: cfg.seq, cols: width, dtype, tokens: !!cfg.subspace };
  }
  if (!cfg.hasHead) {
    shapes[FrameKind.Gradient] = boundary;
    shapes[FrameKind.GenerateToken] = exactly(1, 1, 'fp32');
  }
  // An honest sender has at most a round's frames and an evaluation's here at a time (the next
  // round needs this peer's part of the one before); twice that is room enough.
  const training = 2 * (o.microbatches + o.evalBatches);
  const generation = GEN_OPEN_REQUESTS * GEN_FRAMES_PER_REQUEST;
  return {
    shapes,
    perSender: {
      frames: training + generation + AVG_STEPS_HELD,
      bytes: 4 * (training * N * width + generation * cfg.seq * (width + 1) + AVG_STEPS_HELD * o.params),
    },
  };
}

/**
 * The largest message an honest neighbour sends a peer of this stage, envelope and seal included:
 * a state transfer (parameters, Adam m and v) or an audit bundle (parameters and four boundary
 * frames), with room for their headers. A link reassembles nothing larger.
 */
export function largestMessageBytes(cfg: BlockConfig, params: number): number {
  const N = cfg.batch * cfg.seq;
  const frame = 32 + N * (4 * boundaryWidth(cfg) + 2);
  return 12 * params + 4 * frame + 64 * 1024;
}
