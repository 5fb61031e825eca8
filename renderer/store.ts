// The dashboard's state (zustand): the host, this machine's peer as its events tell it, and the
// policies' decision. Chain data is fetched where it is shown (react-query), not kept here. Every
// reader takes a selector (useShallow for several fields): a session event arrives many times a
// second, and only what shows a changed field should re-render.
import { create } from 'zustand';
import type { AppHost } from './app-host.js';
import type { PolicyView } from '../shared/policy/types.js';
import { INITIAL_TRAINING, type TrainingState, reduceTraining } from './training-state.js';

export type Page = 'gpu' | 'training' | 'runs' | 'earnings' | 'credentials' | 'settings';

export interface DashboardState {
  host?: AppHost;
  page: Page;
  training: TrainingState;
  policy?: PolicyView;
  /** A tab's choice to train (absent: the desktop app, which trains by its policies); `yes` undefined: not asked yet. */
  trainChoice?: { yes: boolean | undefined };
  /** The last action's failure, shown until the next action. */
  error?: string;
  setPage(page: Page): void;
  setError(error: string | undefined): void;
  /** Subscribe the store to a host's events; returns the unsubscribe function. */
  attach(host: AppHost): () => void;
}

export const useDashboard = create<DashboardState>()((set) => ({
  page: 'training',
  training: INITIAL_TRAINING,
  setPage: (page) => set({ page }),
  setError: (error) => set({ error }),
  attach(host) {
    set({ host });
    const offTrainer = host.onTrainerEvent((e) => set((s) => ({ training: reduceTraining(s.training, e, Date.now()) })));
    const offPolicy = host.onPolicy((policy) => set({ policy }));
    void host.policy().then((policy) => set({ policy }));
    const choice = host.trainChoice;
    if (choice) set({ trainChoice: { yes: choice.current() } });
    const offChoice = choice?.onChange((yes) => set({ trainChoice: { yes } }));
    return () => {
      offTrainer();
      offPolicy();
      offChoice?.();
    };
  },
}));

/** Run a user action: its error is shown, never thrown into React. */
export async function act<T>(what: string, f: () => Promise<T>): Promise<T | undefined> {
  useDashboard.getState().setError(undefined);
  try {
    return await f();
  } catch (e) {
    useDashboard.getState().setError(`${what}: ${(e as Error).message}`);
    return undefined;
  }
}
