// TURN credentials by the shared-secret scheme of the TURN REST API (coturn's use-auth-secret): the
// username is "<expiry, unix seconds>:<peer id>" and the password base64(HMAC-SHA1(secret,
// username)). coturn recomputes it from the same secret, so the app ships no password, a leaked
// credential dies at its expiry, and the relay needs no list of users.
import { createHmac } from 'node:crypto';
import type { IceServer } from '../shared/swarm/protocol.js';

/** The STUN and TURN servers a coordinator hands its peers, and the secret it shares with the TURN server. */
export interface IceConfig {
  stun?: string[];
  turn?: { urls: string[]; secret: string; ttlS?: number };
}

/** A day: a session lasts hours, and a peer that registers again gets new ones. */
export const DEFAULT_TURN_TTL_S = 24 * 3600;

export function turnCredential(secret: string, peerId: string, expiresAtS: number): { username: string; credential: string } {
  const username = `${Math.floor(expiresAtS)}:${peerId}`;
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') };
}

/** The ICE servers of `peerId`, registering at `nowS`: STUN as given, TURN with its own credential. */
export function iceServersFor(ice: IceConfig | undefined, peerId: string, nowS: number): IceServer[] {
  const servers: IceServer[] = [];
  if (ice?.stun?.length) servers.push({ urls: ice.stun });
  if (ice?.turn?.urls.length) servers.push({ urls: ice.turn.urls, ...turnCredential(ice.turn.secret, peerId, nowS + (ice.turn.ttlS ?? DEFAULT_TURN_TTL_S)) });
  return servers;
}
