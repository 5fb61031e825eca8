// Stage assignment (ARCHITECTURE §3): which peer holds which stage of the pipeline, as which
// replica. Pure and deterministic, so the coordinator's decision can be re-derived and tested.
//
// Replica r of every stage forms pipeline lane r: activations flow along a lane, and the replicas of
// one stage average their weights every H steps. So a peer talks to the lane's previous and next
// stage and to its own stage's other replicas, and to no one else.
import type { Capability } from './protocol.js';

export interface PeerCandidate {
  peerId: string;
  capability: Pick<Capability, 'gflops' | 'maxLayers'>;
}

export interface Assignment {
  peerId: string;
  stage: number;
  replica: number;
}

export type AssignResult = { ok: true; assignments: Assignment[] } | { ok: false; error: string };

interface Slot {
  stage: number;
  layers: number;
  /** Compute weight: layers, plus about one layer each for the embedding and the head. */
  weight: number;
  /** Which replica slot of its stage this is (orders ties so equal stages interleave). */
  rank: number;
}

const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Split `layers` over `stages` as evenly as possible; spare layers go to the inner stages first, since the ends also hold embedding/head. */
export function splitLayers(layers: number, stages: number): number[] {
  if (!Number.isInteger(stages) || stages < 1) throw new Error(`stages must be a positive integer, got ${stages}`);
  if (!Number.isInteger(layers) || layers < stages) throw new Error(`${layers} layers cannot fill ${stages} stages with at least one each`);
  const out = new Array<number>(stages).fill(Math.floor(layers / stages));
  const order = [...out.keys()].sort((a, b) => Number(a === 0 || a === stages - 1) - Number(b === 0 || b === stages - 1) || a - b);
  for (let i = 0; i < layers % stages; i++) out[order[i]]++;
  return out;
}

/** Relative compute of stage `s`: its layers, and one more each for the embedding (stage 0) and the head (last stage). */
export function stageWeight(layersPerStage: number[], s: number): number {
  return layersPerStage[s] + (s === 0 ? 1 : 0) + (s === layersPerStage.length - 1 ? 1 : 0);
}

/**
 * Hall's condition for nested capacities: sorted descending, the i-th most capable peer must hold
 * the i-th largest stage. Returns the index of the first violation, or -1 when everyone fits.
 */
function firstShortfall(maxLayers: number[], needs: number[]): number {
  const have = [...maxLayers].sort((a, b) => b - a);
  const need = [...needs].sort((a, b) => b - a);
  for (let i = 0; i < need.length; i++) if (have[i] < need[i]) return i;
  return -1;
}

/**
 * Place `workers` peers on `stages` stages, workers/stages replicas each. Faster peers (GFLOP/s)
 * go to heavier stages; no peer gets a stage with more layers than its `maxLayers`. Ties break by
 * peerId, so the same inputs always give the same placement.
 */
