// A schema's complaints as one sentence a person can act on: every message, file and setting that
// fails its zod schema is reported this way.
import type { z } from 'zod';

/** One line per problem, e.g. `heartbeat.step: Invalid input: expected number, received string`. */
export function formatIssues(prefix: string, error: z.ZodError): string {
  const lines = error.issues.slice(0, 5).map((i) => {
    const path = [prefix, ...i.path.map(String)].join('.');
    return `${path}: ${i.message}`;
  });
  if (error.issues.length > 5) lines.push(`(${error.issues.length - 5} more)`);
  return lines.join('; ');
}
