// Which network, and which of its runs, the desktop app joins: the command line's
// `--network NAME|FILE [--run ID]` for this launch, else what the user last chose in the dashboard
// (userData/run-choice.json), else the network the app ships as its default. No environment variable
// is needed; SWARM_APP_CONFIG (a whole config, for developers) still overrides all of them.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { loadNetwork } from '../node/network-file.js';
import { RUN_ID } from '../shared/app/join-run.js';
import { formatIssues } from '../shared/base/issues.js';
import { type Network, NetworkSchema } from '../shared/chain/network.js';
import { LOCAL_NETWORK } from '../shared/chain/networks.js';
import { keepAside, readIfExists, writeFileAtomic } from './user-files.js';

export const RUN_CHOICE_FILE = 'run-choice.json';

/** The network a fresh install finds runs on. */
export const DEFAULT_NETWORK = LOCAL_NETWORK;

export interface RunChoice {
  network: Network;
  /** Absent: the best run of the network taking volunteers now. */
  runId?: string;
}

const RunChoiceSchema = z.strictObject({ network: NetworkSchema, runId: z.string().regex(RUN_ID, 'must be a positive integer').optional() });

/** `--network NAME|FILE` and `--run ID` from the app's command line (anything else there is Electron's or Chromium's). */
export function launchChoice(argv: readonly string[]): RunChoice | undefined {
  const { values } = parseArgs({ args: [...argv], options: { network: { type: 'string' }, run: { type: 'string' } }, strict: false, allowPositionals: true });
  const { network, run } = values as { network?: string; run?: string };
  if (run !== undefined && network === undefined) throw new Error('--run needs --network NAME|FILE: the network whose chain lists the run');
  if (network === undefined) return undefined;
  if (run !== undefined && !RUN_ID.test(run)) throw new Error(`--run ${run}: a run id is a positive integer`);
  return { network: loadNetwork(network), ...(run !== undefined && { runId: run }) };
}

/** The user's last choice; a file that is not one is kept aside as run-choice.json.bad (and the default used). */
export async function storedChoice(dir: string, log: (line: string) => void): Promise<RunChoice | undefined> {
  const file = join(dir, RUN_CHOICE_FILE);
  const text = await readIfExists(file);
  if (text === undefined) return undefined;
  let why: string;
  try {
    const r = RunChoiceSchema.safeParse(JSON.parse(text));
    if (r.success) return r.data as RunChoice;
    why = formatIssues('run choice', r.error);
  } catch (error) {
    why = (error as Error).message;
  }
  await keepAside(file, 'run choice', log);
  log(`run choice: ${file} is unusable (${why}); kept as ${RUN_CHOICE_FILE}.bad, joining the ${DEFAULT_NETWORK.name} network's best run`);
  return undefined;
}

export const storeChoice = (dir: string, choice: RunChoice): Promise<void> => writeFileAtomic(join(dir, RUN_CHOICE_FILE), JSON.stringify(choice, null, 2));

/** What this launch joins: the command line's choice, else the stored one, else the default network's best run. */
export async function initialChoice(argv: readonly string[], dir: string, log: (line: string) => void): Promise<RunChoice> {
  return launchChoice(argv) ?? (await storedChoice(dir, log)) ?? { network: DEFAULT_NETWORK };
}
