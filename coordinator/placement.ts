// Where a volunteer's GPU goes when it joins (ARCHITECTURE §3, after Petals' block placement): to a
// stage nobody holds first, else to the stage with the least throughput, among the stages whose
// layers it can hold. Pure: the coordinator hands in what it knows of each stage.

export interface StageView {
  stage: number;
  layers: number;
  /** Peers holding it now (active, or setting up to be). */
  peers: number;
  /** Microbatches per second its peers can do together (measured where known, else estimated). */
  capacity: number;
  /** Its newest state left with a peer that is gone: only that state can bring the stage back. */
  orphaned: boolean;
}

export type Placement = { ok: true; stage: number } | { ok: false; reason: string };

export function placePeer(maxLayers: number, stages: StageView[]): Placement {
  const fits = stages.filter((s) => s.layers <= maxLayers);
  if (fits.length === 0) {
    const smallest = Math.min(...stages.map((s) => s.layers));
    return { ok: false, reason: `this GPU can hold ${maxLayers} layer(s); the smallest stage of this run has ${smallest}` };
  }
  const open = fits.filter((s) => !s.orphaned);
  if (open.length === 0) {
    return { ok: false, reason: `the stages this GPU can hold (${fits.map((s) => s.stage).join(', ')}) are waiting for the peer that holds their newest state` };
  }
  const missing = open.find((s) => s.peers === 0);
  if (missing) return { ok: true, stage: missing.stage };
  const best = open.reduce((a, b) => (b.capacity < a.capacity || (b.capacity === a.capacity && b.peers < a.peers) ? b : a));
  return { ok: true, stage: best.stage };
}
