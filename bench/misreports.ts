// The attacks of bench/adversary.ts that lie to the coordinator rather than to neighbours: about
// audits (alone or with a colluder), stalls, suspect frames, links and evidence. Each is what a
// hostile build could send; the frames it sends its neighbours are honest unless the attack says
// otherwise. Colluding processes find each other through a file they all append their ids to.
import { appendFileSync, readFileSync } from 'node:fs';
import type { MisreportContext, SessionOptions } from '../shared/peer/session.js';
import type { ClientMessage } from '../shared/swarm/protocol.js';
import { FrameKind } from '../shared/wire/frame.js';

/** The ids of a group of colluding processes, shared through a file. */
export class Colluders {
  private announced = false;

  constructor(private readonly file?: string) {}

  /** Whether `peer` is one of the group (after announcing `self` to it). */
  includes({ self }: MisreportContext, peer: string): boolean {
    if (!this.file || !self) return false;
    if (!this.announced) {
      appendFileSync(this.file, `${self}\n`);
      this.announced = true;
    }
    return readFileSync(this.file, 'utf8').split('\n').includes(peer);
  }
}

export type Misreport = NonNullable<SessionOptions['misreport']>;

/** A verdict's finding rewritten: `ok` for the group's own work, and `wrong` for everyone else's (or the truth, if `lieAboutOthers` is off). */
function verdicts(colluders: Colluders, lieAboutOthers: boolean): Misreport['report'] {
  return (m, me) => {
    if (m.type !== 'verdict') return [m];
    if (colluders.includes(me, m.peer)) return [{ ...m, ok: true, reason: 'agrees' }];
    return lieAboutOthers ? [{ ...m, ok: false, reason: 'cosine 0.12 < 0.99 against the recomputation' }] : [m];
  };
}

export const MISREPORTS = {
  // Issue 19 #1: every evaluation activation it receives, sealed by an honest sender, shown as evidence of a defect.
  'eval-evidence': () => ({
    received: (_from, seal, frame) => (seal.kind === FrameKind.EvalActivation ? [{ type: 'evidence', seal, frame: Buffer.from(frame).toString('base64') }] : []),
  }),
  // Issue 19 #2: two colluding witnesses: every audit of an honest peer "fails", every audit of each other passes.
  'false-verdicts': (c) => ({ report: verdicts(c, true) }),
  // Issue 19 #3: a cheater's voucher (the cheater itself cheats on its outputs): it passes the cheater's work whatever it finds.
  'vouch-for-cheat': (c) => ({ report: verdicts(c, false) }),
  // Issue 19 #9: every round it is routed, `stalled` naming a peer that does not exist instead of its report.
  'false-stalls': () => ({
    report: (m) => (m.type === 'round-done' ? [{ type: 'stalled', round: m.round, from: 'p-nobody', reason: 'no frame within 60000 ms' }] : [m]),
  }),
  // Its own: every input of every round reported out of band, to make the run audit its honest neighbours.
  'false-suspects': () => ({
    report: (m) =>
      m.type !== 'round-done'
        ? [m]
        : [
            ...m.inputs.map((s): ClientMessage => ({ type: 'suspect', round: m.round, peer: s.from, microbatch: s.microbatch, reason: 'norm 9.1 is outside the band [0.8, 2.4]' })),
            m,
          ],
  }),
  // Its own: it takes the witness's seat and never answers an audit, to hold every round it witnesses.
  'silent-witness': () => ({ report: (m) => (m.type === 'verdict' ? [] : [m]) }),
  // Issue 19 #5: it reports a channel to one replica of its stage only (and cheats on all its outputs), to choose its witness.
  'one-witness-link': () => ({
    report: (m, me) => {
      if (m.type !== 'links') return [m];
      const replicas = new Set(me.known.filter((p) => p.stage === me.stage).map((p) => p.peerId));
      const chosen = m.connected.find((id) => replicas.has(id));
      return [{ ...m, connected: m.connected.filter((id) => !replicas.has(id) || id === chosen) }];
    },
  }),
} satisfies Record<string, (colluders: Colluders) => Misreport>;
