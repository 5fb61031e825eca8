// `npm start`'s program as a child process, read through its output: the dashboard's URL, the
// swarm's step, and when the run has been settled and the swarm serves.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

export class StartProcess {
  readonly child: ChildProcess;
  private out = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, ['--import', 'tsx', 'cli/start.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
    const keep = (b: Buffer) => {
      this.out += b.toString();
      if (this.out.length > 4_000_000) this.out = this.out.slice(-2_000_000);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  /** What it printed last (for a failure's message). */
  tail(chars = 3000): string {
    return this.out.slice(-chars).replace(/\r/g, '\n');
  }

  /** Resolves with the first match of `re` in the output, polling; fails after `ms` saying what it waited for. */
  async waitFor(re: RegExp, what: string, ms: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = this.out.match(re);
      if (m) return m;
      if (this.child.exitCode !== null) throw new Error(`npm start exited (${this.child.exitCode}) while waiting for ${what}:\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`no ${what} within ${ms / 1000} s; npm start printed:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** The swarm's last committed step as its progress line shows it. */
  step(): number {
    const all = [...this.out.matchAll(/step (\d+)\/\d+/g)];
    return all.length ? Number(all.at(-1)![1]) : 0;
  }

  /** Every process it started, and theirs (the chain, the workers). */
  descendants(): number[] {
    const children = (pid: number): number[] => {
      const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
      return r.stdout
        .split('\n')
        .filter((l) => l.trim())
        .map(Number);
    };
    const out: number[] = [];
    for (let queue = [this.child.pid!]; queue.length; ) {
      const next = queue.flatMap(children);
      out.push(...next);
      queue = next;
    }
    return out;
  }

  /** Ctrl-C, as a user stops it. */
  interrupt(): void {
    this.child.kill('SIGINT');
  }
}
