// Leaving the swarm: a peer whose connection closed, that fell silent, left (the app's pause) or was
// purged. Its neighbours, and the peers of an evaluation or generation path through it, are told;
// if it was its stage's last replica, the stage's newest state left with it, and a graceful leaver
// hands that state straight to a peer setting up for its stage (a handoff).
import type { ServerMessage } from '../shared/swarm/protocol.js';
import type { Membership } from './membership.js';
import type { PeerRecord, Roster } from './roster.js';
import type { StageStates } from './stage-states.js';

export interface DeparturesOptions {
  roster: Roster;
  stages: StageStates;
  membership: Membership;
  send(peerId: string, msg: ServerMessage): void;
  log(line: string): void;
  /** The last committed step, and whether training has started. */
  step(): number;
  started(): boolean;
  /** Peers on the recent evaluation or generation paths through `peerId` (they will not finish now). */
  onPathsThrough(peerId: string): string[];
}

export interface Departure {
  peer: PeerRecord;
  wasActive: boolean;
  graceful: boolean;
}

export class Departures {
  constructor(private readonly o: DeparturesOptions) {}

  /** `peerId` is gone (`leave`: it left, keeping this state); undefined if it was gone already. It stays in the views until the caller forgets it. */
  depart(peerId: string, reason: string, leave?: { kept?: { step: number; hash: string } }): Departure | undefined {
    const { roster, stages } = this.o;
    const p = roster.get(peerId);
    if (!p || p.state === 'gone') return undefined;
    const wasActive = p.state === 'active';
    const graceful = !!leave;
    roster.retire(p, graceful ? `left: ${reason}` : reason);
    this.o.log(`${peerId} "${p.name}" (stage ${p.stage}) ${graceful ? 'left' : 'lost'}: ${reason}`);
    // Whether it was the stage's last replica (names are not unique: decide on this, not on heldBy's name).
    const lastReplica = wasActive && roster.active(p.stage).length === 0 && this.o.started();
    if (lastReplica) stages.lastReplicaGone(p.stage, p.name, this.o.step(), leave?.kept);
    // Placed while the leaver is still in the views: the heir is told of it, and loads from it.
    if (graceful && lastReplica) this.handOff(p);
    // Told: those with a channel to it, and those on a path through it that will not finish now.
    for (const id of new Set([...roster.viewIds(peerId), ...this.o.onPathsThrough(peerId)])) {
      const q = roster.get(id);
      if (!q || !roster.isLive(id)) continue;
      q.links.delete(peerId);
      // Not to its heir: for the heir the leaver is still there, serving it the stage's state.
      if (q.heirOf !== peerId) this.o.send(id, { type: 'peer-lost', peerId, reason: p.goneReason!.slice(0, 1024) });
    }
    return { peer: p, wasActive, graceful };
  }

  /** The last peer of a stage leaves gracefully: a peer setting up for that stage takes its state over directly. */
  private handOff(leaver: PeerRecord): void {
    const heir = this.o.roster.placedOn(leaver.stage).find((q) => q.state !== 'active');
    if (!heir) return;
    this.o.send(leaver.peerId, { type: 'handoff', to: heir.peerId });
    heir.state = 'setup';
    heir.readyStep = undefined;
    heir.heirOf = leaver.peerId;
    this.o.membership.assign(heir, leaver.stage, { from: 'replica', peers: [leaver.peerId] });
    this.o.log(`${leaver.peerId} hands stage ${leaver.stage}'s state to ${heir.peerId}`);
  }
}
