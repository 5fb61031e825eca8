// The run the desktop app's pages join now, and switching it. A new choice is found on chain first:
// a network or run that cannot be joined is refused with its reason and nothing changes. Only then
// does the trainer leave gracefully (its stage handed on), the choice get saved, and the pages
// reload onto the new run. At launch a choice that finds no run still opens the app: its pages show
// why, and the user can pick another network or run.
import type { AppConfig } from '../shared/app/bridge.js';
import { RUN_ID, resolveAppConfig } from '../shared/app/join-run.js';
import { parseNetwork } from '../shared/chain/network.js';
import { type RunChoice, storeChoice } from './run-choice.js';

/** What every resolved config of this app carries besides the run (test keys of a local chain, data URL). */
export type ConfigExtras = Pick<AppConfig, 'localKeys' | 'dataUrl' | 'walletConnectProjectId'>;

export interface JoinedRunOptions {
  /** userData: where the choice is saved. */
  dir: string;
  /** The choice `switchNetwork(undefined)` goes back to (the launch's own). */
  launch: RunChoice;
  extras: ConfigExtras;
  /** Make the trainer leave its run gracefully; resolves once it has (or there was none). */
  leave(reason: string): Promise<void>;
  /** Reload the pages: they read the new config. */
  reload(): void;
  log(line: string): void;
}

/** The config for `choice`, or why it finds no run to join. */
export async function resolveChoice(choice: RunChoice, extras: ConfigExtras): Promise<AppConfig> {
  return resolveAppConfig({ ...extras, network: choice.network }, choice.runId);
}

export class JoinedRun {
  private switching: Promise<unknown> = Promise.resolve();

  private constructor(
    public config: AppConfig,
    private readonly o: JoinedRunOptions,
  ) {}

  /** The launch's run; one it cannot find is a config with no coordinator and the reason, not a failed start. */
  static async open(o: JoinedRunOptions): Promise<JoinedRun> {
    const config = await resolveChoice(o.launch, o.extras).catch((e: Error): AppConfig => {
      o.log(`no run to join: ${e.message}`);
      return { ...o.extras, network: o.launch.network, problem: e.message };
    });
    return new JoinedRun(config, o);
  }

  /** A config given whole (SWARM_APP_CONFIG): the app joins it and switches to nothing else. */
  static fixed(config: AppConfig, o: JoinedRunOptions): JoinedRun {
    return new JoinedRun(config, o);
  }

  /** Join run `runId` of the current network. */
  switchRun(runId: string): Promise<void> {
    const network = this.config.network;
    if (!network) return Promise.reject(new Error('this app was given a coordinator, not a network: it has no other run to switch to'));
    if (!RUN_ID.test(runId)) return Promise.reject(new Error(`run ${JSON.stringify(runId)}: a run id is a positive integer`));
    return this.switchTo({ network, runId }, `switching to run ${runId}`);
  }

  /** Join the best run of the network in `json` (a network file), or of the launch's network (undefined). */
  switchNetwork(json: string | undefined): Promise<void> {
    let choice: RunChoice;
    try {
      choice = json === undefined ? this.o.launch : { network: parseNetwork(json, 'the network file') };
    } catch (e) {
      return Promise.reject(e);
    }
    return this.switchTo(choice, `switching to the ${choice.network.name} network`);
  }

  // One switch at a time: a second click waits for the first rather than racing its leave.
  private switchTo(choice: RunChoice, reason: string): Promise<void> {
    const run = this.switching.then(async () => {
      const config = await resolveChoice(choice, this.o.extras);
      await this.o.leave(reason);
      await storeChoice(this.o.dir, choice);
      this.config = config;
      this.o.log(`${reason}: joining ${config.coordinator}`);
      // After the reply reaches the page that asked (it learns the switch was made), not before.
      setTimeout(() => this.o.reload(), 0);
    });
    this.switching = run.catch(() => undefined);
    return run;
  }
}
