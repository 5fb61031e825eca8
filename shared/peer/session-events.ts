// What a peer session reports, as typed events a host renders (the worker's terminal, the
// dashboard, the desktop app's tray): its phase and why, its GPU, its stage and neighbours, the
// swarm's status, every step it worked on, what it earned and what it served.
import type { GpuReport } from '../engine/gpu-detect.js';
import type { RunConfig } from '../run/config.js';
import type { PeerInfo, ServerMessageOf, SwarmPhase } from '../swarm/protocol.js';
import type { ChainInfo } from './host.js';
import type { LinkBytes } from './link-ledger.js';
import type { LinkPath } from './link-path.js';
import type { Verdict } from '../engine/gpu-verdict.js';

export type SessionPhase = 'starting' | 'registering' | 'setting-up' | 'ready' | 'training' | 'idle' | 'serving' | 'leaving' | 'left' | 'stopped' | 'failed';

export interface StepReport {
  step: number;
  /** This peer's mean loss over the microbatches it computed in the step (last stage only). */
  loss?: number;
  microbatches: number;
  tokensPerSec: number;
  busyFraction: number;
  bytesSent: number;
  bytesReceived: number;
  /** Boundary bytes a dense fp32 exchange would have sent beyond what the codec sent. */
  bytesSaved: number;
}

/** What this peer did, for a launcher's report (wire bytes count headers; tokens are per boundary crossing). */
export interface PeerStats {
  stage: number;
  steps: number;
  microbatches: number;
  wallMs: number;
  busyMs: number;
  /** Sum over rounds of RoundResult.spanMs: busyMs / roundSpanMs is the stage's steady-state busy fraction. */
  roundSpanMs: number;
  fwdBytesSent: number;
  bwdBytesSent: number;
  fwdTokens: number;
  bwdTokens: number;
  averagingBytesSent: number;
  stateBytesServed: number;
  rejectedFrames: number;
  layersHeld: number;
  paramsHeld: number;
}

export interface SessionEvents {
  phase: { phase: SessionPhase; why: string };
  gpu: { report: GpuReport; verdict: Verdict };
  registered: { peerId: string; chain?: ChainInfo };
  assigned: { stage: number; run: RunConfig; state: ServerMessageOf<'assign'>['state'] };
  /** Open channels and how each one's bytes travel (once known), and the peers of this one's view with itself (`peers`). */
  neighbours: { connected: string[]; paths: Record<string, LinkPath>; peers: PeerInfo[] };
  /**
   * Each neighbour's link as last read (every few seconds while channels are open, and once more as
   * they close), closed ones included, at most 256. `at` is wall-clock ms (Date.now()): a dashboard
   * in another window tells an old reading by it.
   */
  links: { at: number; links: Record<string, LinkBytes> };
  swarm: { phase: SwarmPhase; reason: string; step: number; steps: number };
  step: StepReport;
  /** The swarm's validation loss after a step, as the coordinator accepted it (whichever stage this peer trains). */
  evaluated: { step: number; valLoss: number };
  /** A step the swarm committed, with its training loss (whichever stage this peer trains). */
  committed: { step: number; loss?: number };
  /** Microbatches of a committed step this peer computed (the coordinator credits exactly these). */
  credited: { step: number; microbatches: number };
  settled: { epoch: number; account: string; cumulative: string; key: string };
  served: { requestId: number; tokens: number; ms: number };
  released: { ms: number };
  log: { line: string };
  done: { reason: string };
}

/** Every event a session emits, by name (a host that forwards them all, or checks a forwarded one, lists them from here). */
export const SESSION_EVENT_NAMES = [
  'phase',
  'gpu',
  'registered',
  'assigned',
  'neighbours',
  'links',
  'swarm',
  'step',
  'committed',
  'evaluated',
  'credited',
  'settled',
  'served',
  'released',
  'log',
  'done',
] as const satisfies readonly (keyof SessionEvents)[];
// Fails to compile when an event is missing from the list above.
const _everyEventListed: Record<Exclude<keyof SessionEvents, (typeof SESSION_EVENT_NAMES)[number]>, never> = {};
void _everyEventListed;
