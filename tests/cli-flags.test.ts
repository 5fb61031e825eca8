// Every command answers a bad flag or value the way a person can act on: one line naming it, then
// the command's usage, exit code 2, no stack trace, and before any work starts (npm start used to
// build for 11 s first). Real processes, as a user runs them; and a port in use names its flag
// (the same listenError answers for `npm start`'s dashboard, `npm run tab` and the coordinator).
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { listenError, shellLine } from '../node/flags.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsx = join(root, 'node_modules/tsx/dist/cli.mjs');

/** [command as the user types it, script, bad arguments, what the first line must say] */
const CASES: [string, string, string[], string][] = [
  ['npm start', 'cli/start.ts', ['--bogus'], 'unknown flag --bogus'],
  ['npm start', 'cli/start.ts', ['--epoch-steps', 'soon'], '--epoch-steps must be a non-negative integer, got soon'],
  ['npm run swarm', 'cli/swarm.ts', ['--workers', 'two'], '--workers must be a non-negative integer, got two'],
  ['npm run worker', 'worker/worker.ts', ['--bogus'], 'unknown flag --bogus'],
  ['npm run worker', 'worker/worker.ts', [], 'give --coordinator wss://HOST:PORT, or --network NAME|FILE and --run ID'],
  ['npm run worker', 'worker/worker.ts', ['--coordinator', 'ws://127.0.0.1:1', '--priority', 'high'], '--priority must be below-normal or normal, got high'],
  ['npm run gpu', 'cli/gpu-report.ts', ['--bogus'], 'unknown flag --bogus'],
  ['npm run coordinator', 'coordinator/main.ts', ['--steps', 'many'], '--steps must be a number, got many'],
  ['npm run train:local', 'cli/train-local.ts', ['--steps', '0'], '--steps must be a positive integer, got 0'],
  ['npm run buy', 'cli/buy.ts', ['--prompt', 'hi'], '--coordinator ws://HOST:PORT is required'],
  ['npm run wallet', 'cli/wallet.ts', ['--bogus'], 'unknown command --bogus'],
  ['npm run tab', 'cli/tab.ts', ['--network', 'local', '--port', 'x'], '--port must be a non-negative integer, got x'],
  ['npm run chain', 'contracts/chain.ts', ['--workers', '-1'], "Option '--workers' argument is ambiguous"],
];

describe('a bad command line', () => {
  it.each(CASES)('%s %s %j: one line naming it, the usage, exit 2', (command, script, args, says) => {
    const r = spawnSync(process.execPath, [tsx, join(root, script), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, SWARM_RPC_URL: '' } });
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain(`${command}: ${says}`);
    expect(lines[1]).toMatch(new RegExp(`^usage: ${command.replace(':', '\\:')}`));
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stdout).toBe('');
    expect(r.status).toBe(2);
  });
});

describe('a port in use', () => {
  it('names the flag that picks another, for the chain `npm run chain` serves', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as AddressInfo).port;
    try {
      const child = spawn(process.execPath, [tsx, join(root, 'contracts/chain.ts'), '--port', String(port)], { cwd: root });
      let stderr = '';
      child.stderr.on('data', (b) => (stderr += b));
      const code = await new Promise<number | null>((r) => child.on('exit', r));
      expect(stderr.trim()).toBe(`error: port ${port} is already in use (another npm start, tab or coordinator?): pick another with --port N`);
      expect(code).toBe(1);
    } finally {
      busy.close();
    }
  });

  it('leaves other listen errors as they are', () => {
    const other = Object.assign(new Error('listen EINVAL'), { code: 'EINVAL' });
    expect(listenError(other, 'port')).toBe(other);
    expect(listenError(Object.assign(new Error('x'), { code: 'EACCES', port: 80 }), 'port').message).toBe(
      'port 80 needs privileges this user lacks: pick one above 1023 with --port N',
    );
  });
});

describe('a command line printed for the user to run again', () => {
  it('is read back by bash as the same words, newlines and quotes included, on one line', () => {
    const words = ['npm', 'run', 'buy', '--', '--prompt', 'ROMEO:\n', "it's", 'a b', 'tab\there', 'back\\slash', '\x01', '$HOME', '*', ''];
    const line = shellLine(words);
    expect(line).not.toContain('\n');
    const r = spawnSync('bash', ['-c', `printf '%s\\0' ${line}`], { encoding: 'utf8' });
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(words);
  });
});
