// The runs of this dashboard's network, as its run registry lists them: what each trains, how far it
// is, who contributes, where its coordinator is and its training text. Read from the chain, never
// from a coordinator; a list the chain stopped answering for says since when.
import { useQuery } from '@tanstack/react-query';
import { formatEther } from 'viem';
import { type FoundRun, listRuns } from '../../shared/chain/find-run.js';
import { POLL_MS } from '../chain-queries.js';
import { Card, Empty, TableHead } from '../components.js';
import { useWallet } from '../wallet/context.js';

const STATE_WORDS: Record<FoundRun['run']['state'], string> = {
  none: 'unknown',
  open: 'open: waiting for volunteers',
  training: 'training',
  trained: 'trained: serving buyers',
  abandoned: 'abandoned',
};

/** A listed text as its file name and the start of its SHA-256. */
const corpus = (l: FoundRun['listing']): string =>
  l.corpusUrl ? `${decodeURIComponent(l.corpusUrl.split('/').pop() ?? '')} (sha256 ${l.corpusHash.slice(2, 10)}…)` : 'not listed';

function RunRow({ r, mine }: { r: FoundRun; mine: boolean }) {
  const { run, listing } = r;
  return (
    <tr data-testid={`run-${run.runId}`}>
      <th scope="row">
        {run.runId.toString()}
        {mine && <span className="muted"> (this machine's)</span>}
      </th>
      <td>{STATE_WORDS[run.state]}</td>
      <td>{run.epochs.toString()} posted</td>
      <td>{run.providers.toString()}</td>
      <td>{formatEther(run.stake)} ETH</td>
      <td>{run.designerBps / 100} %</td>
      <td>
        <code>{listing.coordinator || 'not announced'}</code>
      </td>
      <td>{corpus(listing)}</td>
      <td>
        <code title={run.modelHash}>{run.modelHash.slice(0, 10)}…</code>
      </td>
    </tr>
  );
}

export function RunsPage() {
  const { reader, runId } = useWallet();
  const runs = useQuery({ queryKey: ['runs'], enabled: !!reader, refetchInterval: POLL_MS, queryFn: () => listRuns(reader!) });
  const asOf = runs.dataUpdatedAt ? new Date(runs.dataUpdatedAt).toLocaleTimeString() : undefined;
  return (
    <Card title="Runs on this network" id="runs">
      {!reader && <Empty>No chain is configured for this dashboard, so there are no runs to list.</Empty>}
      {runs.isError && (
        <p className="bad" role="status">
          The chain is not answering ({runs.error.message.split('\n')[0]}){asOf ? `: this list is as of ${asOf}.` : '.'}
        </p>
      )}
      {runs.data?.length === 0 && <Empty>No run has been opened on this network yet.</Empty>}
      {!!runs.data?.length && (
        <table data-testid="runs-table" className={runs.isError ? 'stale' : undefined}>
          <TableHead columns={['Run', 'State', 'Epochs', 'Contributors', 'Stake', 'Designer share', 'Coordinator', 'Training text', 'Model']} />
          <tbody>
            {runs.data.map((r) => (
              <RunRow key={r.run.runId.toString()} r={r} mine={r.run.runId === runId} />
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}
