// The coordinator's wire protocol (ARCHITECTURE §5): every control message in both directions,
// as zod schemas with the TypeScript types inferred from them. Messages are JSON text frames with a
// `type` field. The coordinator never carries weights or tensors, so messages are small and capped.
// Parsing never throws: a bad message becomes `{ ok: false, error }` with a sentence a human can act
// on, because a volunteer's client must get told what was wrong instead of being dropped.
import { z } from 'zod';

/** Largest accepted message, in UTF-8 bytes. Control messages are far smaller; SDP is a few KiB. */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Largest `signal.data` payload (JSON, UTF-8 bytes); leaves room for the envelope under the cap. */
export const MAX_SIGNAL_DATA_BYTES = 48 * 1024;

// ---------------------------------------------------------------------------------------------
// Building blocks

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

/** UTF-8 length of the JSON text of `v`, or undefined when `v` is not JSON (undefined, BigInt, cycles). */
export function jsonBytes(v: unknown): number | undefined {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? undefined : utf8Length(s);
  } catch {
    return undefined;
  }
}

/** UTF-8 byte count without TextEncoder allocations (the cap check runs on every message). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * How subspace coefficients are sent: a float type, int8/int4 with a column's absmax as its scale,
 * or e<b>: int8 with a step of a column's RMS chosen for about b bits a value once entropy-coded.
 */
export const SUBSPACE_COEFFS = ['fp32', 'fp16', 'int8', 'int4', 'e1.5', 'e2', 'e2.5', 'e3', 'e3.5', 'e4', 'e5', 'e6'] as const;

export const CodecSpecSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('fp32') }),
  z.strictObject({ kind: z.literal('bf16') }),
  z.strictObject({ kind: z.literal('int8') }),
  z.strictObject({ kind: z.literal('subspace'), k: posInt, coeff: z.enum(SUBSPACE_COEFFS) }),
]);
export type CodecSpec = z.infer<typeof CodecSpecSchema>;

export const ModelSpecSchema = z.strictObject({
  vocab: posInt,
  dModel: posInt,
  nHead: posInt,
  nLayer: posInt,
  seq: posInt,
  batch: posInt,
});

export const OptimizerSpecSchema = z.strictObject({
  lr: z.number().positive(),
  beta1: z.number().min(0).lt(1),
  beta2: z.number().min(0).lt(1),
  eps: z.number().positive(),
  weightDecay: nonNeg,
  /** Global-norm clip; 0 disables clipping. */
  clip: nonNeg,
  /** Linear warm-up steps. */
  warmup: nonNegInt,
});

export const RunConfigSchema = z
  .strictObject({
    runId: id,
    model: ModelSpecSchema,
    stages: posInt,
    /** Transformer layers per stage; stage 0 also holds the embedding, the last stage the head. */
    layersPerStage: z.array(posInt).min(1),
    /**
     * Microbatches per global step, whoever computes them: the swarm spreads them over the peers it
     * has, so membership changes how fast a step goes, never what it is.
     */
    microbatches: posInt,
    /** Peers every stage needs before training starts (more may join at any time). */
    minPerStage: posInt,
    steps: posInt,
    /**
     * Horizon of the learning-rate schedule (default `steps`). A longer run keeps the final rate
     * after it, so its first scheduleSteps steps are exactly a run of that length.
     */
    scheduleSteps: posInt.optional(),
    seed: z.int(),
    data: z.strictObject({
      name: z.string().min(1).max(256),
      sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
      chars: posInt,
    }),
    codec: CodecSpecSchema,
    optimizer: OptimizerSpecSchema,
    /** H: steps between replica averaging. */
    averageEvery: posInt,
    /** Steps between validation evaluations; 0 disables evaluation. */
    evalEvery: nonNegInt,
    evalBatches: nonNegInt,
    /** After training, peers stay up and serve inference requests until stopped. */
    serve: z.boolean().optional(),
  })
  .superRefine((r, ctx) => {
    const m = r.model;
    if (m.dModel % m.nHead !== 0) {
      ctx.addIssue({ code: 'custom', path: ['model', 'dModel'], message: `dModel ${m.dModel} is not divisible by nHead ${m.nHead}` });
    }
    if (r.layersPerStage.length !== r.stages) {
      ctx.addIssue({
        code: 'custom',
        path: ['layersPerStage'],
        message: `has ${r.layersPerStage.length} entries but stages is ${r.stages}`,
      });
    }
    const sum = r.layersPerStage.reduce((a, b) => a + b, 0);
    if (sum !== m.nLayer) {
      ctx.addIssue({ code: 'custom', path: ['layersPerStage'], message: `sums to ${sum} but model.nLayer is ${m.nLayer}` });
    }
    if (r.codec.kind === 'subspace' && r.codec.k > m.dModel) {
      ctx.addIssue({ code: 'custom', path: ['codec', 'k'], message: `subspace rank ${r.codec.k} exceeds dModel ${m.dModel}` });
    }
  });
