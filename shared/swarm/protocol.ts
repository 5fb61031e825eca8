// The coordinator's wire protocol (ARCHITECTURE §5): every control message in both directions,
// as zod schemas with the TypeScript types inferred from them. Messages are JSON text frames with a
// `type` field. The coordinator never carries weights or tensors, so messages are small and capped.
// Messages only: parse.ts reads and writes them, run/config.ts holds the run they carry.
import { z } from 'zod';
import { jsonBytes } from '../base/json.js';
import { SettledEpochSchema } from '../ledger/proof-file.js';
import { RunConfigSchema } from '../run/config.js';

/** Largest accepted message, in UTF-8 bytes. Control messages are far smaller; SDP is a few KiB. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Weight seals one checkpoint report carries: what fits a message with room to spare. */
export const MAX_WEIGHT_SEALS = 64;
/** Largest `signal.data` payload (JSON, UTF-8 bytes); leaves room for the envelope under the cap. */
export const MAX_SIGNAL_DATA_BYTES = 48 * 1024;

// ---------------------------------------------------------------------------------------------
// Building blocks

/** One schema of every message type, discriminated by `type`. */
function unionOf<T extends Record<string, z.ZodObject<{ type: z.ZodLiteral<string> }>>>(schemas: T) {
  return z.discriminatedUnion('type', Object.values(schemas) as [T[keyof T], ...T[keyof T][]]);
}

const posInt = z.int().positive();
const nonNegInt = z.int().nonnegative();
const nonNeg = z.number().nonnegative();
const id = z.string().min(1).max(64);
const text = z.string().max(1024);
const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be a 0x-prefixed 20-byte hex address');
/** On-chain ids travel as decimal strings: JSON has no bigint. */
const uintString = z.string().regex(/^(0|[1-9]\d{0,77})$/, 'must be a decimal integer string');
/** Generation limits: a prompt and an answer stay small control messages. */
export const MAX_PROMPT_CHARS = 512;
export const MAX_GENERATED_TOKENS = 256;
/** Part of an answer: the text of tokens `from`… (streamed from stage 0 through the coordinator to the buyer). */
const AnswerPartSchema = z.strictObject({
  from: z.int().min(0).max(MAX_GENERATED_TOKENS),
  text: z
    .string()
    .min(1)
    .max(4 * MAX_GENERATED_TOKENS),
});

export const CapabilitySchema = z.strictObject({
  adapter: z.string().max(256),
  kind: z.enum(['cpu', 'integrated', 'discrete', 'unknown']),
  /** Measured matmul GFLOP/s. */
  gflops: nonNeg,
  /** Memory budget the peer will use, in bytes. */
  memoryBytes: nonNeg,
  /** Transformer layers the peer can hold (its verdict for this run). */
  maxLayers: nonNegInt,
});
export type Capability = z.infer<typeof CapabilitySchema>;

/** Any JSON value whose text fits MAX_SIGNAL_DATA_BYTES (SDP offers/answers, ICE candidates). */
const signalData = z.unknown().superRefine((v, ctx) => {
  const n = jsonBytes(v);
  if (v === undefined || n === undefined) ctx.addIssue({ code: 'custom', message: 'must be a JSON value' });
  else if (n > MAX_SIGNAL_DATA_BYTES) ctx.addIssue({ code: 'custom', message: `is ${n} bytes, above the ${MAX_SIGNAL_DATA_BYTES}-byte cap` });
  // Thousands of levels parse, but re-encoding them for the relay overflows the stack.
  else if (depth(v) > MAX_SIGNAL_DEPTH) ctx.addIssue({ code: 'custom', message: `nests deeper than ${MAX_SIGNAL_DEPTH} levels` });
});

/** SDP and ICE candidates are two or three levels deep. */
const MAX_SIGNAL_DEPTH = 32;

/** Nesting depth of a JSON value (stops counting past the cap). */
function depth(v: unknown, level = 0): number {
  if (level > MAX_SIGNAL_DEPTH || typeof v !== 'object' || v === null) return level;
  let deepest = level + 1;
  for (const x of Object.values(v)) deepest = Math.max(deepest, depth(x, level + 1));
  return deepest;
}

// ---------------------------------------------------------------------------------------------
// Client → server

