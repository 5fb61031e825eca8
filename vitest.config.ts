import { defineConfig } from 'vitest/config';
import CrashedFilesReporter from './scripts/crashed-files-reporter.js';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts', 'e2e/**/*.test.ts'],
    testTimeout: 120000,
    hookTimeout: 900000,
    // Two cores, and GPU tests must not run concurrently.
    fileParallelism: false,
    reporters: ['default', new CrashedFilesReporter()],
  },
});
