// What this machine's peer is doing and why: state, run, stage, live loss, speed, bytes, neighbours
// and the swarm's stage topology (each link direct or relayed, and how much went through a relay);
// the policies' decision, pause, resume and snooze.
// Every part reads only what it shows from the store: a session event re-renders the parts it changes.
import { memo, useDeferredValue, useEffect, useState } from 'react';
import { useShallow } from 'zustand/shallow';
import { LineChart } from '../charts/Chart.js';
import { Card, Empty, SnoozeButtons, Stat } from '../components.js';
import { bytes } from '../../shared/base/sizes.js';
import { ago, clock, percent, sentence, time } from '../format.js';
import { useGlance } from '../GlanceBar.js';
import { linkSentence, linkSummary, linksStale, peerNote } from '../link-summary.js';
import { act, useDashboard } from '../store.js';
import { type TrainingState, topology } from '../training-state.js';

/** The policies' decision and the user's controls; what the peer does is in the glance bar above every page. */
function Control() {
  const done = useDashboard((s) => s.training.done);
  const policy = useDashboard((s) => s.policy);
  const host = useDashboard((s) => s.host);
  const d = policy?.decision;
  return (
    <Card title="Control" id="control">
      {d && (
        <p className="muted" data-testid="policy">
          Policy: {sentence(d.reason)}
          {d.until && d.until < Number.MAX_SAFE_INTEGER && ` Until ${time(d.until)}.`}
        </p>
      )}
      {done && <p className="muted">Last session ended: {sentence(done)}</p>}
      <div className="row">
        {policy?.pausedUntil ? (
          <button type="button" onClick={() => act('resume', () => host!.resume())}>
            Resume
          </button>
        ) : (
          <button type="button" onClick={() => act('pause', () => host!.pause())}>
            Pause
          </button>
        )}
        <SnoozeButtons onSnooze={(h) => act('snooze', () => host!.snooze(h))} />
      </div>
    </Card>
  );
}

// The chart and the log are drawn behind the session's events: a store update renders at once,
// inside the worker's message; a deferred value is drawn after it, in slices that let input through.
function LossChart() {
  return <LossFigure loss={useDeferredValue(useDashboard((s) => s.training.loss))} />;
}

const LossFigure = memo(function LossFigure({ loss }: { loss: TrainingState['loss'] }) {
  if (loss.length < 2) return <Empty>The loss chart appears once the swarm has committed two steps.</Empty>;
  const train = loss.flatMap((p) => (p.loss === undefined ? [] : [p.loss]));
  const val = loss.filter((p) => p.val !== undefined).length;
  return (
    <figure
      aria-label="training and validation loss by step"
      data-testid="loss-chart"
      data-points={train.length}
      data-val-points={val}
      data-first-loss={train[0]}
      data-last-loss={train.at(-1)}
    >
      <LineChart
        height={280}
        xLabel="swarm step"
        yLabel="loss (nats per character)"
        yFormat={(v) => v.toFixed(2)}
        series={[
          { name: 'training loss', color: '#6cf', points: loss.flatMap((p) => (p.loss === undefined ? [] : [{ x: p.step, y: p.loss }])) },
          { name: 'validation loss', color: '#fc6', dots: true, points: loss.flatMap((p) => (p.val === undefined ? [] : [{ x: p.step, y: p.val }])) },
        ]}
      />
    </figure>
  );
});

/** Whether a reading taken at `at` is too old to stand for now, checked every second (no event comes when readings stop). */
function useStale(at: number | undefined): boolean {
  const [stale, setStale] = useState(false);
  useEffect(() => {
    // Set only when it flips (React skips an unchanged state): the topology is not drawn again every second.
    const check = () => setStale(at !== undefined && linksStale(at, Date.now()));
    check();
    const timer = setInterval(check, 1000);
    return () => clearInterval(timer);
  }, [at]);
  return stale;
}

