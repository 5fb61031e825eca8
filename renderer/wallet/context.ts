// The wallet as the dashboard's pages see it, whichever host connected it: who the user is, a
// read-only view of the run's contracts, and (once connected) the same typed client the command
// line's `wallet` and `buy` use (shared/chain/client.ts).
import { createContext, useContext } from 'react';
import type { Address } from 'viem';
import type { SwarmChain } from '../../shared/chain/client.js';

export interface WalletView {
  /** The run this dashboard follows (absent: the swarm settles on no chain). */
  runId?: bigint;
  /** Reads only. */
  reader?: SwarmChain;
  account?: Address;
  /** Reads and writes as `account`. */
  chain?: SwarmChain;
  /** What to show where the user connects or sees their account. */
  label: string;
}

export const WalletContext = createContext<WalletView>({ label: 'no chain configured: training is unpaid' });

export const useWallet = (): WalletView => useContext(WalletContext);