const hash = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');
/** A stage's state a peer holds on its own disk (it offers it at registration to resume). */
export const HeldStateSchema = z.strictObject({ runId: id, stage: nonNegInt, step: nonNegInt, hash });
export type HeldState = z.infer<typeof HeldStateSchema>;
const peerIds = z.array(id).max(256);
const sha = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');
/** A frame's seal as its receiver reports it (shared/trust/seal.ts): provable by the sender's key. */
const keySignature = z.string().regex(/^[0-9a-f]{128}$/, 'must be a 64-byte Ed25519 signature as 128 lowercase hex digits');
export const SealSchema = z.strictObject({
  kind: z.int().min(1).max(255),
  /** The frame header's tag: the round of a training frame. */
  tag: nonNegInt,
  microbatch: nonNegInt,
  hash: sha,
  from: id,
  to: id,
  sig: keySignature,
});
export type Seal = z.infer<typeof SealSchema>;
/** A replica's signature of a stage state it gave (trust/state-seal.ts): `hash` is the SHA-256 of its parameters. */
export const StateSealSchema = z.strictObject({
  from: id,
  stage: nonNegInt,
  step: nonNegInt,
  hash: sha,
  sig: keySignature,
});
export type StateSeal = z.infer<typeof StateSealSchema>;
const base64 = (maxChars: number) =>
  z
    .string()
    .max(maxChars)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
/** Longest frame a peer can show the coordinator as evidence, in base64 characters (36 KiB of frame). */
export const MAX_EVIDENCE_CHARS = 48 * 1024;
/** Most seals one report carries (two inputs per microbatch routed through the peer). */
export const MAX_SEALS = 256;
/** A raw Ed25519 public key (32 bytes) and a signature (64 bytes), as lowercase hex. */
const publicKey = z.string().regex(/^[0-9a-f]{64}$/, 'must be a 32-byte Ed25519 public key as 64 lowercase hex digits');
/** An EIP-191 signature (r, s, v) as 0x-hex. */
const accountSignature = z.string().regex(/^0x[0-9a-fA-F]{130}$/, 'must be a 65-byte signature as 0x-prefixed hex');

