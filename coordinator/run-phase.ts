// The run's phase and why, as every peer's dashboard shows it. A new phase goes out at once; a new
// reason in the same phase (the counts of peers while waiting) at most every `everyMs`, on flush():
// a thousand peers joining would otherwise each cost a status message to every peer.
import type { ServerMessage, SwarmPhase } from '../shared/swarm/protocol.js';

export interface RunPhaseOptions {
  now(): number;
  log(line: string): void;
  everyMs: number;
  /** Send the status to every live peer. */
  broadcast(msg: ServerMessage): void;
  /** The run's progress the status carries. */
  progress(): { step: number; steps: number };
  changed(phase: SwarmPhase, reason: string): void;
}

export class RunPhase {
  private phase_: SwarmPhase = 'waiting';
  private reason_ = '';
  private due = false;
  private sentAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly o: RunPhaseOptions) {}

  get phase(): SwarmPhase {
    return this.phase_;
  }
  get reason(): string {
    return this.reason_;
  }
  /** The run is over: finished or stopped. */
  get over(): boolean {
    return this.phase_ === 'finished' || this.phase_ === 'stopped';
  }

  set(phase: SwarmPhase, reason: string): void {
    if (phase === this.phase_ && reason === this.reason_) return;
    const newPhase = phase !== this.phase_;
    this.phase_ = phase;
    this.reason_ = reason;
    this.o.log(`${phase}: ${reason}`);
    this.due = true;
    if (newPhase || this.o.now() - this.sentAt >= this.o.everyMs) this.flush();
    this.o.changed(phase, reason);
  }

  /** Send the status held back by `everyMs`, if any. */
  flush(): void {
    if (!this.due) return;
    this.due = false;
    this.sentAt = this.o.now();
    this.o.broadcast({ type: 'status', phase: this.phase_, reason: this.reason_.slice(0, 1024), ...this.o.progress() });
  }
}
