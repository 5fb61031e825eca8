// The short form of `npm run bench:scale`: a coordinator process with hundreds of simulated peers
// (real WebSocket clients speaking the protocol, their own keys, no GPU) joining, heartbeating,
// relaying signals to their neighbours and churning. What is checked is behaviour, not speed: every
// peer is placed, every relayed signal arrives, no message exceeds the size limit, and churn
// leaves nobody unplaced.
import { describe, expect, it } from 'vitest';
import { measure } from '../bench/scale.js';

describe('one coordinator, hundreds of peers', () => {
  it('places them all, relays every signal between neighbours and keeps every message under the limit while peers come and go', async () => {
    const r = await measure(300, 8, 300);
    expect(r.notes).not.toMatch(/joins failed/);
    expect(r.send_failures).toBe(0);
    expect(r.relays).toBeGreaterThan(100);
    // A relay may only go missing when the coordinator said why: its target had just left.
    expect(r.relays_lost).toBeLessThanOrEqual(r.relays_refused);
    if (r.relays_refused) expect(r.notes).toMatch(/relay refused: cannot relay signal: peer \S+ is not connected/);
    expect(r.churned).toBeGreaterThanOrEqual(30);
  }, 240_000);
});
