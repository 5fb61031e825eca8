// `vitest run` (arguments passed on), and when the run failed only because a test worker process
// died before its files finished (no test failed, no other error), those files run once more: a
// native crash is retried once and named, an assertion never is. Exits with the last run's code.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { CRASH_REPORT, type CrashReport } from './crashed-files-reporter.js';

function vitest(args: string[]): { code: number; report?: CrashReport } {
  rmSync(CRASH_REPORT, { force: true });
  const code = spawnSync('node_modules/.bin/vitest', ['run', ...args], { stdio: 'inherit' }).status ?? 1;
  return { code, report: existsSync(CRASH_REPORT) ? (JSON.parse(readFileSync(CRASH_REPORT, 'utf8')) as CrashReport) : undefined };
}

const first = vitest(process.argv.slice(2));
const r = first.report;
if (first.code === 0 || !r?.unfinished.length || r.failedTests > 0 || r.otherErrors.length > 0) process.exit(first.code);
process.stdout.write(`\nvitest: running ${r.unfinished.join(', ')} once more: its test worker died (no test failed)\n`);
process.exit(vitest(r.unfinished).code);