export function assignStages(
  peers: PeerCandidate[],
  run: { stages: number; layersPerStage: number[]; workers: number },
): AssignResult {
  const { stages, layersPerStage, workers } = run;
  if (!Number.isInteger(stages) || stages < 1) return { ok: false, error: `stages must be a positive integer, got ${stages}` };
  if (!Number.isInteger(workers) || workers < 1) return { ok: false, error: `workers must be a positive integer, got ${workers}` };
  if (workers % stages !== 0) {
    return { ok: false, error: `workers (${workers}) must be a multiple of stages (${stages}) so every stage gets the same number of replicas` };
  }
  if (layersPerStage.length !== stages) {
    return { ok: false, error: `layersPerStage has ${layersPerStage.length} entries for ${stages} stages` };
  }
  if (!layersPerStage.every((l) => Number.isInteger(l) && l >= 1)) {
    return { ok: false, error: `every stage needs at least one layer, got [${layersPerStage.join(', ')}]` };
  }
  if (peers.length !== workers) return { ok: false, error: `expected ${workers} peers, got ${peers.length}` };
  const ids = new Set(peers.map((p) => p.peerId));
  if (ids.size !== peers.length) return { ok: false, error: 'peer ids are not unique' };

  const replicas = workers / stages;
  const slots: Slot[] = [];
  for (let s = 0; s < stages; s++) {
    for (let r = 0; r < replicas; r++) slots.push({ stage: s, layers: layersPerStage[s], weight: stageWeight(layersPerStage, s), rank: r });
  }
  // Heaviest slots first; among equally heavy stages, first replicas of each stage before second
  // ones, so the fastest peers spread over those stages instead of piling onto one of them.
  slots.sort((a, b) => b.weight - a.weight || a.rank - b.rank || a.stage - b.stage);

  // Fastest peers first.
  let pool = [...peers].sort((a, b) => b.capability.gflops - a.capability.gflops || byId(a.peerId, b.peerId));

  const shortfall = firstShortfall(
    pool.map((p) => p.capability.maxLayers),
    slots.map((s) => s.layers),
  );
  if (shortfall >= 0) {
    const byCap = [...pool].sort((a, b) => b.capability.maxLayers - a.capability.maxLayers || byId(a.peerId, b.peerId));
    const need = slots.map((s) => s.layers).sort((a, b) => b - a)[shortfall];
    const peer = byCap[shortfall];
    const able = pool.filter((p) => p.capability.maxLayers >= need).length;
    const wanting = slots.filter((s) => s.layers >= need).length;
    return {
      ok: false,
      error:
        `cannot place peer ${peer.peerId} (maxLayers ${peer.capability.maxLayers}): ${wanting} replica slot(s) need ` +
        `${need} or more layers but only ${able} peer(s) can hold that many`,
    };
  }

  // Greedy by speed, but never take a peer whose placement would leave the remaining slots
  // unfillable: with nested capacities the check is exact, so a feasible input always succeeds.
  const placed: Assignment[] = [];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots[i];
    const rest = slots.slice(i + 1).map((s) => s.layers);
    const pick = pool.findIndex(
      (p) =>
        p.capability.maxLayers >= slot.layers &&
        firstShortfall(
          pool.filter((q) => q !== p).map((q) => q.capability.maxLayers),
          rest,
        ) < 0,
    );
    // Unreachable after the shortfall check above; kept as a guard rather than a crash.
    if (pick < 0) return { ok: false, error: `no peer can hold stage ${slot.stage} (${slot.layers} layers)` };
    placed.push({ peerId: pool[pick].peerId, stage: slot.stage, replica: -1 });
    pool = pool.filter((_, j) => j !== pick);
  }

  // Replica indices within a stage: fastest first, so lane 0 collects the fastest peers.
  const speed = new Map(peers.map((p) => [p.peerId, p.capability.gflops]));
  const out: Assignment[] = [];
  for (let s = 0; s < stages; s++) {
    const here = placed.filter((a) => a.stage === s).sort((a, b) => speed.get(b.peerId)! - speed.get(a.peerId)! || byId(a.peerId, b.peerId));
    here.forEach((a, r) => out.push({ peerId: a.peerId, stage: s, replica: r }));
  }
  return { ok: true, assignments: out };
}

export interface Neighbours {
  /** Same lane, previous stage (sends activations to this peer); undefined on stage 0. */
  prev?: Assignment;
  /** Same lane, next stage; undefined on the last stage. */
  next?: Assignment;
  /** The other replicas of this peer's stage (weight averaging). */
  replicas: Assignment[];
}

/** A peer's neighbours, or undefined when it has no assignment. */
export function neighbours(assignments: Assignment[], peerId: string): Neighbours | undefined {
  const me = assignments.find((a) => a.peerId === peerId);
  if (!me) return undefined;
  return {
    prev: assignments.find((a) => a.stage === me.stage - 1 && a.replica === me.replica),
    next: assignments.find((a) => a.stage === me.stage + 1 && a.replica === me.replica),
    replicas: assignments.filter((a) => a.stage === me.stage && a.peerId !== peerId),
  };
}

/** Whether `a` and `b` may talk to each other (the relation is symmetric). */
export function areNeighbours(assignments: Assignment[], a: string, b: string): boolean {
  const n = neighbours(assignments, a);
  if (!n || a === b) return false;
  return n.prev?.peerId === b || n.next?.peerId === b || n.replicas.some((r) => r.peerId === b);
}
