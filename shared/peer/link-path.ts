// How a WebRTC connection's bytes travel, read from its stats: the candidate pair ICE chose, each
// side's candidate type, and the bytes it carried. "host" is a local address, "srflx"/"prflx" one a
// NAT mapped (seen by STUN or by the other side), "relay" a TURN server's: a link with a relay
// candidate on either side goes through the relay, whatever the other side's type.

export type CandidateType = 'host' | 'srflx' | 'prflx' | 'relay';

export interface LinkPath {
  local: CandidateType;
  remote: CandidateType;
  /** Bytes sent plus received over the connection (its transport's count: ICE may switch pairs, each counting from 0). */
  bytes: number;
}

export const isRelayed = (p: LinkPath): boolean => p.local === 'relay' || p.remote === 'relay';

type Report = Record<string, unknown>;
const TYPES: readonly string[] = ['host', 'srflx', 'prflx', 'relay'];

/** The chosen pair's path among a connection's stats reports (getStats, flattened), if ICE chose one. */
export function selectedPath(reports: readonly Report[]): LinkPath | undefined {
  const byId = new Map(reports.map((r) => [r.id, r]));
  // Where the transport names its pair that is the one; otherwise (older stacks) the pair marked selected.
  const transport = reports.find((r) => r.type === 'transport' && typeof r.selectedCandidatePairId === 'string');
  const named = transport?.selectedCandidatePairId;
  const pair =
    (named !== undefined && byId.get(named)) || reports.find((r) => r.type === 'candidate-pair' && (r.selected === true || (r.nominated === true && r.state === 'succeeded')));
  if (!pair) return undefined;
  const local = byId.get(pair.localCandidateId)?.candidateType;
  const remote = byId.get(pair.remoteCandidateId)?.candidateType;
  if (typeof local !== 'string' || typeof remote !== 'string' || !TYPES.includes(local) || !TYPES.includes(remote)) return undefined;
  const count = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : 0);
  const counted = transport && typeof transport.bytesSent === 'number' ? transport : pair;
  return { local: local as CandidateType, remote: remote as CandidateType, bytes: count(counted.bytesSent) + count(counted.bytesReceived) };
}
