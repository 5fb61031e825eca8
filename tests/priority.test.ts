// A headless peer trains below normal CPU priority (node/priority.ts), unless told otherwise.
import { spawn } from 'node:child_process';
import os from 'node:os';
import { describe, expect, it } from 'vitest';

/** The CPU priority of `npm run worker` with `args` once it is running (it is then stopped). */
async function workerPriority(args: string[]): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/worker.ts', '--coordinator', 'ws://127.0.0.1:1', '--quick-start', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const seen = new Promise<void>((resolve, reject) => {
    const read = (c: Buffer) => {
      out += c;
      if (out.includes('connecting to ws://127.0.0.1:1')) resolve();
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    child.once('exit', (code) => reject(new Error(`the worker exited (${code}) first:\n${out}`)));
  });
  try {
    await seen;
    return os.getPriority(child.pid);
  } finally {
    child.kill('SIGKILL');
  }
}

describe('the priority a headless peer trains at', () => {
  it('is below normal by default, so what its user runs keeps its cores', async () => {
    expect(await workerPriority([])).toBe(Math.max(os.getPriority(), os.constants.priority.PRIORITY_BELOW_NORMAL));
  }, 60_000);

  it('stays as inherited with --priority normal', async () => {
    expect(await workerPriority(['--priority', 'normal'])).toBe(os.getPriority());
  }, 60_000);
});
