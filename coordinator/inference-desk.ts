// The chain side of serving a query: a spend must exist on chain for this run, commit to this
// prompt and not be served yet; the answer's hash becomes its receipt.
import { zeroAddress } from 'viem';
import { type SwarmChain, promptHash } from '../shared/chain/client.js';
import type { InferenceDesk } from './server.js';

export function chainInferenceDesk(chain: SwarmChain, runId: bigint, temperature = 0.8): InferenceDesk {
  return {
    temperature,
    async check(spendId, prompt) {
      const s = await chain.spend(BigInt(spendId));
      if (s.buyer === zeroAddress) return `spend ${spendId} does not exist on chain`;
      if (s.runId !== runId) return `spend ${spendId} paid for run ${s.runId}; this swarm serves run ${runId}`;
      if (s.served) return `spend ${spendId} was already served`;
      if (s.promptHash !== promptHash(prompt)) return `the prompt does not match the hash spend ${spendId} committed to on chain`;
      return undefined;
    },
    async served(spendId, answerHash) {
      await chain.markServed(BigInt(spendId), answerHash);
    },
  };
}