export type RunConfig = z.infer<typeof RunConfigSchema>;

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
/** A frame's seal as its receiver reports it (shared/wire/seal.ts): provable by the sender's key. */
export const SealSchema = z.strictObject({
  kind: z.int().min(1).max(255),
  step: nonNegInt,
  microbatch: nonNegInt,
  hash: sha,
  from: id,
  to: id,
  sig: z.string().regex(/^[0-9a-f]{128}$/, 'must be 128 lowercase hex digits'),
});
export type Seal = z.infer<typeof SealSchema>;
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
const keySignature = z.string().regex(/^[0-9a-f]{128}$/, 'must be a 64-byte Ed25519 signature as 128 lowercase hex digits');
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
  ready: z.strictObject({ type: z.literal('ready'), step: nonNegInt }),
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
  /** This peer's share of a round is computed (not yet applied): its loss sum (last stage) and GPU time. */
  'round-done': z.strictObject({
    type: z.literal('round-done'),
    round: nonNegInt,
    microbatches: nonNegInt,
    busyMs: nonNeg,
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
  /** A witness's finding on an audited microbatch (shared/peer/audit.ts): `ok` when the recomputation agrees. */
  verdict: z.strictObject({
    type: z.literal('verdict'),
    round: nonNegInt,
    microbatch: nonNegInt,
    peer: id,
    ok: z.boolean(),
    reason: text,
  }),
  /** The validation loss after `step` (the last stage of the evaluation path). */
  evaluated: z.strictObject({ type: z.literal('evaluated'), step: nonNegInt, valLoss: z.number() }),
  /** The stage's parameters after averaging at `step`, hashed: a returning peer's state is checked against it. */
  checkpoint: z.strictObject({ type: z.literal('checkpoint'), step: nonNegInt, hash }),
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
  }),
  /** An inference buyer (no registration): serve the credential spend `spendId` with this prompt. */
  infer: z.strictObject({
    type: z.literal('infer'),
    spendId: uintString,
    prompt: z.string().min(1).max(MAX_PROMPT_CHARS),
    maxTokens: z.int().min(1).max(MAX_GENERATED_TOKENS),
  }),
} as const;

export const ClientMessageSchema = z.discriminatedUnion('type', [
  ClientMessageSchemas.register,
  ClientMessageSchemas.signal,
  ClientMessageSchemas.links,
  ClientMessageSchemas.ready,
  ClientMessageSchemas.heartbeat,
  ClientMessageSchemas['round-done'],
  ClientMessageSchemas.equivocation,
  ClientMessageSchemas.verdict,
  ClientMessageSchemas.evidence,
  ClientMessageSchemas.evaluated,
  ClientMessageSchemas.checkpoint,
  ClientMessageSchemas.stalled,
  ClientMessageSchemas.suspect,
  ClientMessageSchemas.leave,
  ClientMessageSchemas.generated,
  ClientMessageSchemas.infer,
]);
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
  /** Ask one of these live replicas of the stage for its newest averaged state. */
  z.strictObject({ from: z.literal('replica'), peers: peerIds.min(1) }),
  /** Load the state you offered at registration. */
  z.strictObject({ from: z.literal('own'), step: nonNegInt, hash }),
]);
export type StateSource = z.infer<typeof StateSourceSchema>;

/** The run's phase, and why, in words a dashboard shows as they are. */
export const SwarmPhaseSchema = z.enum(['waiting', 'training', 'paused', 'serving', 'finished', 'stopped']);
export type SwarmPhase = z.infer<typeof SwarmPhaseSchema>;

/** The largest training loss a commit carries: a peer's claim beyond it is not shown to anyone (cross-entropy of a sane model is far below). */
export const MAX_REPORTED_LOSS = 1e6;

export const ServerMessageSchemas = {
  /** First message on every connection: the nonce a registering peer signs (a proof made for one connection is no use on another). */
  hello: z.strictObject({ type: z.literal('hello'), nonce: z.string().regex(/^[0-9a-f]{32}$/) }),
  welcome: z.strictObject({
    type: z.literal('welcome'),
    peerId: id,
    /** The chain the run settles on, if any (a peer joins the run there with its own key). */
    chain: z.strictObject({ chainId: posInt, registry: address, tokens: address, runId: uintString }).optional(),
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
  }),
  /**
   * To a contributor, after its epoch's root was posted: its cumulative units and Merkle proof, so
   * it can claim (or claim its share of an abandoned run's stake) without the coordinator.
   */
  settled: z.strictObject({
    type: z.literal('settled'),
    epoch: nonNegInt,
    root: z.string().regex(/^0x[0-9a-f]{64}$/),
    total: uintString,
    account: address,
    cumulative: uintString,
    proof: z.array(z.string().regex(/^0x[0-9a-f]{64}$/)).max(64),
  }),
  /** To a buyer: the answer to its spend, and the hash recorded on chain as the receipt. */
  answer: z.strictObject({ type: z.literal('answer'), spendId: uintString, text: z.string().max(4 * MAX_GENERATED_TOKENS), answerHash: z.string().regex(/^0x[0-9a-f]{64}$/) }),
} as const;

