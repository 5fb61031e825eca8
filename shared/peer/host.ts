// What a host hands the peer session: the Node worker (worker/node-host.ts), a browser tab
// (browser/host.ts) and the desktop app each implement this, and nothing else of the session
// depends on where it runs. No Node or DOM module is imported here.
import type { Gpu } from '../../kernels/context.js';
import type { GpuReport } from '../engine/gpu-detect.js';
import type { WebSocketConstructor } from '../swarm/coordinator-client.js';
import type { ServerMessageOf } from '../swarm/protocol.js';
import type { RtcFactory } from './rtc.js';
import type { RunConfig } from '../run/config.js';
import type { Verdict } from '../engine/gpu-verdict.js';

/** Bytes by key ("states/…", "proofs/…"): files in Node, IndexedDB or memory in a browser. */
export interface PeerStorage {
  get(key: string): Promise<Uint8Array | undefined>;
  /** Replaces atomically: a crash mid-write leaves the previous value. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  /** Keys starting with `prefix`. */
  list(prefix: string): Promise<string[]>;
}

export type ChainInfo = NonNullable<ServerMessageOf<'welcome'>['chain']>;

/** The account this peer is paid at, and how it joins a run on chain (optional: without it, it trains unpaid). */
export interface PeerWallet {
  account: `0x${string}`;
  /** EIP-191 signature by the account (the coordinator checks a peer holds the account it names). */
  signMessage(message: string): Promise<`0x${string}`>;
  joinRun(chain: ChainInfo): Promise<void>;
}

export interface PeerHost {
  /** The GPU, its report and this run-independent verdict, detected once at start-up. */
  gpu(): Promise<{ gpu: Gpu; report: GpuReport; verdict: Verdict }>;
  WebSocket: WebSocketConstructor;
  rtc: RtcFactory;
  /** The bytes of the run's training text (a file in Node, a fetch in a browser). */
  loadCorpus(run: RunConfig): Promise<Uint8Array>;
  storage: PeerStorage;
  wallet?: PeerWallet;
  now(): number;
  log(line: string): void;
}
