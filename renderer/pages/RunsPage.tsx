// The runs of this dashboard's network, as its run registry lists them: what each trains, how far it
// is, who contributes, where its coordinator is and its training text. Read from the chain; a list
// the chain stopped answering for says since when. The one thing asked of a coordinator is its
// run's model spec (/run.json), kept only if it hashes to the run's modelHash on chain, to say
// whether this machine's GPU can hold a stage of it. Another run that takes volunteers can be
// joined: the host leaves this one gracefully first (a tab then reloads with ?run=ID, the desktop
// app's main process reloads its pages onto the run and keeps the choice).
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { type FoundRun, listRuns, unjoinable } from '../../shared/chain/find-run.js';
import { stageFit } from '../../shared/run/stage-fit.js';
import { fetchRunSpec } from '../../shared/swarm/run-spec-client.js';
import { POLL_MS } from '../chain-queries.js';
import { Card, Empty, TableHead } from '../components.js';
import { clock, sentence, tokenAmount } from '../format.js';
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

/** How a row may be joined: the host's switch (absent until the page knows its host), and the run being left for another, if one is. */
interface Joining {
  network: string;
  current?: bigint;
  leaving?: bigint;
  join?(runId: bigint): void;
}

/** A Join button, or why the run cannot be joined; nothing for this machine's own run, or before the page knows its host. */
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

/** Whether this machine's GPU can hold a stage of the run, from the spec its coordinator serves; never blank. */
function FitCell({ r }: { r: FoundRun }) {
  const report = useDashboard((s) => s.training.gpu?.report);
  const coordinator = r.listing.coordinator;
  const modelHash = r.run.modelHash;
  // A spec that hashes to the run's modelHash cannot change: fetched once, never refreshed.
  const spec = useQuery({
    queryKey: ['run-spec', coordinator, modelHash],
    enabled: !!coordinator,
    retry: 1,
    staleTime: Number.POSITIVE_INFINITY,
    queryFn: () => fetchRunSpec(coordinator, modelHash),
  });
  const cell = (className: string, text: string) => (
    <td className={className} data-testid={`fit-${r.run.runId}`}>
      {text}
    </td>
  );
  if (!coordinator) return cell('muted', 'No coordinator to ask yet');
  // Muted: a finished run's coordinator is gone as a rule, and what went wrong is in the words.
  if (spec.isError) return cell('muted', sentence(spec.error.message.split('\n')[0]));
  if (!report) return cell('muted', 'GPU not measured yet');
  if (!spec.data) return cell('muted', 'checking…');
  const fit = stageFit(report, spec.data);
  return cell(fit.ok ? 'ok' : 'bad', fit.text);
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
      <td>{tokenAmount(run.stake)} ETH</td>
      <td>{run.designerBps / 100} %</td>
      <td>
        <code>{listing.coordinator || 'not announced'}</code>
      </td>
      <td>{corpus(listing)}</td>
      <td>
        <code title={run.modelHash}>{run.modelHash.slice(0, 10)}…</code>
      </td>
      <FitCell r={r} />
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
  const asOf = runs.dataUpdatedAt ? clock(runs.dataUpdatedAt) : undefined;
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
            <TableHead columns={['Run', 'State', 'Epochs', 'Contributors', 'Stake', 'Designer share', 'Coordinator', 'Training text', 'Model', 'This GPU', 'Join']} />
            <tbody>
              {runs.data.map((r) => (
                <RunRow key={r.run.runId.toString()} r={r} mine={r.run.runId === runId} j={j} />
              ))}
            </tbody>
          </table>
        </section>
      )}
    </Card>
  );
}