function Topology() {
  const t = useDashboard(
    useShallow(({ training: t }) => ({ stages: t.stages, peers: t.peers, peerId: t.peerId, connected: t.connected, paths: t.paths, linkReadings: t.linkReadings })),
  );
  const stale = useStale(t.linkReadings?.at);
  const stages = topology(t);
  if (!stages.length) return <Empty>Not placed in the swarm yet.</Empty>;
  const summary = linkSummary(t);
  const asOf = stale && t.linkReadings ? `as of ${clock(t.linkReadings.at)}` : undefined;
  return (
    <>
      <ol className="topology" aria-label="stages of the swarm">
        {stages.map((s) => (
          <li key={s.stage}>
            <h3>Stage {s.stage + 1}</h3>
            {s.peers.length === 0 && <p className="bad">no peer</p>}
            <ul>
              {s.peers.map((p) => (
                <li key={p.peerId} className={p.self ? 'self' : p.linked ? 'linked' : ''}>
                  {p.name}{' '}
                  <span className={`muted${asOf && p.bytes !== undefined ? ' stale' : ''}`} title={p.bytes !== undefined ? asOf : undefined}>
                    {peerNote(p)}
                  </span>
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ol>
      {summary && (
        <p className={`links-summary${asOf ? ' stale' : ''}`} data-testid="link-summary">
          {linkSentence(summary)}
          {asOf && ` (${asOf})`}
        </p>
      )}
    </>
  );
}

function PeerStats() {
  const t = useDashboard(
    useShallow(({ training: t }) => ({
      runId: t.runId,
      stage: t.stage,
      stages: t.stages,
      swarm: t.swarm,
      tokensPerSec: t.tokensPerSec,
      busyFraction: t.busyFraction,
      bytesSent: t.bytesSent,
      bytesSaved: t.bytesSaved,
      creditedMicrobatches: t.creditedMicrobatches,
    })),
  );
  // The speed as the glance bar judges it: an old reading is shown as old here too.
  const age = useGlance().speed?.staleFor;
  const stale = age === undefined ? undefined : ago(age);
  return (
    <>
      <div className="stats">
        <Stat label="Run" value={t.runId ?? '–'} />
        <Stat label="Stage" value={t.stage !== undefined ? `${t.stage + 1} of ${t.stages}` : '–'} />
        <Stat label="Swarm step" value={t.swarm ? `${t.swarm.step} / ${t.swarm.steps}` : '–'} />
        <Stat label="Tokens/s" value={t.tokensPerSec.toFixed(0)} stale={stale} />
        <Stat label="GPU busy" value={percent(t.busyFraction, 0)} stale={stale} />
        <Stat label="Sent" value={bytes(t.bytesSent)} />
        <Stat label="Saved by compression" value={bytes(t.bytesSaved)} />
        <Stat label="Microbatches credited" value={t.creditedMicrobatches} testId="credited" />
      </div>
      {t.swarm && <p className="muted">Swarm: {t.swarm.reason}</p>}
    </>
  );
}

function PeerLog() {
  return <LogLines log={useDeferredValue(useDashboard((s) => s.training.log))} />;
}

const LogLines = memo(function LogLines({ log }: { log: string[] }) {
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard (axe: scrollable-region-focusable)
    <pre className="log" role="log" aria-label="peer log" tabIndex={0}>
      {log.slice(-40).join('\n')}
    </pre>
  );
});

const CARDS = [
  { id: 'peer', title: 'This peer', view: PeerStats },
  { id: 'loss', title: 'Loss', view: LossChart },
  { id: 'topology', title: 'Swarm topology', view: Topology },
  { id: 'log', title: 'Log', view: PeerLog },
];

export function TrainingPage() {
  return (
    <>
      <Control />
      {CARDS.map(({ id, title, view: View }) => (
        <Card key={id} title={title} id={id}>
          <View />
        </Card>
      ))}
    </>
  );
}
