// The chain reads more than one page shows, polled with react-query: one query (and one cache key)
// for each, so the pages that show it ask the same question and share the answer.
import { useQuery } from '@tanstack/react-query';
import { holdings } from '../shared/chain/owner.js';
import { useWallet } from './wallet/context.js';

/** How often a page's chain and storage reads refresh. */
export const POLL_MS = 2000;

/** The connected account's holdings in the run (credentials, re-issued ones, ownership, proceeds). */
export function useHoldings() {
  const { reader, account, runId } = useWallet();
  return useQuery({
    queryKey: ['holdings', account, runId?.toString()],
    enabled: !!reader && !!account && runId !== undefined,
    refetchInterval: POLL_MS,
    queryFn: () => holdings(reader!, runId!, account!),
  });
}
