// When this machine may train: idle minutes, games, fullscreen, battery, schedule, temperature and
// power limits, GPU usage, start at login, snooze. Saved settings are validated; a bad value is
// reported and nothing changes.
import { type FormEvent, useEffect, useState } from 'react';
import { SNOOZE_HOURS } from '../../shared/policy/index.js';
import type { PolicySettings, ScheduleWindow } from '../../shared/policy/types.js';
import { Card, Empty } from '../components.js';
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

export function SettingsPage() {
  const { policy, host } = useDashboard();
  const [s, setS] = useState<PolicySettings>();
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (policy && !s) setS(policy.settings);
  }, [policy, s]);
  if (!s || !host) return <Empty>Loading settings…</Empty>;
  const up = (p: Partial<PolicySettings>) => {
    setS({ ...s, ...p });
    setSaved(false);
  };
  const save = (e: FormEvent) => {
    e.preventDefault();
    void act('save settings', () => host.saveSettings(s)).then((v) => {
      if (!v) return;
      setS(v.settings);
      setSaved(true);
    });
  };
  return (
    <form onSubmit={save} aria-label="training settings">
      <Card title="When to train" id="when">
        <NumberField label="Start after this many idle minutes" value={s.idleMinutes} min={0} max={1440} onChange={(idleMinutes) => up({ idleMinutes })} />
        <label className="block">
          Games that pause training (one per line)
          <textarea
            rows={5}
            value={s.games.join('\n')}
            onChange={(e) =>
              up({
                games: e.target.value
                  .split('\n')
                  .map((g) => g.trim())
                  .filter(Boolean),
              })
            }
          />
        </label>
        <label>
          <input type="checkbox" checked={s.pauseOnFullscreen} onChange={(e) => up({ pauseOnFullscreen: e.target.checked })} /> Pause while an app is fullscreen
        </label>
        <Schedule windows={s.schedule} onChange={(schedule) => up({ schedule })} />
      </Card>
      <Card title="Battery" id="battery">
        <label>
          <input type="checkbox" checked={s.battery.pauseOnBattery} onChange={(e) => up({ battery: { ...s.battery, pauseOnBattery: e.target.checked } })} /> Pause on battery power
        </label>
        <NumberField label="Pause below this charge (%)" value={s.battery.minPercent} min={0} max={100} onChange={(minPercent) => up({ battery: { ...s.battery, minPercent } })} />
      </Card>
      <Card title="Limits" id="limits">
        <NumberField
          label="Pause at GPU temperature (°C, 0: off)"
          value={s.temperature.pauseAtC}
          min={0}
          max={120}
          onChange={(pauseAtC) => up({ temperature: { ...s.temperature, pauseAtC } })}
        />
        <NumberField
          label="Resume below (°C)"
          value={s.temperature.resumeBelowC}
          min={0}
          max={120}
          onChange={(resumeBelowC) => up({ temperature: { ...s.temperature, resumeBelowC } })}
        />
        <NumberField
          label="Throttle above GPU power (W, 0: off)"
          value={s.power.throttleAtW}
          min={0}
          max={2000}
          onChange={(throttleAtW) => up({ power: { ...s.power, throttleAtW } })}
        />
        <NumberField label="Full speed again below (W)" value={s.power.resumeBelowW} min={0} max={2000} onChange={(resumeBelowW) => up({ power: { ...s.power, resumeBelowW } })} />
        <NumberField label="GPU usage limit (%)" value={Math.round(s.gpuUsage * 100)} min={10} max={100} onChange={(v) => up({ gpuUsage: v / 100 })} />
        {host.kind === 'desktop' && (
          <label>
            <input type="checkbox" checked={s.startAtLogin} onChange={(e) => up({ startAtLogin: e.target.checked })} /> Start when I log in
          </label>
        )}
      </Card>
      <div className="row">
        <button type="submit">Save settings</button>
        {saved && <span className="ok">Saved.</span>}
      </div>
      <Card title="Snooze" id="snooze">
        <div className="row">
          {SNOOZE_HOURS.map((h) => (
            <button type="button" key={h} onClick={() => act('snooze', () => host.snooze(h))}>
              Snooze {h} h
            </button>
          ))}
        </div>
      </Card>
    </form>
  );
}
