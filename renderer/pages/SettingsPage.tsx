// When this machine may train: idle minutes, games, fullscreen, battery, schedule, temperature and
// power limits, GPU usage, start at login, snooze. A bad value is told next to its field, in the
// page's words, and nothing is saved.
import { type FormEvent, useEffect, useState } from 'react';
import type { PolicySettings, ScheduleWindow } from '../../shared/policy/types.js';
import type { AppHost } from '../app-host.js';
import { Card, Empty, SnoozeButtons } from '../components.js';
import { sentence } from '../format.js';
import { type Field, LABELS, problemSentence, settingsProblems } from '../form-checks.js';
import { act, useDashboard } from '../store.js';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

/** The problems of the last save that was refused, by field: each told next to its own field. */
type Problems = Record<string, string>;

function NumberField({
  field,
  value,
  onChange,
  min,
  max,
  problems,
  disabled,
}: {
  field: Field;
  value: number;
  onChange(v: number): void;
  min: number;
  max: number;
  problems: Problems;
  disabled?: boolean;
}) {
  const problem = problems[field];
  const id = `problem-${field.replace('.', '-')}`;
  return (
    <>
      <label className="block">
        {LABELS[field]}{' '}
        <input
          type="number"
          min={min}
          max={max}
          value={Number.isNaN(value) ? '' : value}
          disabled={disabled}
          aria-invalid={problem ? true : undefined}
          aria-describedby={problem ? id : undefined}
          onChange={(e) => onChange(e.target.valueAsNumber)}
        />
      </label>
      {problem && (
        <span className="bad field-problem" id={id}>
          {sentence(problem)}
        </span>
      )}
    </>
  );
}

function Schedule({ windows, onChange }: { windows: ScheduleWindow[]; onChange(w: ScheduleWindow[]): void }) {
  const set = (i: number, w: Partial<ScheduleWindow>) => onChange(windows.map((x, j) => (j === i ? { ...x, ...w } : x)));
  return (
    <fieldset>
      <legend>Schedule {windows.length === 0 && '(any time)'}</legend>
      {windows.map((w, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: windows have no identity but their place
        <fieldset className="row" key={i}>
          <legend className="sr-only">window {i + 1}</legend>
          {DAYS.map((d, day) => (
            <label key={d} className="day">
              <input
                type="checkbox"
                checked={w.days.includes(day)}
                onChange={(e) => set(i, { days: e.target.checked ? [...w.days, day].sort((a, b) => a - b) : w.days.filter((x) => x !== day) })}
              />
              {d}
            </label>
          ))}
          <label>
            from <input type="time" value={w.from} onChange={(e) => set(i, { from: e.target.value })} />
          </label>
          <label>
            to <input type="time" value={w.to} onChange={(e) => set(i, { to: e.target.value })} />
          </label>
          <button type="button" onClick={() => onChange(windows.filter((_, j) => j !== i))}>
            Remove window {i + 1}
          </button>
        </fieldset>
      ))}
      <button type="button" onClick={() => onChange([...windows, { days: [1, 2, 3, 4, 5], from: '09:00', to: '17:00' }])}>
        Add a window
      </button>
    </fieldset>
  );
}

/** A limit and the level it lets go at (hysteresis): the two numbers of one setting, 0 … max. */
function LimitPair<K extends string>({
  value,
  fields,
  max,
  problems,
  onChange,
}: {
  value: Record<K, number>;
  fields: Record<K, Field>;
  max: number;
  problems: Problems;
  onChange(v: Record<K, number>): void;
}) {
  return (Object.keys(fields) as K[]).map((key) => (
    <NumberField key={key} field={fields[key]} value={value[key]} min={0} max={max} problems={problems} onChange={(v) => onChange({ ...value, [key]: v })} />
  ));
}

interface SectionProps {
  s: PolicySettings;
  up(change: Partial<PolicySettings>): void;
  problems: Problems;
}

function WhenToTrain({ s, up, problems, tab }: SectionProps & { tab: boolean }) {
  const games = (text: string) =>
    text
      .split('\n')
      .map((g) => g.trim())
      .filter(Boolean);
  return (
    <Card title="When to train" id="when">
      <NumberField field="idleMinutes" value={s.idleMinutes} min={0} max={1440} problems={problems} disabled={tab} onChange={(idleMinutes) => up({ idleMinutes })} />
      {tab && <p className="muted">A browser tab cannot tell whether you are using the machine, so it trains while it is open. The desktop app waits for these idle minutes.</p>}
      <label className="block">
        Games that pause training (one per line)
        <textarea rows={5} value={s.games.join('\n')} onChange={(e) => up({ games: games(e.target.value) })} />
      </label>
      <label className="block">
        <input type="checkbox" checked={s.pauseOnFullscreen} onChange={(e) => up({ pauseOnFullscreen: e.target.checked })} /> Pause while an app is fullscreen
      </label>
      <Schedule windows={s.schedule} onChange={(schedule) => up({ schedule })} />
    </Card>
  );
}

function Battery({ s, up, problems }: SectionProps) {
  return (
    <Card title="Battery" id="battery">
      <label className="block">
        <input type="checkbox" checked={s.battery.pauseOnBattery} onChange={(e) => up({ battery: { ...s.battery, pauseOnBattery: e.target.checked } })} /> Pause on battery power
      </label>
      <NumberField
        field="battery.minPercent"
        value={s.battery.minPercent}
        min={0}
        max={100}
        problems={problems}
        onChange={(minPercent) => up({ battery: { ...s.battery, minPercent } })}
      />
    </Card>
  );
}

