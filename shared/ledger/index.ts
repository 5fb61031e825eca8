// The ownership-ledger math (ARCHITECTURE §7): pure, so the coordinator, the dashboard and tests share it.
export * from './risk.js';
export * from './units.js';
export * from './ledger.js';
export * from './merkle.js';
