// Neighbour links over real WebRTC (simple-peer + @roamhq/wrtc, two sides in one process) with a
// relay in between that can lose signals, as a flaky coordinator connection might: a channel whose
// first offer is lost is tried again and opens; a dropped channel to a wanted neighbour is
// reconnected; channels to neighbours no longer wanted close.
import { afterEach, describe, expect, it } from 'vitest';
import { NeighbourLinks } from '../shared/peer/links.js';
import { nodeRtc } from '../worker/node-rtc.js';

interface Side {
  links: NeighbourLinks;
  got: Uint8Array[];
  changes: string[][];
  log: string[];
}

const sides: Side[] = [];
afterEach(() => {
  for (const s of sides.splice(0)) s.links.close();
});

/** Two peers "a" (the initiator: the lower id) and "b"; `drop(from, data)` decides which signals the relay loses. */
function pair(drop: (from: string, data: unknown) => boolean = () => false, openTimeoutMs = 1500): Record<'a' | 'b', Side> {
  const made = {} as Record<'a' | 'b', Side>;
  for (const self of ['a', 'b'] as const) {
    const got: Uint8Array[] = [];
    const changes: string[][] = [];
    const log: string[] = [];
    const links = new NeighbourLinks({
      self,
      rtc: nodeRtc,
      sendSignal: (to, data) => setTimeout(() => !drop(self, data) && made[to as 'a' | 'b'].links.signal(self, data), 5),
      onMessage: (_from, bytes) => got.push(bytes),
      onChange: (connected) => changes.push(connected),
      log: (l) => log.push(l),
      maxMessageBytes: 1 << 20,
      openTimeoutMs,
    });
    made[self] = { links, got, changes, log };
    sides.push(made[self]);
  }
  return made;
}

async function until(what: string, done: () => boolean, ms = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!done()) {
    if (Date.now() - t0 > ms) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('neighbour links', () => {
  it('open both ways and carry messages; a neighbour no longer wanted is closed', async () => {
    const { a, b } = pair();
    a.links.set(['b']);
    b.links.set(['a']);
    await until('both open', () => a.links.connected().includes('b') && b.links.connected().includes('a'));
    a.links.send('b', Uint8Array.of(1, 2, 3));
    await until('delivery', () => b.got.length === 1);
    expect(Array.from(b.got[0])).toEqual([1, 2, 3]);
    a.links.set([]);
    expect(a.links.connected()).toEqual([]);
    await until('b sees the close', () => !b.links.connected().includes('a'));
  });

  it('once closed (the peer is leaving), a late membership update or signal opens nothing', async () => {
    const { a, b } = pair();
    a.links.close();
    a.links.set(['b']);
    b.links.set(['a']);
    b.links.signal('a', { n: 5, s: {} });
    a.links.signal('b', { n: 5, s: {} });
    await new Promise((r) => setTimeout(r, 300));
    expect(a.links.has('b')).toBe(false);
    expect(a.links.connected()).toEqual([]);
  });

  it('a channel whose first attempts lost every signal is tried again, each attempt waiting twice as long, and opens', async () => {
    const { a, b } = pair((_from, data) => (data as { n: number }).n < 2, 500);
    a.links.set(['b']);
    b.links.set(['a']);
    await until('both open on a later attempt', () => a.links.connected().includes('b') && b.links.connected().includes('a'));
    // Offered no relay, it says what a channel that never opens would mean.
    const noRelay = '; if this keeps happening, your network blocks direct connections and no relay is available (this run’s coordinator names no TURN server)';
    expect(a.log.filter((l) => /did not open within/.test(l))).toEqual([
      `channel to b did not open within 500 ms: trying again (attempt 1)${noRelay}`,
      `channel to b did not open within 1000 ms: trying again (attempt 2)${noRelay}`,
    ]);
    b.links.send('a', Uint8Array.of(9));
    await until('delivery', () => a.got.length === 1);
  });

  it('the side that does not initiate follows a new attempt even before it wants the neighbour, once it does', async () => {
    const { a, b } = pair();
    a.links.set(['b']); // b learns of a late (its membership update is slow): a's first offer finds nobody
    await new Promise((r) => setTimeout(r, 300));
    b.links.set(['a']);
    await until('both open', () => a.links.connected().includes('b') && b.links.connected().includes('a'), 10_000);
  });

  it('a channel that closes while its neighbour is still wanted is reconnected', async () => {
    const { a, b } = pair();
    a.links.set(['b']);
    b.links.set(['a']);
    await until('both open', () => a.links.connected().includes('b') && b.links.connected().includes('a'));
    // b drops the connection (as a crashed WebRTC stack would) and forgets it, but still wants a.
    b.links.set([]);
    b.links.set(['a']);
    await until('a sees the close', () => a.changes.some((c) => !c.includes('b')));
    await until('reconnected', () => a.links.connected().includes('b') && b.links.connected().includes('a'));
    a.links.send('b', Uint8Array.of(7));
    await until('delivery', () => b.got.some((m) => m[0] === 7));
  });
});