export const ClientMessageSchemas = {
  register: z.strictObject({
    type: z.literal('register'),
    name: z.string().min(1).max(64),
    capability: CapabilitySchema,
    /** This session's Ed25519 key: it signs what the peer sends its neighbours (identity.ts). */
    key: publicKey,
    /** The key's signature of the connection's `hello` nonce (keyChallenge). */
    keyProof: keySignature,
    /** Where this peer's verified work is credited on chain (it must have joined the run there). */
    account: address.optional(),
    /** The account's signature of accountMessage(key, nonce): required with `account`. */
    accountProof: accountSignature.optional(),
    /** States of this run's stages the peer kept (newest first), so a returning peer can resume its stage. */
    held: z.array(HeldStateSchema).max(16).optional(),
  }),
  signal: z.strictObject({ type: z.literal('signal'), to: id, data: signalData }),
  /** The neighbours whose data channels are open now (sent whenever the set changes). */
  links: z.strictObject({ type: z.literal('links'), connected: peerIds }),
  /** Kernels compiled and the stage's state loaded, at `step` (0: the seeded init). */
  /** The stage's state is loaded, at `step`, its parameters hashing to `hash`. */
  /** Its stage state is loaded; `seal`: the signature of the replica it came from, if it came from one. */
  ready: z.strictObject({ type: z.literal('ready'), step: nonNegInt, hash: hash.optional(), seal: StateSealSchema.optional() }),
  /** A state a replica gave that this joiner refused (not the stage's agreed one, or one no replica could hold), as the replica signed it. */
  'bad-state': z.strictObject({ type: z.literal('bad-state'), seal: StateSealSchema }),
  heartbeat: z.strictObject({
    type: z.literal('heartbeat'),
    /** The last step this peer applied. */
    step: nonNegInt,
    loss: z.number().optional(),
    valLoss: z.number().optional(),
    tokensPerSec: nonNeg.optional(),
    bytesSent: nonNeg,
    bytesReceived: nonNeg,
    busyFraction: z.number().min(0).max(1).optional(),
  }),
  /** This peer's share of a round is computed (not yet applied): its loss sum (last stage). The coordinator times it itself. */
  'round-done': z.strictObject({
    type: z.literal('round-done'),
    round: nonNegInt,
    microbatches: nonNegInt,
    lossSum: z.number().nonnegative().optional(),
    /** The seals of the inputs it computed from: each routed microbatch's activation (from its previous hop) and gradient (from its next). */
    inputs: z.array(SealSchema).max(MAX_SEALS),
  }),
  /** Two different frames one sender sealed for the same slot (round, kind, microbatch, receiver): proof it cheated. */
  equivocation: z.strictObject({ type: z.literal('equivocation'), seals: z.tuple([SealSchema, SealSchema]) }),
  /**
   * A frame whose defect is plain to see (it does not decode, is not finite, has the wrong shape, is
   * all zero), as its sender sealed it: base64 of the frame's bytes, and the seal.
   */
  evidence: z.strictObject({
    type: z.literal('evidence'),
    seal: SealSchema,
    frame: base64(MAX_EVIDENCE_CHARS),
    /**
     * A replay: `frame` is then the earlier frame, the one `replay.of` seals, and the frame `seal`
     * vouches for is `replay.header` followed by the earlier frame's payload (the same payload sent
     * again under another round or microbatch).
     */
    replay: z.strictObject({ of: SealSchema, header: base64(64) }).optional(),
  }),
  /** A witness's finding on an audited microbatch (shared/trust/audit.ts): `ok` when the recomputation agrees. */
  verdict: z.strictObject({
    type: z.literal('verdict'),
    round: nonNegInt,
    microbatch: nonNegInt,
    peer: id,
    ok: z.boolean(),
    reason: text,
    /** No bundle came from the audited peer within the witness's wait (shared/trust/audit.ts BUNDLE_WAIT_MS). */
    missing: z.literal(true).optional(),
  }),
  /** The validation loss after `step` (the last stage of the evaluation path). */
  evaluated: z.strictObject({ type: z.literal('evaluated'), step: nonNegInt, valLoss: z.number() }),
  /** The stage's parameters after averaging at `step`, hashed: a returning peer's state is checked against it. */
  checkpoint: z.strictObject({
    type: z.literal('checkpoint'),
    step: nonNegInt,
    hash,
    /** Members whose weights this replica left out of the mean as no replica's (trust/robust-mean.ts). */
    outliers: peerIds.optional(),
    /** The seals of (at most MAX_WEIGHT_SEALS of) the members' weights frames this replica received for that averaging. */
    weights: z.array(SealSchema).max(MAX_WEIGHT_SEALS).optional(),
  }),
  /**
   * A training frame `peer` sent this peer for microbatch `microbatch` of `round` is out of its
   * boundary's norm band (mailbox.ts): taken, but to be audited before the round commits.
   */
  suspect: z.strictObject({ type: z.literal('suspect'), round: nonNegInt, peer: id, microbatch: nonNegInt, reason: text }),
  /** A frame this peer needs has not come from `from` in time, or its link to `from` failed. */
  stalled: z.strictObject({ type: z.literal('stalled'), round: nonNegInt, from: id, reason: text }),
  /** Graceful leave (pause): the peer stops now; `kept` is the state it keeps for when it returns. */
  leave: z.strictObject({ type: z.literal('leave'), reason: text, kept: z.strictObject({ step: nonNegInt, hash }).optional() }),
  /** Stage 0's answer to `generate`: the generated text (or why it failed). */
  generated: z.strictObject({
    type: z.literal('generated'),
    requestId: nonNegInt,
    text: z
      .string()
      .max(4 * MAX_GENERATED_TOKENS)
      .optional(),
    error: text.optional(),
    /** The request itself is bad (e.g. a character the model has no token for): another path would refuse it too. */
    refused: z.boolean().optional(),
    /** A stage of the path keeps no KV cache: the same path can serve the request re-forwarding its windows. */
    uncached: z.boolean().optional(),
  }),
  /** Stage 0's text so far (streaming): the characters of tokens `from`…, sent as they are decided. */
  generating: z.strictObject({
    type: z.literal('generating'),
    requestId: nonNegInt,
    ...AnswerPartSchema.shape,
  }),
  /** An inference buyer (no registration): serve the credential spend `spendId` with this prompt. */
  infer: z.strictObject({
    type: z.literal('infer'),
    spendId: uintString,
    prompt: z.string().min(1).max(MAX_PROMPT_CHARS),
    maxTokens: z.int().min(1).max(MAX_GENERATED_TOKENS),
  }),
} as const;

export const ClientMessageSchema = unionOf(ClientMessageSchemas);
export type ClientMessage = z.infer<typeof ClientMessageSchema>;
export type ClientMessageType = ClientMessage['type'];
export type ClientMessageOf<T extends ClientMessageType> = Extract<ClientMessage, { type: T }>;

// ---------------------------------------------------------------------------------------------
// Server → client

export const PeerInfoSchema = z.strictObject({ peerId: id, stage: nonNegInt, name: z.string().min(1).max(64), key: publicKey });
export type PeerInfo = z.infer<typeof PeerInfoSchema>;

