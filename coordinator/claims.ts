// What the coordinator checks of a peer's claims about others before it acts on them (ARCHITECTURE
// §6): the seals a round report cites, a frame shown as defective or replayed, two seals shown as
// equivocation, and the weights seals replicas report after averaging (two replicas holding
// different weights one member sealed for the same averaging prove it equivocated), and the seals
// of stage states replicas gave (one that is not what its signer reported for that step proves it
// lied). Only what signed bytes prove by themselves convicts anyone (shared/trust/evidence.ts);
// a claim that proves nothing is logged, and a claim that is false convicts the one who made it.
// Checks are asynchronous (signatures, hashes), so a peer's later messages wait behind them, in order.
import type { RunConfig } from '../shared/run/config.js';
import { KeyRing } from '../shared/swarm/identity.js';
import type { ClientMessage, ClientMessageOf, Seal, StateSeal } from '../shared/swarm/protocol.js';
import { verifyStateSeal } from '../shared/trust/state-seal.js';
import { FrameKind } from '../shared/wire/frame.js';
import { Evidence, type Verdict } from '../shared/trust/evidence.js';

/** Messages whose claims are checked asynchronously. */
export const CHECKED: ReadonlySet<ClientMessage['type']> = new Set(['round-done', 'equivocation', 'evidence', 'ready', 'bad-state']);
/** Messages of one peer that may wait behind the check of its claims. */
const MAX_QUEUED = 64;

export type ClaimOutcome = { kind: 'guilty'; verdict: NonNullable<Verdict> } | { kind: 'unproven'; why: string } | { kind: 'clean' };

export interface ClaimsOptions {
  run: RunConfig;
  /** The session key a peer registered with (kept after it is gone, so late evidence still checks). */
  keyOf(peerId: string): string | undefined;
  /** The training step of a recent round. */
  stepOfRound(round: number): number | undefined;
  /** Why a state its signer gave proves it lied, if it does (stage-states.ts contradiction). */
  stateLie(s: StateSeal): string | undefined;
  log(line: string): void;
}

/** Averagings back whose weights seals are kept for comparison. */
const KEEP_AVERAGINGS = 4;

export class Claims {
  private readonly evidence: Evidence;
  private readonly keys = new KeyRing();
  /** `${member}:${step}` → the first report of the weights that member sealed for that averaging. */
  private readonly weightSeals = new Map<string, { reporter: string; seal: Seal }>();
  /** Per peer, messages waiting behind a claim being checked. */
  private readonly queues = new Map<string, { tail: Promise<void>; waiting: number }>();

  constructor(private readonly o: ClaimsOptions) {
    this.evidence = new Evidence(o.keyOf);
  }

  /**
   * Handle `msg` from `peerId` in order: at once if nothing of its is being checked and it needs no
   * check, else behind what is. Returns an error when too many of its messages already wait.
   */
  inOrder(peerId: string, msg: ClientMessage, handle: () => Promise<void>): string | undefined {
    const queue = this.queues.get(peerId);
    if (!queue && !CHECKED.has(msg.type)) return void handle();
    if (queue && queue.waiting >= MAX_QUEUED) return `more than ${MAX_QUEUED} messages waiting behind evidence being checked`;
    const q = queue ?? { tail: Promise.resolve(), waiting: 0 };
    q.waiting++;
    q.tail = q.tail
      .then(handle)
      .catch((e: Error) => this.o.log(`BUG: handling ${msg.type} from ${peerId}: ${e.message}`))
      .finally(() => --q.waiting === 0 && this.queues.delete(peerId));
    this.queues.set(peerId, q);
    return undefined;
  }

  /** The seals a round report cites: a seal its sender never made convicts the reporter. */
  async report(peerId: string, msg: ClientMessageOf<'round-done'>): Promise<ClaimOutcome> {
    const forged = await this.evidence.forged(peerId, msg.inputs);
    return forged ? { kind: 'guilty', verdict: forged } : { kind: 'clean' };
  }

  /** A frame shown as plainly defective, or as a replay of an earlier one. */
  async shown(peerId: string, msg: ClientMessageOf<'evidence'>): Promise<ClaimOutcome> {
    const frame = Buffer.from(msg.frame, 'base64');
    const v = msg.replay
      ? await this.evidence.replayed(peerId, { later: msg.seal, earlier: msg.replay.of, bytes: frame, header: Buffer.from(msg.replay.header, 'base64') }, this.o.run, (r) =>
          this.o.stepOfRound(r),
        )
      : await this.evidence.defective(peerId, msg.seal, frame, this.o.run);
    if (v === 'unproven') {
      const why = msg.replay
        ? `${peerId} showed frames of ${msg.seal.from} as a replay that prove none (the same work sent again)`
        : `${peerId} showed a frame of ${msg.seal.from} with nothing plainly wrong with it`;
      return { kind: 'unproven', why };
    }
    return v ? { kind: 'guilty', verdict: v } : { kind: 'clean' };
  }

  /** The weights seals a replica reports after averaging, against the ones other replicas reported. */
  async weights(peerId: string, msg: ClientMessageOf<'checkpoint'>): Promise<ClaimOutcome> {
    const keepFrom = msg.step - KEEP_AVERAGINGS * this.o.run.averageEvery;
    for (const [k, w] of this.weightSeals) if (w.seal.tag < keepFrom) this.weightSeals.delete(k);
    for (const seal of msg.weights ?? []) {
      if (seal.kind !== FrameKind.ReplicaWeights || seal.tag !== msg.step || seal.to !== peerId) {
        return { kind: 'guilty', verdict: { guilty: peerId, reason: `its report of the averaging after step ${msg.step} cites a seal of something else` } };
      }
      const key = `${seal.from}:${seal.tag}`;
      const first = this.weightSeals.get(key);
      if (!first) this.weightSeals.set(key, { reporter: peerId, seal });
      if (!first || first.seal.hash === seal.hash) continue;
      const v = await this.evidence.splitWeights(first, { reporter: peerId, seal });
      // A first report that was forged is replaced by this one, which stands.
      if (v?.guilty === first.reporter) this.weightSeals.set(key, { reporter: peerId, seal });
      if (v) return { kind: 'guilty', verdict: v };
    }
    return { kind: 'clean' };
  }

  /**
   * A replica's seal of a state it gave, shown by the peer that got it (`refused`: as a state it
   * would not load): a seal its signer never made convicts the one who shows it; a state its signer
   * contradicted convicts the signer.
   */
  async state(peerId: string, seal: StateSeal, refused: boolean): Promise<ClaimOutcome> {
    if (!(await verifyStateSeal(seal, this.o.run.runId, this.keys, this.o.keyOf(seal.from)))) {
      return { kind: 'guilty', verdict: { guilty: peerId, reason: `it showed a seal of a state ${seal.from} never signed (stage ${seal.stage}, step ${seal.step})` } };
    }
    const lie = this.o.stateLie(seal);
    if (lie) return { kind: 'guilty', verdict: { guilty: seal.from, reason: lie } };
    if (!refused) return { kind: 'clean' };
    return {
      kind: 'unproven',
      why: `${peerId} refused ${seal.from}'s state of stage ${seal.stage} at step ${seal.step}, which proves nothing: ${seal.from} reported no other for that step`,
    };
  }

  /** Two different frames one sender sealed for one slot. */
  async equivocation(peerId: string, msg: ClientMessageOf<'equivocation'>): Promise<ClaimOutcome> {
    const v = await this.evidence.equivocation(peerId, msg.seals);
    return v ? { kind: 'guilty', verdict: v } : { kind: 'clean' };
  }
}
