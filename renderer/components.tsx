// Small pieces every page uses.
import type { ReactNode } from 'react';
import { SNOOZE_HOURS, type SnoozeHours } from '../shared/policy/index.js';

/** A labelled value; `stale` (its age, "as of 2 min ago") greys a value that stopped updating. */
export function Stat({ label, value, hint, testId, stale }: { label: string; value: ReactNode; hint?: string; testId?: string; stale?: string }) {
  return (
    <div className="stat">
      <div className="stat-label">{label}</div>
      <div className={stale ? 'stat-value stale' : 'stat-value'} title={hint} data-testid={testId} data-stale={stale ? true : undefined}>
        {value}
      </div>
      {stale && <div className="stat-age muted">{stale}</div>}
    </div>
  );
}

export function Card({ title, children, id }: { title: string; children: ReactNode; id?: string }) {
  return (
    <section className="card" aria-labelledby={id && `${id}-title`}>
      <h2 id={id && `${id}-title`}>{title}</h2>
      {children}
    </section>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** A table's header row; `srOnly` columns are read out but not shown (a column of buttons). */
export function TableHead({ columns, srOnly = [] }: { columns: readonly string[]; srOnly?: readonly string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c) => (
          <th scope="col" key={c}>
            {srOnly.includes(c) ? <span className="sr-only">{c}</span> : c}
          </th>
        ))}
      </tr>
    </thead>
  );
}

/** One button per snooze the policies offer (the tray offers the same). */
export function SnoozeButtons({ onSnooze }: { onSnooze(hours: SnoozeHours): void }) {
  return SNOOZE_HOURS.map((h) => (
    <button type="button" key={h} onClick={() => onSnooze(h)}>
      Snooze {h} h
    </button>
  ));
}