/** A view after a `peers` message: removals first, then additions (which replace a moved peer's entry). */
export function applyViewChange(view: readonly PeerInfo[], change: { added: readonly PeerInfo[]; removed: readonly string[] }): PeerInfo[] {
  const gone = new Set([...change.removed, ...change.added.map((p) => p.peerId)]);
  return [...view.filter((p) => !gone.has(p.peerId)), ...change.added];
}

/** Where a peer placed on a stage gets that stage's state. */
export const StateSourceSchema = z.discriminatedUnion('from', [
  /** The run has not trained this stage yet: the seeded init every peer derives alike. */
  z.strictObject({ from: z.literal('seed') }),
  /**
   * Ask one of these live replicas of the stage for its newest averaged state; `vouched`: the
   * stage's newest state as most of its replicas reported it (a state older, or of that step with
   * another hash, is refused).
   */
  z.strictObject({ from: z.literal('replica'), peers: peerIds.min(1), vouched: z.strictObject({ step: nonNegInt, hash }).optional() }),
  /** Load the state you offered at registration. */
  z.strictObject({ from: z.literal('own'), step: nonNegInt, hash }),
]);
export type StateSource = z.infer<typeof StateSourceSchema>;

/** The run's phase, and why, in words a dashboard shows as they are. */
export const SwarmPhaseSchema = z.enum(['waiting', 'training', 'paused', 'serving', 'finished', 'stopped']);
export type SwarmPhase = z.infer<typeof SwarmPhaseSchema>;

/** The largest training loss a commit carries: a peer's claim beyond it is not shown to anyone (cross-entropy of a sane model is far below). */
export const MAX_REPORTED_LOSS = 1e6;
/** Whether a loss a peer claims may be passed on: out of the schemas' range, every peer would refuse the message carrying it. */
export const reportableLoss = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x) && x >= 0 && x <= MAX_REPORTED_LOSS;

/**
 * A STUN or TURN server a peer gathers ICE candidates through, with the time-limited credentials the
 * coordinator made for it (TURN REST: coordinator/turn-credentials.ts). At most a few: each one is
 * asked for candidates on every connection.
 */
export const IceServerSchema = z.strictObject({
  urls: z
    .array(z.string().regex(/^(stun|turns?):[^\s]{1,250}$/, 'must be a stun:, turn: or turns: URL'))
    .min(1)
    .max(4),
  username: z.string().max(256).optional(),
  credential: z.string().max(256).optional(),
});
export type IceServer = z.infer<typeof IceServerSchema>;