function Limits({ s, up, problems, desktop }: SectionProps & { desktop: boolean }) {
  return (
    <Card title="Limits" id="limits">
      <LimitPair
        value={s.temperature}
        max={120}
        fields={{ pauseAtC: 'temperature.pauseAtC', resumeBelowC: 'temperature.resumeBelowC' }}
        problems={problems}
        onChange={(temperature) => up({ temperature })}
      />
      <LimitPair
        value={s.power}
        max={2000}
        fields={{ throttleAtW: 'power.throttleAtW', resumeBelowW: 'power.resumeBelowW' }}
        problems={problems}
        onChange={(power) => up({ power })}
      />
      <NumberField field="gpuUsage" value={Math.round(s.gpuUsage * 100)} min={10} max={100} problems={problems} onChange={(v) => up({ gpuUsage: v / 100 })} />
      {desktop && (
        <label className="block">
          <input type="checkbox" checked={s.startAtLogin} onChange={(e) => up({ startAtLogin: e.target.checked })} /> Start when I log in
        </label>
      )}
    </Card>
  );
}

/**
 * The settings being edited: loaded once from the policies, checked here in the fields' own words
 * (a refused save changes nothing), then saved through the host, which checks them again.
 */
function useDraft(loaded: PolicySettings | undefined, host: AppHost | undefined) {
  const [s, setS] = useState<PolicySettings>();
  const [saved, setSaved] = useState(false);
  // After a refused save, each change is checked at once: a problem goes away as it is fixed.
  const [checking, setChecking] = useState(false);
  useEffect(() => {
    if (loaded && !s) setS(loaded);
  }, [loaded, s]);
  const problems = checking && s ? settingsProblems(s) : {};
  const up = (change: Partial<PolicySettings>) => {
    setS((current) => current && { ...current, ...change });
    setSaved(false);
  };
  const save = (e: FormEvent) => {
    e.preventDefault();
    if (!s || !host) return;
    if (Object.keys(settingsProblems(s)).length) return setChecking(true);
    void act('save settings', () => host.saveSettings(s)).then((v) => {
      if (!v) return;
      setS(v.settings);
      setSaved(true);
      setChecking(false);
    });
  };
  return { s, saved, problems, up, save };
}

/** Which network this dashboard finds runs on, why it found none to join, and another network pasted in (a network file). */
function NetworkCard({ host }: { host: AppHost }) {
  const [json, setJson] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const { network, problem } = host.config;
  const use = (value: string | undefined) => {
    setError(undefined);
    setBusy(true);
    // On success the page reloads onto the new network's run; a refusal changes nothing.
    host.switchNetwork(value).catch((e: Error) => {
      setError(sentence(e.message));
      setBusy(false);
    });
  };
  const own = host.kind === 'desktop' ? "Use the app's own network" : "Use this page's network";
  return (
    <Card title="Network" id="network">
      <p>{network ? `Runs are found on the ${network.name} network's chain.` : 'This dashboard was given a coordinator, not a network: it lists no runs.'}</p>
      {problem && (
        <p className="bad" role="status">
          There is no run to join: {problem}. Try again, or use another network.
        </p>
      )}
      <label>
        A network file (JSON: name, chainId, rpcUrls, registry, tokens, stun)
        <textarea rows={4} value={json} onChange={(e) => setJson(e.target.value)} spellCheck={false} />
      </label>
      <div className="row">
        <button type="button" disabled={busy || !json.trim()} onClick={() => use(json)}>
          Use this network
        </button>
        <button type="button" disabled={busy} onClick={() => use(undefined)}>
          {problem ? 'Try again' : own}
        </button>
      </div>
      {error && (
        <p className="bad" role="status">
          {error}
        </p>
      )}
    </Card>
  );
}

export function SettingsPage() {
  const loaded = useDashboard((state) => state.policy?.settings);
  const host = useDashboard((state) => state.host);
  const { s, saved, problems, up, save } = useDraft(loaded, host);
  if (!s || !host) return <Empty>Loading settings…</Empty>;
  const unsaved = Object.entries(problems);
  return (
    // noValidate: the page says what is wrong with each field in its own words, not the browser in a tooltip.
    <form onSubmit={save} aria-label="training settings" noValidate>
      <WhenToTrain s={s} up={up} problems={problems} tab={host.kind === 'tab'} />
      <Battery s={s} up={up} problems={problems} />
      <Limits s={s} up={up} problems={problems} desktop={host.kind === 'desktop'} />
      {unsaved.length > 0 && (
        <div className="error" role="alert" data-testid="settings-problems">
          Not saved: {unsaved.length === 1 ? 'one setting needs' : `${unsaved.length} settings need`} fixing.
          <ul>
            {unsaved.map(([key, message]) => (
              <li key={key}>{problemSentence(key, message)}</li>
            ))}
          </ul>
        </div>
      )}
      <div className="row">
        <button type="submit">Save settings</button>
        {saved && <span className="ok">Saved.</span>}
      </div>
      <NetworkCard host={host} />
      <Card title="Snooze" id="snooze">
        <div className="row">
          <SnoozeButtons onSnooze={(h) => act('snooze', () => host.snooze(h))} />
        </div>
      </Card>
    </form>
  );
}
