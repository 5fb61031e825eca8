// What the run's state machine tells its listeners (the server, the store, the dashboard) and what
// it keeps to resume after a crash. Types only: run-control.ts emits and fills them.
import type { SwarmPhase } from '../shared/swarm/protocol.js';

export interface CommitEvent {
  step: number;
  round: number;
  /** Who computed what: each peer's microbatches at its stage (credit goes to exactly these). */
  work: Array<{ peerId: string; account?: `0x${string}`; stage: number; microbatches: number }>;
  /** Mean training loss over the step's microbatches. */
  loss?: number;
  /** Wall time of the round that committed, ms. */
  ms: number;
}

export interface RunControlEvents {
  commit: CommitEvent;
  'round-aborted': { round: number; step: number; reason: string };
  phase: { phase: SwarmPhase; reason: string };
  'peer-gone': { peerId: string; name: string; stage: number; reason: string; graceful: boolean };
  /** A peer caught cheating: it is gone, barred from the run, and its unsettled work earns nothing. */
  purged: { peerId: string; name: string; account?: `0x${string}`; reason: string };
  evaluated: { step: number; valLoss: number };
  /** Training is over (every step committed and the final evaluation in, or given up on). */
  trained: { step: number; valLoss?: number };
  /** A round was routed (its number must never be reused: peers' frames name it). */
  round: { round: number; step: number };
}

/**
 * What the coordinator must keep to resume the run after a crash (run-store.ts): the step and
 * round reached, each stage's newest known state, the barred peers. Who was connected is not kept:
 * peers reconnect and offer the states they hold.
 */
export interface ControlSnapshot {
  step: number;
  round: number;
  started: boolean;
  phase: SwarmPhase;
  reason: string;
  loss?: number;
  valLoss?: number;
  stages: Array<{ step: number; hash?: string }>;
  barred: string[];
}
