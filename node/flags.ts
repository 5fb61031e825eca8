// Command-line flags, read the same way by every Node command (`npm run swarm`, `npm start`,
// `npm run train:local`, `npm run coordinator`, the swarm benchmark): node:util's parseArgs with
// string options, and numbers checked with an error that names the flag.

/** parseArgs options for flags that each take a value. */
export function stringOptions<const K extends string>(names: readonly K[]): Record<K, { type: 'string' }> {
  return Object.fromEntries(names.map((n) => [n, { type: 'string' }])) as Record<K, { type: 'string' }>;
}

/** `v` as a whole number ≥ min (0 or 1), or an error naming the flag. */
export function intFlag(flag: string, v: unknown, min: 0 | 1 = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be a ${min ? 'positive' : 'non-negative'} integer, got ${String(v)}`);
  return n;
}

/** `v` as a finite number, or an error naming the flag. */
export function numberFlag(flag: string, v: unknown): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${flag} must be a number, got ${String(v)}`);
  return n;
}
