// The IPC contract between the desktop app's pages and its main process: one channel per bridge
// method (shared/app/bridge.ts) and a zod schema for what crosses it. The preloads use the
// channel names and the types; the main process parses every payload with these schemas before it
// acts, because a page (or a script injected into one) can send anything down a channel.
import { z } from 'zod';
import type { AppConfig, DesktopWallet, TransactionRequestJson } from '../shared/app/bridge.js';
import { RUN_ID } from '../shared/app/join-run.js';
import { jsonBytes } from '../shared/base/json.js';
import { NetworkSchema } from '../shared/chain/network.js';
import { SESSION_EVENT_NAMES } from '../shared/peer/session-events.js';
import { PolicySettingsSchema, SNOOZE_HOURS, type SnoozeHours } from '../shared/policy/index.js';
import type { Decision, PolicyView, TrainerCommand } from '../shared/policy/types.js';

type Hex = `0x${string}`;

/** Channels the pages invoke (ipcRenderer.invoke → ipcMain.handle) or send (report). */
export const CHANNELS = {
  config: 'swarm:config',
  policy: 'swarm:policy',
  saveSettings: 'swarm:save-settings',
  snooze: 'swarm:snooze',
  pause: 'swarm:pause',
  resume: 'swarm:resume',
  switchRun: 'swarm:switch-run',
  switchNetwork: 'swarm:switch-network',
  walletAddress: 'swarm:wallet:address',
  signTransaction: 'swarm:wallet:sign-transaction',
  signMessage: 'swarm:wallet:sign-message',
  signTypedData: 'swarm:wallet:sign-typed-data',
  /** Trainer → main, one way (ipcRenderer.send): the session's events. */
  report: 'swarm:trainer:report',
} as const;

/** Channels the main process pushes on (webContents.send → ipcRenderer.on). */
export const EVENTS = {
  /** → dashboard: a new PolicyView. */
  policy: 'swarm:policy-changed',
  /** → dashboard: one of the trainer's session events, relayed. */
  trainerEvent: 'swarm:trainer-event',
  /** → trainer: start, leave or change duty. */
  trainerCommand: 'swarm:trainer:command',
} as const;

export type InvokeName = Exclude<keyof typeof CHANNELS, 'report'>;

/** JSON-encoded payload bounds: big enough for any honest message, small enough not to stall main. */
export const MAX_EVENT_BYTES = 1_000_000;
export const MAX_MESSAGE_CHARS = 65_536;
export const MAX_TYPED_DATA_CHARS = 1_000_000;

const HEX_ANY = /^0x(?:[0-9a-fA-F]{2})*$/;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const KEY = /^0x[0-9a-fA-F]{64}$/;
const UINT256_MAX = (1n << 256n) - 1n;

function hex(what: string, pattern: RegExp) {
  return z.custom<Hex>((v) => typeof v === 'string' && pattern.test(v), { message: `must be ${what}` });
}

/** A non-negative integer as a decimal string, at most 2^256 - 1 (IPC does not carry bigint). */
const DecimalString = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,77})$/, 'must be a decimal string of a non-negative integer (e.g. "1000000000")')
  .refine((s) => BigInt(s) <= UINT256_MAX, 'must be at most 2^256 - 1');

function urlWith(protocols: string[]) {
  const message = `must be a URL with protocol ${protocols.map((p) => `${p}//`).join(' or ')}`;
  return z.string().refine((s) => URL.canParse(s) && protocols.includes(new URL(s).protocol), message);
}

/** A network file's JSON is small; this bounds what the main process parses for a page. */
export const MAX_NETWORK_CHARS = 16_384;

