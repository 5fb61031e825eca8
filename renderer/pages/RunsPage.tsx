// The runs of this dashboard's network, as its run registry lists them: what each trains, how far it
// is, who contributes, where its coordinator is and its training text. Read from the chain, never
// from a coordinator; a list the chain stopped answering for says since when. A tab may join another
// run that takes volunteers (its host leaves this one gracefully first); the desktop app may not.
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { formatEther } from 'viem';
import { type FoundRun, listRuns, unjoinable } from '../../shared/chain/find-run.js';
import { POLL_MS } from '../chain-queries.js';
import { Card, Empty, TableHead } from '../components.js';
import { act, useDashboard } from '../store.js';
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

/** How a row may be joined: the host's switch (absent: it cannot switch), and the run being left for another, if one is. */
interface Joining {
  network: string;
  current?: bigint;
  leaving?: bigint;
  join?(runId: bigint): void;
}

const sentence = (s: string): string => `${s[0].toUpperCase()}${s.slice(1)}.`;

/** A Join button, or why the run cannot be joined; nothing for this machine's own run or a host that cannot switch. */
function JoinCell({ r, mine, j }: { r: FoundRun; mine: boolean; j: Joining }) {
  const id = r.run.runId;
  const why = mine ? undefined : unjoinable(id, r, j.network);
  if (why) return <td className="muted">{sentence(why)}</td>;
  if (mine || !j.join) return <td />;
  const join = j.join;
  return (
    <td>
      <button type="button" data-testid={`join-${id}`} disabled={j.leaving !== undefined} onClick={() => join(id)}>
        {j.leaving === id ? `Leaving ${j.current === undefined ? 'this run' : `run ${j.current}`}…` : 'Join'}
      </button>
    </td>
  );
}

function RunRow({ r, mine, j }: { r: FoundRun; mine: boolean; j: Joining }) {
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
      <JoinCell r={r} mine={mine} j={j} />
    </tr>
  );
}

/** The host's switch to another run, and which run it is leaving for while it leaves. */
function useJoining(current: bigint | undefined): Joining {
  const host = useDashboard((s) => s.host);
  const [leaving, setLeaving] = useState<bigint>();
  const switchRun = host?.switchRun;
  const join =
    switchRun &&
    ((runId: bigint) => {
      setLeaving(runId);
      // On success the page is already loading the other run: the buttons stay disabled until it has.
      void act(`join run ${runId}`, () => switchRun(runId.toString()).then(() => true)).then((done) => {
        if (!done) setLeaving(undefined);
      });
    });
  return { network: host?.config.network?.name ?? 'this network', current, leaving, join };
}

export function RunsPage() {
  const { reader, runId } = useWallet();
  const runs = useQuery({ queryKey: ['runs'], enabled: !!reader, refetchInterval: POLL_MS, queryFn: () => listRuns(reader!) });
  const j = useJoining(runId);
  const desktop = useDashboard((s) => s.host?.kind === 'desktop');
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
        // A wide table scrolls on its own on a narrow screen; the page does not.
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a region that scrolls must be reachable by keyboard
        <section className="table-scroll" aria-label="runs, scrolling sideways" tabIndex={0}>
          <table data-testid="runs-table" className={runs.isError ? 'stale' : undefined}>
            <TableHead columns={['Run', 'State', 'Epochs', 'Contributors', 'Stake', 'Designer share', 'Coordinator', 'Training text', 'Model', 'Join']} />
            <tbody>
              {runs.data.map((r) => (
                <RunRow key={r.run.runId.toString()} r={r} mine={r.run.runId === runId} j={j} />
              ))}
            </tbody>
          </table>
        </section>
      )}
      {desktop && <p className="muted">The desktop app joins the run of its configuration, so it switches to no other run from here.</p>}
    </Card>
  );
}
