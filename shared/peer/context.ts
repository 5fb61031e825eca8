// What every part of a peer session shares (session.ts composes them): the host, the coordinator
// connection, the session's phase and events, and whether the peer is on its way out.
import type { ClientMessage } from '../swarm/protocol.js';
import type { PeerHost } from './host.js';
import type { SessionEvents, SessionPhase } from './session-events.js';

export interface PeerContext {
  readonly host: PeerHost;
  /** How long to wait for a neighbour's frame or state before giving up on it. */
  readonly timeoutMs: number;
  /** This peer's id (once registered). */
  peerId(): string;
  /** A message to the coordinator; dropped while the coordinator is lost (a registration starts afresh). */
  send(msg: ClientMessage): void;
  say(line: string): void;
  phase(): SessionPhase;
  setPhase(phase: SessionPhase, why: string): void;
  emit<K extends keyof SessionEvents>(event: K, payload: SessionEvents[K]): void;
  /** The peer is leaving or has ended: nothing new starts. */
  leaving(): boolean;
}

/** Resolves after `ms`. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
