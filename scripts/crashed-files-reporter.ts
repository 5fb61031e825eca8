// A vitest reporter for one failure no assertion makes: a test worker process that dies (a native
// crash in Dawn or wrtc) takes its file's results with it. This names those files in the run's
// last lines and writes what scripts/vitest.ts needs to decide whether to run them once more.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';
import type { SerializedError } from 'vitest';

export const CRASH_REPORT = '.cache/vitest-crashed.json';

export interface CrashReport {
  /** Files with a test left pending: their worker died before they finished. */
  unfinished: string[];
  failedTests: number;
  /** Unhandled errors other than a worker's death. */
  otherErrors: string[];
}

const WORKER_DIED = /Worker exited unexpectedly|Worker forks emitted error/;

export default class CrashedFilesReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, errors: ReadonlyArray<SerializedError>): void {
    const states = (m: TestModule) => [...m.children.allTests()].map((t) => t.result().state);
    const report: CrashReport = {
      unfinished: modules.filter((m) => states(m).includes('pending')).map((m) => m.relativeModuleId),
      failedTests: modules.reduce((n, m) => n + states(m).filter((s) => s === 'failed').length + (m.state() === 'failed' && !states(m).length ? 1 : 0), 0),
      otherErrors: errors.map((e) => `${e.message}${e.cause ? ` (${(e.cause as SerializedError).message})` : ''}`).filter((m) => !WORKER_DIED.test(m)),
    };
    mkdirSync(dirname(CRASH_REPORT), { recursive: true });
    writeFileSync(CRASH_REPORT, `${JSON.stringify(report, null, 2)}\n`);
    if (report.unfinished.length) process.stdout.write(`\nvitest: a test worker died before these files finished: ${report.unfinished.join(', ')}\n`);
  }
}
