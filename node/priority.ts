// A volunteer's peer yields the CPU to whatever its user runs, as volunteer-compute clients run
// their tasks: below normal priority, so a game or the dashboard keeps its cores when both want them,
// and the peer still has the machine's spare time. On Linux a priority is a thread's, and threads
// inherit their creator's: lower it before the GPU runtime and the thread pool start theirs.
import os from 'node:os';

export const PRIORITIES = ['below-normal', 'normal'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** `v` as a priority, or an error naming the flag. */
export function priorityFlag(v: string): Priority {
  if (!(PRIORITIES as readonly string[]).includes(v)) throw new Error(`--priority must be ${PRIORITIES.join(' or ')}, got ${v}`);
  return v as Priority;
}

/** Runs this process at `p`; a sentence on why it could not (the peer then runs at its inherited priority). */
export function runAt(p: Priority): string | undefined {
  const { PRIORITY_BELOW_NORMAL, PRIORITY_NORMAL } = os.constants.priority;
  const want = p === 'normal' ? PRIORITY_NORMAL : PRIORITY_BELOW_NORMAL;
  try {
    // Only ever lowered: raising a priority needs privileges a volunteer's peer should not ask for.
    if (os.getPriority() < want) os.setPriority(want);
    return undefined;
  } catch (e) {
    return `this peer could not lower its priority (${(e as Error).message}): it runs at its inherited priority`;
  }
}
