// What the dashboard knows of this machine's peer, folded from its session's events. Pure: the
// store (store.ts) applies it, tests check it without a DOM.
import type { GpuReport } from '../shared/engine/gpu-detect.js';
import type { PeerInfo, SwarmPhase } from '../shared/swarm/protocol.js';
import type { TrainerEvent } from '../shared/app/bridge.js';
import type { SessionEvents, SessionPhase } from '../shared/peer/session-events.js';
import { type LinkPath, isRelayed } from '../shared/peer/link-path.js';
import type { Verdict } from '../shared/engine/gpu-verdict.js';

/** Points kept for the loss chart and lines for the log: a long run must not grow the page without bound. */
export const MAX_POINTS = 2000;
export const MAX_LOG = 300;
/** Commits kept for the run's pace: a moving window of this many steps. */
export const PACE_STEPS = 20;

export interface TrainingState {
  gpu?: { report: GpuReport; verdict: Verdict };
  phase: SessionPhase;
  why: string;
  peerId?: string;
  stage?: number;
  stages?: number;
  runId?: string;
  swarm?: { phase: SwarmPhase; reason: string; step: number; steps: number };
  /** The swarm's training loss by step, and the validation loss when evaluated. */
  loss: { step: number; loss?: number; val?: number }[];
  tokensPerSec: number;
  busyFraction: number;
  /** Over every session of this page (a session's own counts restart after a pause). */
  bytesSent: number;
  bytesSaved: number;
  /** What earlier sessions sent and saved. */
  base: { sent: number; saved: number };
  /** Microbatches of committed steps this peer computed (what the coordinator credits). */
  creditedMicrobatches: number;
  connected: string[];
  /** How each open channel's bytes travel, once its stack said. */
  paths: Record<string, LinkPath>;
  /**
   * The session's last reading of its links' bytes (closed ones included). Kept after the peer
   * leaves: the page shows it as of its time until the next session reads its own.
   */
  linkReadings?: SessionEvents['links'];
  peers: PeerInfo[];
  settledEpochs: number;
  /** When this peer last reported its own work (tokens/s and GPU busy are as of then). */
  stepAt?: number;
  /** The last committed steps and when they were heard of: the run's pace, for the time it has left. */
  commits: { step: number; at: number }[];
  /** Each epoch settled for an account: its verified units so far, and when it was heard of. */
  settlements: { account: string; cumulative: string; at: number }[];
  log: string[];
  done?: string;
}

export const INITIAL_TRAINING: TrainingState = {
  phase: 'starting',
  why: 'detecting the GPU',
  loss: [],
  tokensPerSec: 0,
  busyFraction: 0,
  bytesSent: 0,
  bytesSaved: 0,
  base: { sent: 0, saved: 0 },
  creditedMicrobatches: 0,
  connected: [],
  paths: {},
  peers: [],
  settledEpochs: 0,
  commits: [],
  settlements: [],
  log: [],
};

const bounded = <T>(xs: T[], max: number): T[] => (xs.length > max ? xs.slice(xs.length - max) : xs);

function withLoss(s: TrainingState, step: number, point: { loss?: number; val?: number }): TrainingState['loss'] {
  const last = s.loss.at(-1);
  if (last?.step === step) return [...s.loss.slice(0, -1), { ...last, ...point }];
  // A new session (after a pause) restarts its step count at the run's step: keep the chart monotone.
  if (last && step < last.step) return s.loss;
  return bounded([...s.loss, { step, ...point }], MAX_POINTS);
}

