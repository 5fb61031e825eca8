// How much of this peer's traffic with its neighbours went through a TURN relay, in the words of
// the swarm topology: a note on each linked neighbour, and one sentence under the stages. Pure: the
// page renders them, tests check them without a DOM.
import { bytes } from '../shared/base/sizes.js';
import { percent } from './format.js';
import { type LinkView, type TopologyPeer, linkPath } from './training-state.js';

/** A reading older than this is shown as old: the session reads its links every 5 s (shared/peer/neighbours.ts). */
export const STALE_LINKS_MS = 15_000;

export interface LinkSummary {
  /** Open channels now, and how many of them are direct or through a relay (a channel not read yet is neither). */
  links: number;
  direct: number;
  relayed: number;
  /** Bytes over every link of the last reading, open or since closed, and of those the bytes through a relay. */
  bytes: number;
  relayedBytes: number;
  /** relayedBytes / bytes; 0 before any byte moved. */
  relayedFraction: number;
}

/** The summary of the last reading; undefined before the session read any link. */
export function linkSummary(s: LinkView): LinkSummary | undefined {
  if (!s.linkReadings) return undefined;
  const paths = s.connected.map((id) => linkPath(s, id));
  const read = Object.values(s.linkReadings.links);
  const total = read.reduce((n, r) => n + r.bytes, 0);
  const relayedBytes = read.reduce((n, r) => n + r.relayedBytes, 0);
  return {
    links: s.connected.length,
    direct: paths.filter((p) => p === 'direct').length,
    relayed: paths.filter((p) => p === 'relayed').length,
    bytes: total,
    relayedBytes,
    relayedFraction: total > 0 ? relayedBytes / total : 0,
  };
}

/** Whether a reading taken at `at` (wall-clock ms) is too old to stand for now. */
export const linksStale = (at: number, now: number): boolean => now - at > STALE_LINKS_MS;

/** E.g. "3 links: 2 direct, 1 relayed — 28 % of 4.1 MiB went through a relay". */
export function linkSentence(x: LinkSummary): string {
  const unread = x.links - x.direct - x.relayed;
  const kinds = [x.direct && `${x.direct} direct`, x.relayed && `${x.relayed} relayed`, unread && `${unread} not measured yet`].filter(Boolean);
  const head = x.links === 0 ? 'No links open' : `${x.links} link${x.links === 1 ? '' : 's'}: ${kinds.join(', ')}`;
  return `${head} — ${share(x)}`;
}

function share(x: LinkSummary): string {
  if (x.bytes === 0) return 'no data exchanged yet';
  if (x.relayedBytes === 0) return `all ${bytes(x.bytes)} went straight to your neighbours, none through a relay`;
  if (x.relayedBytes >= x.bytes) return `all ${bytes(x.bytes)} went through a relay`;
  // Rounded, a few relayed bytes would read "0 %" and a few direct ones "100 %": neither is true.
  const f = x.relayedFraction;
  const pct = f < 0.005 ? 'under 1 %' : f > 0.995 ? 'over 99 %' : percent(f, 0);
  return `${pct} of ${bytes(x.bytes)} went through a relay`;
}

/** What the topology says after a peer's name: "(this machine)", "(linked, direct)", "(linked, relayed · 1.2 MiB)". */
export function peerNote(p: TopologyPeer): string {
  if (p.self) return '(this machine)';
  if (!p.linked) return '';
  // The bytes a relay carried are the ones that cost: a direct link's are not news.
  const how = p.path === 'relayed' && p.relayedBytes !== undefined ? `relayed · ${bytes(p.relayedBytes)}` : p.path;
  return `(linked${how ? `, ${how}` : ''})`;
}