export const ServerMessageSchema = z.discriminatedUnion('type', [
  ServerMessageSchemas.hello,
  ServerMessageSchemas.welcome,
  ServerMessageSchemas.assign,
  ServerMessageSchemas.peers,
  ServerMessageSchemas.signal,
  ServerMessageSchemas.round,
  ServerMessageSchemas.commit,
  ServerMessageSchemas.audit,
  ServerMessageSchemas.verify,
  ServerMessageSchemas.handoff,
  ServerMessageSchemas.status,
  ServerMessageSchemas['peer-lost'],
  ServerMessageSchemas.stop,
  ServerMessageSchemas.error,
  ServerMessageSchemas.generate,
  ServerMessageSchemas.answer,
  ServerMessageSchemas.settled,
]);
export type ServerMessage = z.infer<typeof ServerMessageSchema>;
export type ServerMessageType = ServerMessage['type'];
export type ServerMessageOf<T extends ServerMessageType> = Extract<ServerMessage, { type: T }>;

// ---------------------------------------------------------------------------------------------
// Parsing and encoding

export type Parsed<T> = { ok: true; msg: T } | { ok: false; error: string };
export type Encoded = { ok: true; text: string } | { ok: false; error: string };

/** One line per problem, e.g. `heartbeat.step: Invalid input: expected number, received string`. */
export function formatIssues(prefix: string, error: z.ZodError): string {
  const lines = error.issues.slice(0, 5).map((i) => {
    const path = [prefix, ...i.path.map(String)].join('.');
    return `${path}: ${i.message}`;
  });
  if (error.issues.length > 5) lines.push(`(${error.issues.length - 5} more)`);
  return lines.join('; ');
}

// Dispatching on `type` ourselves (instead of through the union) turns "no matching discriminator"
// into a message listing the valid types, and field errors into ones that name the message type.
function parseWith<T>(text: unknown, schemas: Record<string, z.ZodType>, side: string): Parsed<T> {
  if (typeof text !== 'string') return { ok: false, error: 'message must be a JSON text frame' };
  const size = utf8Length(text);
  if (size > MAX_MESSAGE_BYTES) return { ok: false, error: `message is ${size} bytes, above the ${MAX_MESSAGE_BYTES}-byte limit` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `message is not valid JSON (${(e as Error).message})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: 'message must be a JSON object with a "type" field' };
  }
  const type = (value as { type?: unknown }).type;
  const known = Object.keys(schemas);
  if (typeof type !== 'string') return { ok: false, error: `message has no string "type" field (expected one of ${known.join(', ')})` };
  if (!Object.hasOwn(schemas, type)) {
    return { ok: false, error: `unknown ${side} message type "${type.slice(0, 64)}" (expected one of ${known.join(', ')})` };
  }
  const r = schemas[type].safeParse(value);
  if (!r.success) return { ok: false, error: `invalid ${type} message: ${formatIssues(type, r.error)}` };
  return { ok: true, msg: r.data as T };
}

function encodeWith(msg: unknown, schema: z.ZodType, side: string): Encoded {
  const r = schema.safeParse(msg);
  const type = typeof (msg as { type?: unknown })?.type === 'string' ? (msg as { type: string }).type : side;
  if (!r.success) return { ok: false, error: `invalid ${type} message: ${formatIssues(type, r.error)}` };
  const textOut = JSON.stringify(r.data);
  const size = utf8Length(textOut);
  if (size > MAX_MESSAGE_BYTES) return { ok: false, error: `${type} message is ${size} bytes, above the ${MAX_MESSAGE_BYTES}-byte limit` };
  return { ok: true, text: textOut };
}

/** Parse a text frame received by the coordinator. Never throws. */
export function parseClientMessage(text: string): Parsed<ClientMessage> {
  return parseWith<ClientMessage>(text, ClientMessageSchemas, 'client');
}

/** Parse a text frame received by a peer. Never throws. */
export function parseServerMessage(text: string): Parsed<ServerMessage> {
  return parseWith<ServerMessage>(text, ServerMessageSchemas, 'server');
}

/** Validate and serialise a message a peer is about to send. Never throws. */
export function encodeClientMessage(msg: ClientMessage): Encoded {
  return encodeWith(msg, ClientMessageSchema, 'client');
}

/** Validate and serialise a message the coordinator is about to send. Never throws. */
export function encodeServerMessage(msg: ServerMessage): Encoded {
  return encodeWith(msg, ServerMessageSchema, 'server');
}
