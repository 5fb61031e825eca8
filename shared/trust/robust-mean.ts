// The average of a stage's replicas that no one replica can steer far (ARCHITECTURE §3 and §6).
// Every replica started from the stage's last averaged weights (the anchor) and moved by its own
// training since; what it sends is that anchor plus its move. So the mean is taken of moves, each
// judged against the anchor every honest replica holds bit-identically:
// - a move beyond the drift limit the audits use (audit.ts: 2 % + 10·lr a step, measured honest
//   moves are about 3.3·lr a step) is no replica's training: it is left out, and the peer named as
//   an outlier (the coordinator purges it when most of its stage's replicas name it);
// - every other move is clipped to twice the (lower) median move, CenteredClip-style: honest moves
//   cluster (Adam moves each weight by about lr a step whatever the gradient) and are left as they
//   are, while one replica, whatever it sends, shifts the stage by at most twice an honest move
//   divided by the replicas averaged.
// Pure and deterministic: replicas that received the same bytes end bit-identical.
import { agreement, driftLimit } from './audit.js';

export interface Contribution {
  peer: string;
  params: Float32Array;
}

export interface Anchor {
  params: Float32Array;
  step: number;
}

export interface RobustMean {
  mean: Float32Array;
  /** Peers whose move is beyond the drift limit (left out), with how far each moved. */
  outliers: Array<{ peer: string; moved: number; limit: number }>;
  /** Peers whose move was clipped. */
  clipped: string[];
}

/** `contributions` (in peer-id order) averaged at `step`, judged against `anchor`; a plain mean without one. */
export function robustMean(contributions: readonly Contribution[], anchor: Anchor | undefined, step: number, lr: number): RobustMean {
  const n = contributions[0]?.params.length ?? 0;
  const mean = new Float32Array(n);
  if (!anchor) {
    for (const c of contributions) for (let i = 0; i < n; i++) mean[i] += c.params[i];
    for (let i = 0; i < n; i++) mean[i] /= contributions.length;
    return { mean, outliers: [], clipped: [] };
  }
  const limit = driftLimit(anchor.step, step, lr);
  const moved = contributions.map((c) => agreement(c.params, anchor.params).rel);
  const outliers = contributions.flatMap((c, i) => (moved[i] > limit ? [{ peer: c.peer, moved: moved[i], limit }] : []));
  const kept = contributions.flatMap((c, i) => (moved[i] > limit ? [] : [{ c, moved: moved[i] }]));
  if (kept.length === 0) return { mean: anchor.params.slice(), outliers, clipped: [] };
  const sorted = kept.map((k) => k.moved).sort((a, b) => a - b);
  const radius = 2 * sorted[Math.floor((sorted.length - 1) / 2)];
  const clipped: string[] = [];
  const move = new Float64Array(n);
  for (const { c, moved: m } of kept) {
    const scale = m > radius ? radius / m : 1;
    if (scale < 1) clipped.push(c.peer);
    for (let i = 0; i < n; i++) move[i] += scale * (c.params[i] - anchor.params[i]);
  }
  for (let i = 0; i < n; i++) mean[i] = anchor.params[i] + move[i] / kept.length;
  return { mean, outliers, clipped };
}
