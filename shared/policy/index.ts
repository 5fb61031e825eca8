// The training policies: settings, schedule, the decision, snoozes and the loop that runs them.
// Host-agnostic: the same code runs in Electron's main process, a browser tab and the tests.
export * from './types.js';
export * from './settings.js';
export * from './schedule.js';
export * from './decide.js';
export * from './snooze.js';
export * from './loop.js';
