// Making the hidden trainer window leave its run gracefully, from the main process, and knowing when
// it has: the trainer follows a `leave` command and its session then reports an end phase, which the
// main process sees as it relays the trainer's events. A trainer that never answers is not waited on
// for ever: the switch goes on after LEAVE_WAIT_MS (reloading the page ends its session anyway).
import type { TrainerEventEnvelope } from './ipc-contract.js';

/** A graceful leave hands the stage's state to an heir first, which may take a while on a slow link. */
export const LEAVE_WAIT_MS = 30_000;

const ENDED = ['left', 'stopped', 'failed'];

export interface TrainerLeaver {
  /** Every event the trainer reports (its phase is read from them). */
  observe(event: TrainerEventEnvelope): void;
  /** Tell the trainer to leave; resolves once its session has ended, at once if none runs. */
  leave(reason: string): Promise<void>;
}

export function trainerLeaver(command: (reason: string) => void, log: (line: string) => void, waitMs = LEAVE_WAIT_MS): TrainerLeaver {
  let inSession = false;
  let ended: (() => void) | undefined;
  return {
    observe(event) {
      if (event.type !== 'phase' || typeof event.data.phase !== 'string') return;
      inSession = !ENDED.includes(event.data.phase);
      if (!inSession) ended?.();
    },
    leave(reason) {
      if (!inSession) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log(`the trainer did not confirm its leave within ${waitMs / 1000} s: switching anyway`);
          done();
        }, waitMs);
        const done = () => {
          clearTimeout(timer);
          ended = undefined;
          resolve();
        };
        ended = done;
        command(reason);
      });
    },
  };
}
