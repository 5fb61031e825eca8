// What this machine's peer is doing and why: state, run, stage, live loss, speed, bytes, neighbours
// and the swarm's stage topology; pause, resume and snooze.
import { CartesianGrid, Legend, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { SNOOZE_HOURS } from '../../shared/policy/index.js';
import { Card, Empty, Stat } from '../components.js';
import { bytes, percent, time } from '../format.js';
import { act, useDashboard } from '../store.js';
import { topology } from '../training-state.js';

function Status() {
  const { training: t, policy, host } = useDashboard();
  const d = policy?.decision;
  const paused = d?.action === 'pause';
  return (
    <Card title="Status" id="status">
      <p className={`status status-${paused ? 'paused' : t.phase}`} role="status" aria-live="polite" data-testid="status">
        {paused ? (
          <strong>{d.reason}</strong>
        ) : (
          <>
            <strong>{t.phase}</strong>: {t.why}
          </>
        )}
      </p>
      {d && !paused && <p className="muted">Policy: {d.reason}</p>}
      {d?.until && d.until < Number.MAX_SAFE_INTEGER && <p className="muted">Until {time(d.until)}</p>}
      {t.done && <p className="muted">Last session ended: {t.done}</p>}
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
        {SNOOZE_HOURS.map((h) => (
          <button type="button" key={h} onClick={() => act('snooze', () => host!.snooze(h))}>
            Snooze {h} h
          </button>
        ))}
      </div>
    </Card>
  );
}

function LossChart() {
  const loss = useDashboard((s) => s.training.loss);
  if (loss.length < 2) return <Empty>The loss chart appears once the swarm has committed two steps.</Empty>;
  const train = loss.flatMap((p) => (p.loss === undefined ? [] : [p.loss]));
  return (
    <figure aria-label="training and validation loss by step" data-testid="loss-chart" data-points={train.length} data-first-loss={train[0]} data-last-loss={train.at(-1)}>
      <ResponsiveContainer width="100%" height={260}>
        <LineChart data={loss} margin={{ top: 8, right: 16, bottom: 8, left: 0 }}>
          <CartesianGrid stroke="#2a3040" />
          <XAxis dataKey="step" stroke="#9aa4b8" />
          <YAxis stroke="#9aa4b8" domain={['auto', 'auto']} tickFormatter={(v: number) => v.toFixed(2)} />
          <Tooltip contentStyle={{ background: '#161a24', border: '1px solid #2a3040' }} />
          <Legend />
          <Line type="monotone" dataKey="loss" name="training loss" stroke="#6cf" dot={false} isAnimationActive={false} connectNulls />
          <Line type="monotone" dataKey="val" name="validation loss" stroke="#fc6" dot isAnimationActive={false} connectNulls />
        </LineChart>
      </ResponsiveContainer>
    </figure>
  );
}

function Topology() {
  const t = useDashboard((s) => s.training);
  const stages = topology(t);
  if (!stages.length) return <Empty>Not placed in the swarm yet.</Empty>;
  return (
    <ol className="topology" aria-label="stages of the swarm">
      {stages.map((s) => (
        <li key={s.stage}>
          <h3>Stage {s.stage}</h3>
          {s.peers.length === 0 && <p className="bad">no peer</p>}
          <ul>
            {s.peers.map((p) => (
              <li key={p.peerId} className={p.self ? 'self' : p.linked ? 'linked' : ''}>
                {p.name} <span className="muted">{p.self ? '(this machine)' : p.linked ? '(linked)' : ''}</span>
              </li>
            ))}
          </ul>
        </li>
      ))}
    </ol>
  );
}

export function TrainingPage() {
  const t = useDashboard((s) => s.training);
  return (
    <>
      <Status />
      <Card title="This peer" id="peer">
        <div className="stats">
          <Stat label="Run" value={t.runId ?? '–'} />
          <Stat label="Stage" value={t.stage !== undefined ? `${t.stage} of ${t.stages}` : '–'} />
          <Stat label="Swarm step" value={t.swarm ? `${t.swarm.step} / ${t.swarm.steps}` : '–'} />
          <Stat label="Tokens/s" value={t.tokensPerSec.toFixed(0)} />
          <Stat label="GPU busy" value={percent(t.busyFraction, 0)} />
          <Stat label="Sent" value={bytes(t.bytesSent)} />
          <Stat label="Saved by compression" value={bytes(t.bytesSaved)} />
          <Stat label="Microbatches credited" value={t.creditedMicrobatches} testId="credited" />
        </div>
        {t.swarm && <p className="muted">Swarm: {t.swarm.reason}</p>}
      </Card>
      <Card title="Loss" id="loss">
        <LossChart />
      </Card>
      <Card title="Swarm topology" id="topology">
        <Topology />
      </Card>
      <Card title="Log" id="log">
        {/* biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling region must be reachable by keyboard (axe: scrollable-region-focusable) */}
        <pre className="log" role="log" aria-label="peer log" tabIndex={0}>
          {t.log.slice(-40).join('\n')}
        </pre>
      </Card>
    </>
  );
}
