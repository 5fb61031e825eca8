// The run as a launcher or an operator's terminal shows it: the phase and why, the losses, the
// swarm's tokens per second over its last committed steps, and each peer's last heartbeat.
import type { RunConfig } from '../shared/run/config.js';
import type { SwarmPhase } from '../shared/swarm/protocol.js';
import type { RunControl } from './run-control.js';

export interface PeerProgress {
  peerId: string;
  name: string;
  stage: number;
  state: string;
  step: number;
  loss?: number;
  tokensPerSec?: number;
  busyFraction?: number;
  bytesSent: number;
  bytesReceived: number;
  msPerMicrobatch?: number;
  silentMs: number;
  goneReason?: string;
}

export interface Progress {
  phase: SwarmPhase;
  reason: string;
  step: number;
  steps: number;
  loss?: number;
  valLoss?: number;
  /** Tokens per second over the last committed steps (the whole swarm). */
  tokensPerSec?: number;
  peers: PeerProgress[];
}

/** Commits counted for the swarm's tokens per second. */
const WINDOW = 20;

/** The swarm's throughput from the times of its last commits. */
export class Throughput {
  private readonly commits: Array<{ at: number; step: number }> = [];

  constructor(private readonly run: RunConfig) {}

  committed(step: number, at: number): void {
    this.commits.push({ at, step });
    if (this.commits.length > WINDOW) this.commits.shift();
  }

  tokensPerSec(): number | undefined {
    const c = this.commits;
    if (c.length < 2) return undefined;
    const secs = (c[c.length - 1].at - c[0].at) / 1000;
    const tokens = (c.length - 1) * this.run.microbatches * this.run.model.batch * this.run.model.seq;
    return secs > 0 ? tokens / secs : undefined;
  }
}

/** The run's progress now; `silentMs(peerId)`: how long since the peer last said anything. */
export function progressOf(control: RunControl, throughput: Throughput, silentMs: (peerId: string) => number): Progress {
  const peers = control.allPeers().map(
    (p): PeerProgress => ({
      peerId: p.peerId,
      name: p.name,
      stage: p.stage,
      state: p.state,
      step: p.hb?.step ?? 0,
      loss: p.hb?.loss,
      tokensPerSec: p.hb?.tokensPerSec,
      busyFraction: p.hb?.busyFraction,
      bytesSent: p.hb?.bytesSent ?? 0,
      bytesReceived: p.hb?.bytesReceived ?? 0,
      msPerMicrobatch: p.msPerMicrobatch,
      silentMs: silentMs(p.peerId),
      goneReason: p.goneReason,
    }),
  );
  return {
    phase: control.phase,
    reason: control.reason,
    step: control.step,
    steps: control.run.steps,
    loss: control.loss,
    valLoss: control.valLoss,
    tokensPerSec: throughput.tokensPerSec(),
    peers,
  };
}
