// When this machine may train: idle minutes, games, fullscreen, battery, schedule, temperature and
// power limits, GPU usage, start at login, snooze. Saved settings are validated; a bad value is
// reported and nothing changes.
import { type FormEvent, useEffect, useState } from 'react';
import type { PolicySettings, ScheduleWindow } from '../../shared/policy/types.js';
import type { AppHost } from '../app-host.js';
import { Card, Empty, SnoozeButtons } from '../components.js';
import { sentence } from '../format.js';
import { act, useDashboard } from '../store.js';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];

function NumberField({ label, value, onChange, min, max, step = 1 }: { label: string; value: number; onChange(v: number): void; min: number; max: number; step?: number }) {
  return (
    <label>
      {label} <input type="number" min={min} max={max} step={step} value={value} onChange={(e) => onChange(Number(e.target.value))} />
    </label>
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
function LimitPair<K extends string>({ value, labels, max, onChange }: { value: Record<K, number>; labels: Record<K, string>; max: number; onChange(v: Record<K, number>): void }) {
  return (Object.keys(labels) as K[]).map((key) => (
    <NumberField key={key} label={labels[key]} value={value[key]} min={0} max={max} onChange={(v) => onChange({ ...value, [key]: v })} />
  ));
}

interface SectionProps {
  s: PolicySettings;
  up(change: Partial<PolicySettings>): void;
}

function WhenToTrain({ s, up }: SectionProps) {
  const games = (text: string) =>
    text
      .split('\n')
      .map((g) => g.trim())
      .filter(Boolean);
  return (
    <Card title="When to train" id="when">
      <NumberField label="Start after this many idle minutes" value={s.idleMinutes} min={0} max={1440} onChange={(idleMinutes) => up({ idleMinutes })} />
      <label className="block">
        Games that pause training (one per line)
        <textarea rows={5} value={s.games.join('\n')} onChange={(e) => up({ games: games(e.target.value) })} />
      </label>
      <label>
        <input type="checkbox" checked={s.pauseOnFullscreen} onChange={(e) => up({ pauseOnFullscreen: e.target.checked })} /> Pause while an app is fullscreen
      </label>
      <Schedule windows={s.schedule} onChange={(schedule) => up({ schedule })} />
    </Card>
  );
}

function Battery({ s, up }: SectionProps) {
  return (
    <Card title="Battery" id="battery">
      <label>
        <input type="checkbox" checked={s.battery.pauseOnBattery} onChange={(e) => up({ battery: { ...s.battery, pauseOnBattery: e.target.checked } })} /> Pause on battery power
      </label>
      <NumberField label="Pause below this charge (%)" value={s.battery.minPercent} min={0} max={100} onChange={(minPercent) => up({ battery: { ...s.battery, minPercent } })} />
    </Card>
  );
}

function Limits({ s, up, desktop }: SectionProps & { desktop: boolean }) {
  return (
    <Card title="Limits" id="limits">
      <LimitPair
        value={s.temperature}
        max={120}
        labels={{ pauseAtC: 'Pause at GPU temperature (°C, 0: off)', resumeBelowC: 'Resume below (°C)' }}
        onChange={(temperature) => up({ temperature })}
      />
      <LimitPair
        value={s.power}
        max={2000}
        labels={{ throttleAtW: 'Throttle above GPU power (W, 0: off)', resumeBelowW: 'Full speed again below (W)' }}
        onChange={(power) => up({ power })}
      />
      <NumberField label="GPU usage limit (%)" value={Math.round(s.gpuUsage * 100)} min={10} max={100} onChange={(v) => up({ gpuUsage: v / 100 })} />
      {desktop && (
        <label>
          <input type="checkbox" checked={s.startAtLogin} onChange={(e) => up({ startAtLogin: e.target.checked })} /> Start when I log in
        </label>
      )}
    </Card>
  );
}

/** The settings being edited: loaded once from the policies, saved through the host (checked there). */
function useDraft(loaded: PolicySettings | undefined, host: AppHost | undefined) {
  const [s, setS] = useState<PolicySettings>();
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (loaded && !s) setS(loaded);
  }, [loaded, s]);
  const up = (change: Partial<PolicySettings>) => {
    setS((current) => current && { ...current, ...change });
    setSaved(false);
  };
  const save = (e: FormEvent) => {
    e.preventDefault();
    if (!s || !host) return;
    void act('save settings', () => host.saveSettings(s)).then((v) => {
      if (!v) return;
      setS(v.settings);
      setSaved(true);
    });
  };
  return { s, saved, up, save };
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
  const { s, saved, up, save } = useDraft(loaded, host);
  if (!s || !host) return <Empty>Loading settings…</Empty>;
  return (
    <form onSubmit={save} aria-label="training settings">
      <WhenToTrain s={s} up={up} />
      <Battery s={s} up={up} />
      <Limits s={s} up={up} desktop={host.kind === 'desktop'} />
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
