// The API the desktop app's preload scripts expose to its pages (electron/preload.ts on the
// dashboard window as `window.swarmDesktop`, electron/trainer-preload.ts on the hidden training
// window as `window.swarmTrainer`). Types only: the channels and payload schemas that carry these
// calls are electron/ipc-contract.ts, checked on both sides. One method per action; no raw IPC.
import type { Network } from '../chain/network.js';
import type { SessionEvents } from '../peer/session-events.js';
import type { SnoozeHours } from '../policy/snooze.js';
import type { PolicySettings, PolicyView, TrainerCommand } from '../policy/types.js';

type Hex = `0x${string}`;
type Address = `0x${string}`;

/** One event of the peer session, as it crosses from the training window to the dashboard. */
export type TrainerEvent = { [K in keyof SessionEvents]: { type: K; data: SessionEvents[K] } }[keyof SessionEvents];

/** Where this machine's peer and wallet connect. */
export interface AppConfig {
  /** The coordinator's WebSocket URL; absent when there is no run to join now (`problem` says why). */
  coordinator?: string;
  /** Why there is no run to join (the desktop app found none on its network): a sentence for the user. */
  problem?: string;
  /** Where the training text is fetched from (default: the default run's text shipped with the pages). */
  dataUrl?: string;
  /** The chain the run settles on; absent: training is unpaid. */
  chain?: {
    rpcUrl: string;
    chainId: number;
    registry: Hex;
    tokens: Hex;
    runId: string;
  };
  /**
   * Local chains only: the node's own unlocked test accounts, which a tab offers as clearly labelled
   * "local dev account" wallets; the node signs for them, so no key reaches a page.
   */
  localAccounts?: Address[];
  /** Local chains only, for the desktop app: a test key it takes gas money from (never served to a tab). */
  localKeys?: Hex[];
  /** WalletConnect's projectId: without one, no WalletConnect. */
  walletConnectProjectId?: string;
  /** The network whose runs the dashboard lists and may switch to (absent: it follows its coordinator's run only). */
  network?: Network;
}

/**
 * What a dashboard's local server hands its page (/config.json): a coordinator to join, or a
 * network to find the run on (`runId`, else the best one taking volunteers: shared/app/join-run.ts).
 */
export type SiteConfig = Omit<AppConfig, 'coordinator'> & { coordinator?: string; runId?: string };

/** A transaction for the desktop wallet to sign, numbers as decimal strings (IPC does not carry bigint). */
export interface TransactionRequestJson {
  chainId: number;
  to: Hex;
  data?: Hex;
  value?: string;
  nonce: number;
  gas: string;
  maxFeePerGas: string;
  maxPriorityFeePerGas: string;
}

/** The desktop app's local key: created on first run, encrypted with the OS keychain, held by the main process. */
export interface DesktopWallet {
  address(): Promise<Hex>;
  signTransaction(tx: TransactionRequestJson): Promise<Hex>;
  signMessage(message: string): Promise<Hex>;
  /** EIP-712 data as JSON with bigints as decimal strings. */
  signTypedData(json: string): Promise<Hex>;
}

export interface DesktopBridge {
  config(): Promise<AppConfig>;
  policy(): Promise<PolicyView>;
  saveSettings(settings: PolicySettings): Promise<PolicyView>;
  snooze(hours: SnoozeHours): Promise<PolicyView>;
  pause(): Promise<PolicyView>;
  resume(): Promise<PolicyView>;
  onPolicy(listener: (view: PolicyView) => void): () => void;
  onTrainerEvent(listener: (event: TrainerEvent) => void): () => void;
  /** Leave this run gracefully and join run `runId` of the app's network; refused, changing nothing, if that run cannot be joined. */
  switchRun(runId: string): Promise<void>;
  /** Join runs of the network in `json` (a network file), or of the app's default network (undefined); refused, changing nothing, if it has no run to join. */
  switchNetwork(json: string | undefined): Promise<void>;
  wallet: DesktopWallet;
}

/** What the hidden training window may do: report its session's events and follow the main process's commands (checked by its preload). */
export interface TrainerBridge {
  config(): Promise<AppConfig>;
  report(event: TrainerEvent): void;
  onCommand(listener: (command: TrainerCommand) => void): () => void;
  wallet: DesktopWallet;
}
