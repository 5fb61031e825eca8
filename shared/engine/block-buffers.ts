// Where one block's tensors live on the GPU: parameters, gradients and Adam moments (one flat
// buffer each), the boundary tensors, the backward's scratch, and per activation slot the saved
// activations of every layer. Buffers come from a pool in a fixed order, so the rebuild after
// autotuning gets the very same buffers back, with what was written into them.
import type { Gpu, View } from '../../kernels/context.js';
import type { BlockConfig } from './model.js';

export class BufferPool {
  private readonly bufs: GPUBuffer[] = [];
  private next = 0;

  constructor(private readonly gpu: Gpu) {}

  /** Hand out the same buffers again, from the first (a rebuild). */
  rewind(): void {
    this.next = 0;
  }

  alloc(n: number, label: string): View {
    let b = this.bufs[this.next];
    if (!b) {
      b = this.gpu.buffer(n, label);
      this.bufs.push(b);
    }
    this.next++;
    return this.gpu.view(b, 0, n);
  }

  get bytes(): number {
    return this.bufs.reduce((s, b) => s + b.size, 0);
  }

  destroy(): void {
    for (const b of this.bufs) b.destroy();
    this.bufs.length = 0;
  }
}

/** Shared by every slot: the step's state and the boundary tensors that cross the wire. */
export interface SharedBuffers {
  params: View;
  grads: View;
  m: View;
  v: View;
  sumsq: View;
  boundaryIn: View; // received boundary tensor (activation or gradient), [N, width]
  boundaryOut: View; // boundary tensor to send, [N, width]
  dX: View; // gradient w.r.t. the current layer's output, updated in place down the layers
}

/** The backward's scratch, shared by all layers and slots: each phase is one submit, so they never overlap. */
export interface Scratch {
  proj: View;
  dgelu: View;
  dh: View;
  dnorm: View;
  dx1: View;
  datt: View;
  dscores: View;
  dqkv: View;
}

/** A subspace block's basis U, frozen table F, and the projection's temporary. */
export interface SubspaceBuffers {
  u: View;
  f: View;
  tmp: View;
  k: number;
}

export interface BlockBuffers {
  shared: SharedBuffers;
  scratch: Scratch;
  sub?: SubspaceBuffers;
}

/** What one layer's forward saves for its backward. */
export interface LayerActs {
  x: View; // layer input
  ln1: View;
  mean1: View;
  rstd1: View;
  qkv: View;
  probs: View;
  att: View;
  x1: View;
  ln2: View;
  mean2: View;
  rstd2: View;
  h: View;
  g: View;
}

/** The final norm, the logits and the loss of a block with the head. */
export interface HeadActs {
  xf: View;
  meanf: View;
  rstdf: View;
  /** Next-token logits [batch·seq, vocab]; the loss overwrites them with their gradient. */
  logits: View;
  losses: View;
  loss: View;
}

/** One microbatch in flight: its inputs and saved activations. */
export interface SlotBuffers {
  tokens: View;
  targets: View;
  input: View; // layer 0 input
  output: View; // last layer output
  layers: LayerActs[];
  head?: HeadActs;
}

export function allocBlock(pool: BufferPool, cfg: BlockConfig, total: number, width: number): BlockBuffers {
  const d = cfg.dModel;
  const N = cfg.batch * cfg.seq;
  const a = (n: number, label: string) => pool.alloc(n, label);
  const shared = {
    params: a(total, 'params'),
    grads: a(total, 'grads'),
    m: a(total, 'adam m'),
    v: a(total, 'adam v'),
    sumsq: a(1, 'grad sumsq'),
    boundaryIn: a(N * width, 'boundary in'),
    boundaryOut: a(N * width, 'boundary out'),
    dX: a(N * d, 'dX'),
  };
  const scratch = {
    proj: a(N * d, 'proj'),
    dgelu: a(N * 4 * d, 'dgelu'),
    dh: a(N * 4 * d, 'dh'),
    dnorm: a(N * d, 'dnorm'),
    dx1: a(N * d, 'dx1'),
    datt: a(N * d, 'datt'),
    dscores: a(cfg.batch * cfg.nHead * cfg.seq * cfg.seq, 'dscores'),
    dqkv: a(N * 3 * d, 'dqkv'),
  };
  const k = cfg.subspace?.k;
  const sub = k ? { u: a(d * k, 'subspace U'), f: a(cfg.vocab * d, 'frozen table F'), tmp: a(Math.max(cfg.vocab, cfg.seq, 4 * d) * k, 'projection tmp'), k } : undefined;
  return { shared, scratch, sub };
}

export function allocSlot(pool: BufferPool, cfg: BlockConfig): SlotBuffers {
  const d = cfg.dModel;
  const N = cfg.batch * cfg.seq;
  const a = (n: number, label: string) => pool.alloc(n, label);
  const tokens = a(N, 'tokens');
  const targets = a(N, 'targets');
  const input = a(N * d, 'x0');
  const layers: LayerActs[] = [];
  let x = input;
  for (let l = 0; l < cfg.nLayer; l++) {
    layers.push({
      x,
      ln1: a(N * d, 'ln1'),
      mean1: a(N, 'mean1'),
      rstd1: a(N, 'rstd1'),
      qkv: a(N * 3 * d, 'qkv'),
      probs: a(cfg.batch * cfg.nHead * cfg.seq * cfg.seq, 'probs'),
      att: a(N * d, 'att'),
      x1: a(N * d, 'x1'),
      ln2: a(N * d, 'ln2'),
      mean2: a(N, 'mean2'),
      rstd2: a(N, 'rstd2'),
      h: a(N * 4 * d, 'h'),
      g: a(N * 4 * d, 'gelu'),
    });
    x = a(N * d, `x${l + 1}`);
  }
  const head = cfg.hasHead
    ? { xf: a(N * d, 'lnf'), meanf: a(N, 'meanf'), rstdf: a(N, 'rstdf'), logits: a(N * cfg.vocab, 'logits'), losses: a(N, 'losses'), loss: a(1, 'loss') }
    : undefined;
  return { tokens, targets, input, output: x, layers, head };
}
