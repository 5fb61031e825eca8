// Dawn's Node binding (the npm `webgpu` package) waits for GPU work (a mapAsync, an
// onSubmittedWorkDone) by rescheduling a native callback with setImmediate until the work is done:
// the event loop spins, and a core is busy doing nothing for as long as the GPU works. Where the
// "GPU" is lavapipe on the same cores, that spin takes a core from the GPU itself (and on a gamer's
// machine, from the game). Dawn's callbacks are native functions, so they can be told apart from
// JavaScript's own setImmediate calls and polled on a timer instead, at most `everyMs` late.
// tests/dawn-polling.test.ts measures the event loop asleep instead of spinning; on this 2-core
// machine a local swarm trains and serves far faster with the cores left to the work.

const WRAPPED = Symbol.for('swarm.dawnPolling');

/** Whether `fn` is a native function that is not a bound JavaScript one: how Dawn's poll is told apart. */
export function isNativeCallback(fn: unknown): boolean {
  return typeof fn === 'function' && !fn.name.startsWith('bound ') && Function.prototype.toString.call(fn).includes('[native code]');
}

/** Have native setImmediate callbacks (Dawn's poll) wait `everyMs` on a timer; JavaScript's run as before. Idempotent. */
export function pollDawnOnTimer(everyMs = 1): void {
  const immediate = globalThis.setImmediate as typeof setImmediate & { [WRAPPED]?: true };
  if (immediate[WRAPPED]) return;
  const wrapped = (<A extends unknown[]>(fn: (...args: A) => void, ...args: A) =>
    isNativeCallback(fn) ? setTimeout(fn, everyMs, ...args) : immediate(fn, ...args)) as unknown as typeof setImmediate;
  // Keep what hangs on Node's setImmediate (util.promisify's custom form).
  Object.defineProperties(wrapped, Object.getOwnPropertyDescriptors(immediate));
  Object.defineProperty(wrapped, WRAPPED, { value: true });
  globalThis.setImmediate = wrapped;
}