/** The state after event `e`, heard at `now` (wall-clock ms: the store passes Date.now(), tests their own clock). */
export function reduceTraining(s: TrainingState, e: TrainerEvent, now: number): TrainingState {
  switch (e.type) {
    case 'gpu':
      return { ...s, gpu: e.data };
    case 'phase':
      return { ...s, phase: e.data.phase, why: e.data.why, ...(e.data.phase === 'left' && { connected: [], paths: {} }) };
    case 'registered':
      return { ...s, peerId: e.data.peerId, done: undefined, base: { sent: s.bytesSent, saved: s.bytesSaved } };
    case 'assigned':
      return { ...s, stage: e.data.stage, stages: e.data.run.stages, runId: e.data.run.runId };
    case 'neighbours':
      return { ...s, connected: e.data.connected, paths: e.data.paths, peers: e.data.peers };
    case 'links':
      return { ...s, linkReadings: e.data };
    case 'swarm':
      return { ...s, swarm: e.data };
    case 'step':
      return {
        ...s,
        tokensPerSec: e.data.tokensPerSec,
        busyFraction: e.data.busyFraction,
        bytesSent: s.base.sent + e.data.bytesSent,
        bytesSaved: s.base.saved + e.data.bytesSaved,
        stepAt: now,
      };
    case 'committed':
      return {
        ...s,
        loss: withLoss(s, e.data.step, e.data.loss !== undefined ? { loss: e.data.loss } : {}),
        commits: bounded([...s.commits.filter((c) => c.step < e.data.step), { step: e.data.step, at: now }], PACE_STEPS),
        ...(s.swarm && { swarm: { ...s.swarm, step: e.data.step } }),
      };
    case 'evaluated':
      return { ...s, loss: withLoss(s, e.data.step, { val: e.data.valLoss }) };
    case 'credited':
      return { ...s, creditedMicrobatches: s.creditedMicrobatches + e.data.microbatches };
    case 'settled':
      return {
        ...s,
        settledEpochs: s.settledEpochs + 1,
        settlements: bounded([...s.settlements, { account: e.data.account.toLowerCase(), cumulative: e.data.cumulative, at: now }], MAX_POINTS),
      };
    case 'log':
      return { ...s, log: bounded([...s.log, e.data.line], MAX_LOG) };
    case 'done':
      return { ...s, done: e.data.reason };
    case 'served':
    case 'released':
      return s;
  }
}

/** The swarm's stage topology: who holds each stage, this peer and its live links marked. */
export interface TopologyPeer {
  peerId: string;
  name: string;
  self: boolean;
  linked: boolean;
  /** A linked neighbour's channel: straight between the two machines, or through a TURN relay. */
  path?: 'direct' | 'relayed';
  /** A linked neighbour's bytes over every connection to it, and those through a relay (once read). */
  bytes?: number;
  relayedBytes?: number;
}

export type LinkView = Pick<TrainingState, 'connected' | 'paths' | 'linkReadings'>;

/** How the channel to `peerId` carries its bytes: its last byte reading says, else the open channel's path (read when it opened). */
export function linkPath(s: LinkView, peerId: string): TopologyPeer['path'] {
  const path = s.paths[peerId];
  return s.linkReadings?.links[peerId]?.path ?? (path && (isRelayed(path) ? 'relayed' : 'direct'));
}

export function topology(s: Pick<TrainingState, 'stages' | 'peers' | 'peerId'> & LinkView): { stage: number; peers: TopologyPeer[] }[] {
  const stages = s.stages ?? Math.max(0, ...s.peers.map((p) => p.stage + 1));
  // Every tab calls itself "browser tab" unless told otherwise: a name others share gets its peer id.
  const counts = new Map<string, number>();
  for (const p of s.peers) counts.set(p.name, (counts.get(p.name) ?? 0) + 1);
  const peer = (p: PeerInfo): TopologyPeer => {
    const linked = s.connected.includes(p.peerId);
    const path = linked ? linkPath(s, p.peerId) : undefined;
    const read = linked ? s.linkReadings?.links[p.peerId] : undefined;
    const name = counts.get(p.name)! > 1 ? `${p.name} ${p.peerId}` : p.name;
    return { peerId: p.peerId, name, self: p.peerId === s.peerId, linked, ...(path && { path }), ...(read && { bytes: read.bytes, relayedBytes: read.relayedBytes }) };
  };
  return Array.from({ length: stages }, (_, stage) => ({ stage, peers: s.peers.filter((p) => p.stage === stage).map(peer) }));
}
