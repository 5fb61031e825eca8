// Under the header, on every page: what this machine does now and why, its speed, what it earned and
// the run's time left (renderer/glance.ts), and in a tab the one button that starts or stops
// training. Redrawn every second, so a value that stopped coming greys and says its age.
import { useEffect, useState } from 'react';
import { useShallow } from 'zustand/shallow';
import { ago } from './format.js';
import { type Glance, type Reading, glance } from './glance.js';
import { act, useDashboard } from './store.js';
import { useWallet } from './wallet/context.js';

function useNow(everyMs: number): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(timer);
  }, [everyMs]);
  return now;
}

function Item({ label, reading, testId }: { label: string; reading?: Reading; testId: string }) {
  if (!reading) return null;
  const stale = reading.staleFor !== undefined;
  return (
    <div className="glance-item">
      <span className="stat-label">{label}</span>{' '}
      <span className={stale ? 'stale' : reading.warn ? 'warn' : undefined} data-testid={testId} data-stale={stale || undefined}>
        {reading.text}
        {stale && ` (${ago(reading.staleFor!)})`}
      </span>
    </div>
  );
}

/** A tab's one Start/Stop: whether this browser trains at all (the policies decide when). */
function ChoiceButton({ yes }: { yes: boolean | undefined }) {
  const set = useDashboard((s) => s.host?.trainChoice?.set);
  if (!set) return null;
  return (
    <button type="button" data-testid="train-here" onClick={() => act(yes ? 'stop training' : 'train', () => set(!yes))}>
      {yes ? 'Stop training here' : 'Train with this GPU'}
    </button>
  );
}

/** The glance as of now, redrawn every second (a page showing the same values greys them alike). */
export function useGlance(): Glance {
  const { training, policy, choice } = useDashboard(useShallow((s) => ({ training: s.training, policy: s.policy, choice: s.trainChoice })));
  const { runId, account } = useWallet();
  const now = useNow(1000);
  return glance({ training, policy, payee: { paid: runId !== undefined, ...(account && { account }) }, ...(choice && { choice }) }, now);
}

export function GlanceBar() {
  const g = useGlance();
  const choice = useDashboard((s) => s.trainChoice);
  return (
    <section className="glance" aria-label="at a glance">
      <p className="glance-doing">
        <span className={`pill ${g.word}`} data-testid="header-status">
          {g.word}
        </span>{' '}
        <span role="status" data-testid="header-doing">
          {g.doing}
        </span>{' '}
        {choice && <ChoiceButton yes={choice.yes} />}
      </p>
      <Item label="Speed" reading={g.speed} testId="header-speed" />
      <Item label="Earned" reading={g.earned} testId="header-earned" />
      <Item label="Run" reading={g.run} testId="header-run" />
    </section>
  );
}