export const ServerMessageSchemas = {
  /** First message on every connection: the nonce a registering peer signs (a proof made for one connection is no use on another). */
  hello: z.strictObject({ type: z.literal('hello'), nonce: z.string().regex(/^[0-9a-f]{32}$/) }),
  welcome: z.strictObject({
    type: z.literal('welcome'),
    peerId: id,
    /** The chain the run settles on, if any (a peer joins the run there with its own key). */
    chain: z.strictObject({ chainId: posInt, registry: address, tokens: address, runId: uintString }).optional(),
    /** Where this peer gathers its ICE candidates: none on one machine (host candidates reach). */
    iceServers: z.array(IceServerSchema).max(4).optional(),
  }),
  /**
   * This peer's stage, the run, its view (the peers it opens channels to: its stage's replicas and
   * some of each adjacent stage), and where to get the stage's state.
   */
  assign: z.strictObject({ type: z.literal('assign'), stage: nonNegInt, run: RunConfigSchema, peers: z.array(PeerInfoSchema).max(1024), state: StateSourceSchema }),
  /** The view changed: connect to the peers added, drop the ones removed (applied removals first). */
  peers: z.strictObject({ type: z.literal('peers'), added: z.array(PeerInfoSchema).max(1024), removed: z.array(id).max(1024) }),
  signal: z.strictObject({ type: z.literal('signal'), from: id, data: signalData }),
  /**
   * Compute global step `step` as round `round`: routes[i] is microbatch i's path, one peer per
   * stage. A peer computes the microbatches that pass through it and keeps their gradients until
   * the round's commit.
   */
  round: z.strictObject({ type: z.literal('round'), round: nonNegInt, step: posInt, routes: z.array(peerIds.min(1)).min(1).max(4096) }),
  /**
   * Apply (or, after a failure, discard) round `round`'s gradients. Then, when `average` is given,
   * average the stage's weights: members send and receive, listeners (joiners) only receive; then
   * the peers of `eval.path` evaluate.
   */
  commit: z.strictObject({
    type: z.literal('commit'),
    round: nonNegInt,
    step: nonNegInt,
    apply: z.boolean(),
    /** The swarm's mean training loss of the step (from its last stage), so every peer can show it. */
    loss: z.number().finite().nonnegative().max(MAX_REPORTED_LOSS).optional(),
    average: z.strictObject({ members: z.array(peerIds), listeners: z.array(peerIds) }).optional(),
    eval: z.strictObject({ path: peerIds.min(1), batches: posInt }).optional(),
  }),
  /** Round `round` waits for this peer's report, long after the others': answer with a `stalled` naming the neighbour it waits for, if it waits for one. */
  late: z.strictObject({ type: z.literal('late'), round: nonNegInt }),
  /** To an audited peer, after its report: send `witness` the bundle of microbatch `microbatch` of round `round` (its weights and that microbatch's frames). */
  audit: z.strictObject({ type: z.literal('audit'), round: nonNegInt, microbatch: nonNegInt, witness: id }),
  /**
   * To a witness: recompute `peer`'s microbatch from the bundle it sends you, and answer with a
   * `verdict`. `frames` are the SHA-256 of each frame of the bundle as its neighbours' seals prove them.
   */
  verify: z.strictObject({
    type: z.literal('verify'),
    round: nonNegInt,
    step: posInt,
    microbatch: nonNegInt,
    peer: id,
    frames: z.strictObject({ xIn: sha.optional(), yOut: sha.optional(), gIn: sha.optional(), dxOut: sha.optional() }),
  }),
  /** To a leaving peer: hand your state to this peer (it takes your stage over) before you go. */
  handoff: z.strictObject({ type: z.literal('handoff'), to: id }),
  status: z.strictObject({ type: z.literal('status'), phase: SwarmPhaseSchema, reason: text, step: nonNegInt, steps: posInt }),
  /** The swarm's validation loss after `step`, as its evaluation path's last peer reported it: every dashboard draws it. */
  validation: z.strictObject({ type: z.literal('validation'), step: nonNegInt, valLoss: z.number().finite().nonnegative().max(MAX_REPORTED_LOSS) }),
  'peer-lost': z.strictObject({ type: z.literal('peer-lost'), peerId: id, reason: text }),
  stop: z.strictObject({ type: z.literal('stop'), reason: text }),
  /** `ref` names what the error is about (the offending message type, or a peer id). */
  error: z.strictObject({ type: z.literal('error'), message: text, ref: z.string().max(64).optional() }),
  /** To every peer of `path` (one per stage): generate from `prompt`; stage 0 answers with `generated`. */
  generate: z.strictObject({
    type: z.literal('generate'),
    requestId: nonNegInt,
    path: peerIds.min(1),
    prompt: z.string().min(1).max(MAX_PROMPT_CHARS),
    maxTokens: z.int().min(1).max(MAX_GENERATED_TOKENS),
    temperature: z.number().min(0).max(10),
    seed: z.int(),
    /** Re-forward the whole window for every token instead of using the stages' KV caches (a benchmark's reference path). */
    recompute: z.boolean().optional(),
    /** The answer's text an earlier path decided before it lost a peer: continue after it (maxTokens more), as that path would have. */
    resume: z
      .string()
      .min(1)
      .max(4 * MAX_GENERATED_TOKENS)
      .optional(),
  }),
  /**
   * To a contributor, after its epoch's root was posted: its cumulative units and Merkle proof, so
   * it can claim (or claim its share of an abandoned run's stake) without the coordinator.
   */
  settled: z.strictObject({ type: z.literal('settled'), ...SettledEpochSchema.shape }),
  /** To a buyer: the answer to its spend, and the hash recorded on chain as the receipt. */
  /** Part of the answer to spend `spendId` as it is generated: the text of tokens `from`… (a retry on another path may send the same part again). */
  'answer-part': z.strictObject({
    type: z.literal('answer-part'),
    spendId: uintString,
    ...AnswerPartSchema.shape,
  }),
  answer: z.strictObject({ type: z.literal('answer'), spendId: uintString, text: z.string().max(4 * MAX_GENERATED_TOKENS), answerHash: z.string().regex(/^0x[0-9a-f]{64}$/) }),
} as const;

export const ServerMessageSchema = unionOf(ServerMessageSchemas);
export type ServerMessage = z.infer<typeof ServerMessageSchema>;
export type ServerMessageType = ServerMessage['type'];
export type ServerMessageOf<T extends ServerMessageType> = Extract<ServerMessage, { type: T }>;
