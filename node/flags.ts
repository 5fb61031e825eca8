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

/** A parseArgs error (unknown flag, missing value, stray argument) as one short sentence. */
function flagMessage(e: Error & { code?: string }): string {
  const quoted = /'([^']+)'/.exec(e.message)?.[1];
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return `unknown flag ${quoted ?? e.message}`;
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return `unexpected argument ${quoted ?? e.message}`;
  // "Option '--port <value>' argument missing" and the like: the first sentence says it.
  return e.message.split(/\.\s/)[0];
}

/**
 * A command's flags read by `read`. Anything wrong with them is one line naming the flag, then the
 * command's usage, on stderr, and exit code 2: never a stack trace, and before any work starts.
 */
export function readFlags<T>(command: string, usage: string, read: () => T): T {
  try {
    return read();
  } catch (e) {
    process.stderr.write(`${command}: ${flagMessage(e as Error)}\nusage: ${usage}\n`);
    process.exit(2);
  }
}

/** A server's listen error as what to do about it: a port in use names the flag that picks another. */
export function listenError(e: unknown, flag: string): Error {
  const err = e as Error & { code?: string; port?: number };
  if (err.code === 'EADDRINUSE') return new Error(`port ${err.port} is already in use (another npm start, tab or coordinator?): pick another with --${flag} N`);
  if (err.code === 'EACCES') return new Error(`port ${err.port} needs privileges this user lacks: pick one above 1023 with --${flag} N`);
  return err;
}

/** A command line as a shell reads it back, on one line: safe words as they are, others single-quoted, control characters as bash's $'…'. */
export function shellLine(words: readonly string[]): string {
  return words.map(shellWord).join(' ');
}

const isControl = (c: string): boolean => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f;
const ESCAPES: Record<string, string> = { '\\': '\\\\', "'": "\\'", '\n': '\\n', '\t': '\\t' };

function shellWord(w: string): string {
  if (/^[\w@%+=:,./-]+$/.test(w)) return w;
  const chars = [...w];
  if (!chars.some(isControl)) return `'${w.replaceAll("'", `'\\''`)}'`;
  const escaped = chars.map((c) => ESCAPES[c] ?? (isControl(c) ? `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}` : c));
  return `$'${escaped.join('')}'`;
}
