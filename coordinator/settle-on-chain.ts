// A coordinator on chain, wired one way for every launcher (`npm run coordinator`, `npm start`):
// its verified work is settled per epoch by settlement.ts against the run's store, peers learn
// from `welcome` where the run lives on chain (to join it there), and once training is done a
// buyer's credential spend is checked and receipted there before the swarm answers it.
import type { Address } from 'viem';
import type { SwarmChain } from '../shared/chain/client.js';
import { parseRisk } from '../shared/ledger/risk.js';
import type { RunConfig } from '../shared/run/config.js';
import { chainInferenceDesk } from './inference-desk.js';
import type { RunStore } from './run-store.js';
import type { CoordinatorOptions } from './server.js';
import { Settlement } from './settlement.js';

export interface OnChainOptions {
  run: RunConfig;
  /** Signed by the coordinator role. */
  chain: SwarmChain;
  /** Where the run lives on chain. */
  at: { chainId: number; registry: Address; tokens: Address; runId: bigint };
  /** The coordinator's store: the ledger and epochs change with its commits. */
  store: RunStore;
  /** The risk weighting of late steps, e.g. exp:4 (see shared/ledger/risk.ts). */
  risk: string;
  /** Training steps per epoch (a root is posted at each boundary and at the end). */
  epochSteps: number;
  log: (line: string) => void;
}

export interface OnChain {
  /** What the Coordinator is built with. */
  options: Pick<CoordinatorOptions, 'store' | 'chain' | 'inference'>;
  /** Attach it to the Coordinator before any peer joins; `finish()` it once training is done. */
  settlement: Settlement;
  /** Say on chain where the coordinator listens (a wss:// URL), so volunteers find the run. */
  announce(url: string): Promise<void>;
}

export function settleOnChain(o: OnChainOptions): OnChain {
  const { chainId, registry, tokens, runId } = o.at;
  return {
    options: { store: o.store, chain: { chainId, registry, tokens, runId: runId.toString() }, inference: chainInferenceDesk(o.chain, runId) },
    settlement: new Settlement({ run: o.run, chain: o.chain, runId, risk: parseRisk(o.risk), epochSteps: o.epochSteps, store: o.store, log: o.log }),
    announce: async (url) => {
      await o.chain.announceCoordinator(runId, url);
      o.log(`announced on chain: run ${runId}'s coordinator is at ${url}`);
    },
  };
}
