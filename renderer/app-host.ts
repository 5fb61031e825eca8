// What the dashboard needs from the place it runs in. Two hosts: the desktop app (hosts/desktop.ts,
// over the preload bridge; the peer trains in the app's hidden window) and a browser tab
// (hosts/tab.ts; the peer trains in the tab). The dashboard sees nothing else of either.
import type { PeerStorage, PeerWallet } from '../shared/peer/host.js';
import type { AppConfig, DesktopBridge, DesktopWallet } from '../shared/app/bridge.js';

/** The policy controls and the peer's events, as the desktop bridge offers them (the tab implements them itself). */
type Controls = Pick<DesktopBridge, 'policy' | 'saveSettings' | 'snooze' | 'pause' | 'resume' | 'onPolicy' | 'onTrainerEvent'>;

/**
 * Whether this machine trains at all (a tab, where a buyer should not find itself training): asked
 * once and kept. `undefined`: not asked yet, and not training.
 */
export interface TrainChoice {
  current(): boolean | undefined;
  set(yes: boolean): Promise<void>;
  onChange(listener: (yes: boolean) => void): () => void;
}

export interface AppHost extends Controls {
  readonly kind: 'desktop' | 'tab';
  readonly config: AppConfig;
  /** Where this machine's peer keeps its states and settled proofs (read by the earnings page). */
  readonly storage: PeerStorage;
  /** The desktop app's own key (absent in a tab: it connects a wallet through RainbowKit). */
  readonly desktopWallet?: DesktopWallet;
  /** A tab's choice to train (absent in the desktop app, which trains by its policies alone). */
  readonly trainChoice?: TrainChoice;
  /**
   * Detect and benchmark a tab's GPU, in its worker: the dashboard asks once its first screen is
   * drawn, so that work does not compete with its start-up. (The desktop app's window detects its own.)
   */
  detectGpu?(): void;
  /** The tab's peer is paid at the wallet the user connects (the desktop app's at its own key). */
  setPayout(wallet: PeerWallet | undefined): void;
  /**
   * Leave this run gracefully and join run `runId` of the host's network instead; resolves once the
   * leave is done (the page then reloads onto the new run). A run that cannot be joined is refused.
   */
  switchRun(runId: string): Promise<void>;
  /**
   * Join runs of the network in `json` (a network file), or of the host's own network again
   * (undefined: the page's server's, or the desktop app's launch network). A file that is not a
   * network is refused with its reason, and nothing changes.
   */
  switchNetwork(json: string | undefined): Promise<void>;
}