export const AppConfigSchema = z.strictObject({
  coordinator: urlWith(['ws:', 'wss:']).optional(),
  problem: z.string().max(4000).optional(),
  dataUrl: z.string().min(1).max(2048).optional(),
  chain: z
    .strictObject({
      rpcUrl: urlWith(['http:', 'https:', 'ws:', 'wss:']),
      chainId: z.int().positive(),
      registry: hex('a 20-byte address (0x + 40 hex digits)', ADDRESS),
      tokens: hex('a 20-byte address (0x + 40 hex digits)', ADDRESS),
      runId: z.string().min(1).max(200),
    })
    .optional(),
  localKeys: z.array(hex('a 32-byte private key (0x + 64 hex digits)', KEY)).max(32).optional(),
  walletConnectProjectId: z.string().min(1).max(200).optional(),
  network: NetworkSchema.optional(),
}) satisfies z.ZodType<AppConfig>;

export const SnoozeHoursSchema = z.literal(SNOOZE_HOURS, 'must be 1, 3, 6 or 12 hours') satisfies z.ZodType<SnoozeHours>;

export const TransactionRequestJsonSchema = z.strictObject({
  chainId: z.int().positive(),
  to: hex('a 20-byte address (0x + 40 hex digits)', ADDRESS),
  data: hex('hex bytes (0x + an even number of hex digits)', HEX_ANY).optional(),
  value: DecimalString.optional(),
  nonce: z.int().min(0),
  gas: DecimalString,
  maxFeePerGas: DecimalString,
  maxPriorityFeePerGas: DecimalString,
}) satisfies z.ZodType<TransactionRequestJson>;

/**
 * The envelope is checked (known event name, object payload, bounded size); the payload's fields are
 * the trainer page's own business and are relayed, not interpreted, by the main process.
 */
export const TrainerEventSchema = z
  .strictObject({
    type: z.enum(SESSION_EVENT_NAMES, `must be a session event (${SESSION_EVENT_NAMES.join(', ')})`),
    data: z.record(z.string(), z.unknown(), 'must be an object'),
  })
  // Not JSON (cyclic, bigint): not an event the dashboard could take either.
  .refine((e) => (jsonBytes(e) ?? Number.POSITIVE_INFINITY) <= MAX_EVENT_BYTES, `must be at most ${MAX_EVENT_BYTES} bytes of JSON`);

/** What the main process knows of a relayed event: a known name and an object (the page types it as TrainerEvent). */
export type TrainerEventEnvelope = z.output<typeof TrainerEventSchema>;

export const TrainerCommandSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('start') }),
  z.strictObject({ type: z.literal('leave'), reason: z.string() }),
  z.strictObject({ type: z.literal('duty'), duty: z.number().min(0).max(1) }),
]) satisfies z.ZodType<TrainerCommand>;

export const DecisionSchema = z.strictObject({
  action: z.enum(['run', 'throttle', 'pause']),
  reason: z.string(),
  duty: z.number().min(0).max(1),
  until: z.number().optional(),
}) satisfies z.ZodType<Decision>;

export const PolicyViewSchema = z.strictObject({
  decision: DecisionSchema,
  settings: PolicySettingsSchema,
  // Infinity: paused until resumed (zod's number() refuses infinities).
  pausedUntil: z.union([z.number(), z.literal(Number.POSITIVE_INFINITY)]).optional(),
}) satisfies z.ZodType<PolicyView>;

const NoPayload = z.undefined('takes no payload');
const Signature = hex('a hex signature', HEX_ANY);

