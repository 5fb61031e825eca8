// The dashboard's end-to-end tests (`npm run e2e`): Playwright with the system Chromium against a
// real local swarm started as `npm start` starts it. The kernel and WebRTC browser checks in e2e/
// run under vitest; these are the app's.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: 'e2e/app',
  testMatch: '*.spec.ts',
  outputDir: 'test-results',
  // One swarm on two cores: the steps of a test share it, in order.
  workers: 1,
  fullyParallel: false,
  timeout: 40 * 60_000,
  expect: { timeout: 30_000 },
  // A control that never appears fails the step in a minute, not at the test's timeout.
  use: { actionTimeout: 60_000 },
  reporter: [['list']],
});
