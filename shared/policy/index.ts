// The desktop app's training policies: settings, schedule, the decision and snoozes. Pure:
// the same code runs in Electron's main process, its pages and the tests.
export * from './types.js';
export * from './settings.js';
export * from './schedule.js';
export * from './decide.js';
export * from './snooze.js';