/** Per invoke channel: what the page may send and what it gets back. */
export const CONTRACT = {
  config: { request: NoPayload, reply: AppConfigSchema },
  policy: { request: NoPayload, reply: PolicyViewSchema },
  saveSettings: { request: PolicySettingsSchema, reply: PolicyViewSchema },
  snooze: { request: SnoozeHoursSchema, reply: PolicyViewSchema },
  pause: { request: NoPayload, reply: PolicyViewSchema },
  resume: { request: NoPayload, reply: PolicyViewSchema },
  switchRun: { request: z.string().regex(RUN_ID, 'must be a run id (a positive integer)'), reply: z.void() },
  // null: back to the app's own network (IPC has no way to send an explicit undefined argument).
  switchNetwork: { request: z.string().max(MAX_NETWORK_CHARS, `must be at most ${MAX_NETWORK_CHARS} characters`).nullable(), reply: z.void() },
  walletAddress: { request: NoPayload, reply: hex('an address', ADDRESS) },
  signTransaction: { request: TransactionRequestJsonSchema, reply: Signature },
  signMessage: { request: z.string().max(MAX_MESSAGE_CHARS, `must be at most ${MAX_MESSAGE_CHARS} characters`), reply: Signature },
  signTypedData: { request: z.string().max(MAX_TYPED_DATA_CHARS, `must be at most ${MAX_TYPED_DATA_CHARS} characters`), reply: Signature },
} as const satisfies Record<InvokeName, { request: z.ZodType; reply: z.ZodType }>;

export type InvokeRequest<N extends InvokeName> = z.input<(typeof CONTRACT)[N]['request']>;
export type InvokeReply<N extends InvokeName> = z.output<(typeof CONTRACT)[N]['reply']>;

/** Which window may use a channel: the policy controls are the dashboard's, the wallet is both pages'. */
export type WindowRole = 'dashboard' | 'trainer';
export const ALLOWED: Record<InvokeName | 'report', readonly WindowRole[]> = {
  config: ['dashboard', 'trainer'],
  policy: ['dashboard'],
  saveSettings: ['dashboard'],
  snooze: ['dashboard'],
  pause: ['dashboard'],
  resume: ['dashboard'],
  switchRun: ['dashboard'],
  switchNetwork: ['dashboard'],
  walletAddress: ['dashboard', 'trainer'],
  signTransaction: ['dashboard', 'trainer'],
  signMessage: ['dashboard', 'trainer'],
  signTypedData: ['dashboard', 'trainer'],
  report: ['trainer'],
};

/** One line per problem, naming the field: what a thrown IPC error should tell the page's developer. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.map(String).join('.') : 'payload'}: ${i.message}`).join('; ');
}

// ---------------------------------------------------------------------------------------------
// Renderer-side helpers shared by both preloads (a preload may not import the other: importing it
// would run its exposeInMainWorld too).

/** The slice of ipcRenderer the preloads use (tests pass a fake). */
export interface RendererIpc {
  invoke(channel: string, ...args: unknown[]): Promise<unknown>;
  send(channel: string, ...args: unknown[]): void;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
}

type PayloadArgs<N extends InvokeName> = undefined extends InvokeRequest<N> ? [] : [InvokeRequest<N>];

/** A typed invoke on a fixed channel: the page names an action, never a channel. */
export function invoker(ipc: RendererIpc) {
  return <N extends InvokeName>(name: N, ...payload: PayloadArgs<N>): Promise<InvokeReply<N>> => ipc.invoke(CHANNELS[name], ...payload) as Promise<InvokeReply<N>>;
}

/**
 * Listen on a push channel; the page gets the value only, never the IpcRendererEvent (it exposes
 * `sender`). `T` is what the main process pushes there from values it checked; unknown where the
 * listener checks it itself.
 */
export function subscribe<T = unknown>(ipc: RendererIpc, channel: string, listener: (value: T) => void): () => void {
  const wrapped = (_event: unknown, value: unknown) => listener(value as T);
  ipc.on(channel, wrapped);
  return () => {
    ipc.removeListener(channel, wrapped);
  };
}

/** The wallet half of both bridges: every call signs in the main process, which holds the key. */
export function walletBridge(ipc: RendererIpc): DesktopWallet {
  const invoke = invoker(ipc);
  return {
    address: () => invoke('walletAddress'),
    signTransaction: (tx) => invoke('signTransaction', tx),
    signMessage: (message) => invoke('signMessage', message),
    signTypedData: (json) => invoke('signTypedData', json),
  };
}
