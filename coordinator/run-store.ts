// The coordinator's durable record of one run, in SQLite (better-sqlite3): the run's state machine
// (run-control.ts's snapshot), the contribution ledger, and every closed epoch's tree with the
// index the chain gave its root once posted. Writes are synchronous and made before the messages
// they stand for leave the coordinator, so a coordinator killed at any instant (kill -9) restarts
// from a state no peer has seen beyond: no committed step is lost or credited twice, and no epoch is
// posted twice.
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { LedgerJson } from '../shared/ledger/index.js';
import type { EpochTreeDump } from '../shared/ledger/merkle.js';
import type { ControlSnapshot } from './run-control.js';
import type { RunConfig } from '../shared/run/config.js';

export interface StoredEpoch {
  /** The ledger's epoch index. */
  epoch: number;
  /** The training step it closed at. */
  step: number;
  root: `0x${string}`;
  total: bigint;
  tree: EpochTreeDump;
  /** The chain's index of its root, once posted. */
  posted?: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE IF NOT EXISTS epochs (
    epoch INTEGER PRIMARY KEY, step INTEGER NOT NULL, root TEXT NOT NULL, total TEXT NOT NULL,
    tree TEXT NOT NULL, posted INTEGER
  );
`;

export class RunStore {
  private constructor(
    private readonly db: Database.Database,
    readonly path: string,
  ) {}

  /**
   * Open (or create) the record of `run` at `path`. A record of a run with another configuration
   * is refused: resuming it with different settings would mix two runs' steps and credit.
   */
  static open(path: string, run: RunConfig): RunStore {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    // WAL with FULL sync: a committed transaction survives the process being killed (and the machine losing power).
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(SCHEMA);
    const store = new RunStore(db, path);
    const stored = store.get('run');
    const mine = JSON.stringify(run);
    if (stored === undefined) store.set('run', mine);
    else if (stored !== mine) {
      db.close();
      throw new Error(
        `${path} holds run ${(JSON.parse(stored) as RunConfig).runId} with other settings (${differences(JSON.parse(stored), run)}): resume it with the same flags, or start a new run with another --run-id`,
      );
    }
    return store;
  }

  /** A new record of `run` at `path`, replacing any earlier one (a launcher's one-shot run). */
  static fresh(path: string, run: RunConfig): RunStore {
    for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
    return RunStore.open(path, run);
  }

  /** Run `write` as one transaction: all of it is durable, or none of it. Nests. */
  atomically<T>(write: () => T): T {
    return this.db.transaction(write)();
  }

  /** The run's state as last saved, if any. */
  control(): ControlSnapshot | undefined {
    return this.json<ControlSnapshot>('control');
  }

  saveControl(s: ControlSnapshot): void {
    this.set('control', JSON.stringify(s));
  }

  ledger(): LedgerJson | undefined {
    return this.json<LedgerJson>('ledger');
  }

  saveLedger(l: LedgerJson): void {
    this.set('ledger', JSON.stringify(l));
  }

  addEpoch(e: Omit<StoredEpoch, 'posted'>): void {
    this.db.prepare('INSERT INTO epochs (epoch, step, root, total, tree) VALUES (?, ?, ?, ?, ?)').run(e.epoch, e.step, e.root, e.total.toString(), JSON.stringify(e.tree));
  }

  markPosted(epoch: number, index: number): void {
    this.db.prepare('UPDATE epochs SET posted = ? WHERE epoch = ?').run(index, epoch);
  }

  /** Every closed epoch, oldest first. */
  epochs(): StoredEpoch[] {
    const rows = this.db.prepare('SELECT epoch, step, root, total, tree, posted FROM epochs ORDER BY epoch').all() as Array<{
      epoch: number;
      step: number;
      root: `0x${string}`;
      total: string;
      tree: string;
      posted: number | null;
    }>;
    return rows.map((r) => ({ epoch: r.epoch, step: r.step, root: r.root, total: BigInt(r.total), tree: JSON.parse(r.tree), ...(r.posted !== null && { posted: r.posted }) }));
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private get(key: string): string | undefined {
    return (this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  }

  private set(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  private json<T>(key: string): T | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    try {
      return JSON.parse(v) as T;
    } catch (e) {
      throw new Error(`${this.path}: the saved ${key} is corrupt (${(e as Error).message})`);
    }
  }
}

/** The top-level settings that differ between two run configurations, for the refusal. */
function differences(a: Record<string, unknown>, b: RunConfig): string {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const differ = [...keys].filter((k) => JSON.stringify(a[k]) !== JSON.stringify((b as unknown as Record<string, unknown>)[k]));
  return differ.length ? `${differ.join(', ')} differ` : 'the same settings in another order';
}
