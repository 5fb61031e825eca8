// Under the header, on every page: what this machine does now and why, its speed, what it earned and
// the run's time left (renderer/glance.ts). Redrawn every second, so a value that stopped coming
// greys and says its age.
import { useEffect, useState } from 'react';
import { useShallow } from 'zustand/shallow';
import { ago } from './format.js';
import { type Reading, glance } from './glance.js';
import { useDashboard } from './store.js';
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

export function GlanceBar() {
  const { training, policy } = useDashboard(useShallow((s) => ({ training: s.training, policy: s.policy })));
  const { runId, account } = useWallet();
  const now = useNow(1000);
  const g = glance(training, policy, { paid: runId !== undefined, ...(account && { account }) }, now);
  return (
    <section className="glance" aria-label="at a glance">
      <p className="glance-doing">
        <span className={`pill ${g.word}`} data-testid="header-status">
          {g.word}
        </span>{' '}
        <span role="status" data-testid="header-doing">
          {g.doing}
        </span>
      </p>
      <Item label="Speed" reading={g.speed} testId="header-speed" />
      <Item label="Earned" reading={g.earned} testId="header-earned" />
      <Item label="Run" reading={g.run} testId="header-run" />
    </section>
  );
}
