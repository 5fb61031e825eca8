// `npm start`: the whole local swarm and its economy on embedded defaults, with the dashboard.
// Starts a local EVM and deploys the contracts; a designer opens a run with a stake; the
// coordinator and the worker processes train it over WebRTC while every epoch's verified work is
// posted on chain as a Merkle root; the dashboard opens (the desktop app where Electron's binary
// is installed, otherwise a page on 127.0.0.1 whose tab joins as a worker); when training ends,
// ownership is delivered to every contributor, an owner lists credentials, a buyer buys one,
// spends it on a prompt, and the swarm answers; it then serves until Ctrl-C.
// Flags: those of `npm run swarm` plus --epoch-steps N --risk exp:4 --prompt TEXT --answer-tokens N
// --challenge-window SECONDS --port 8080 (the dashboard's).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type Address, type Hex, createPublicClient, createWalletClient, formatEther, http, parseEther } from 'viem';
import WebSocket from 'ws';
import { type LocalEvm, startLocalEvm } from '../contracts/local-evm.js';
import { RunStore } from '../coordinator/run-store.js';
import { settleOnChain } from '../coordinator/settle-on-chain.js';
import type { SettlementReport } from '../coordinator/settlement.js';
import { type SwarmAddresses, type SwarmChain, swarmChain } from '../shared/chain/client.js';
import { type ChainConfig, chainOf, exportBlock } from '../shared/chain/config.js';
import { deploySwarmContracts } from '../shared/chain/deploy.js';
import type { WebSocketConstructor } from '../shared/swarm/coordinator-client.js';
import { requestAnswer } from '../shared/buyer/inference-client.js';
import { parseRisk, runUnitsFloor, stepWorkFlops } from '../shared/ledger/index.js';
import { runStageConfigs } from '../shared/run/derive.js';
import { runSpecHash } from '../shared/run/spec.js';
import type { AppConfig } from '../shared/app/bridge.js';
import { intFlag, readFlags, shellLine, stringOptions } from '../node/flags.js';
import { buildDashboard } from './dashboard-site.js';
import { openDashboard } from './open-dashboard.js';
import { SWARM_USAGE, type SwarmOptions, type SwarmResult, parseSwarmArgs, runConfig, runSwarm } from './swarm.js';
import type { RunConfig } from '../shared/run/config.js';

export interface EconomyOptions {
  epochSteps: number;
  risk: string;
  prompt: string;
  answerTokens: number;
  /** Seconds a root waits for a veto before it settles (short on a local chain). */
  challengeWindow: number;
}

/** Where `npm start` serves the dashboard (0: any free port). */
export const DEFAULT_DASHBOARD_PORT = 8080;

export const ECONOMY_DEFAULTS: EconomyOptions = { epochSteps: 25, risk: 'exp:4', prompt: 'ROMEO:\n', answerTokens: 120, challengeWindow: 3 };

// Dev accounts of the local chain, by role; workers take the ones after these.
export const ROLES = { admin: 0, coordinator: 1, veto: 2, designer: 3, buyer: 4, firstWorker: 5 } as const;
const { admin: ADMIN, coordinator: COORDINATOR, veto: VETO, designer: DESIGNER, buyer: BUYER, firstWorker: FIRST_WORKER } = ROLES;

/**
 * The designer's compute target: the units the run earns at least once every step is committed,
 * however its microbatches end up split among peers.
 */
export function expectedUnits(run: RunConfig, risk: string): bigint {
  const flops = runStageConfigs(run).map((c) => stepWorkFlops(c, 1));
  return runUnitsFloor(flops, run.microbatches, run.steps, parseRisk(risk));
}

/** The dashboard's part in a local economy (`npm start`): where it is opened, and how long the swarm serves. */
export interface DashboardHooks {
  /** Open (serve, or start the desktop app with) the dashboard once the swarm's coordinates are known. */
  open(config: AppConfig): Promise<{ close(): Promise<void> }>;
  /** After the economy ran, the swarm keeps serving until this resolves (Ctrl-C). */
  until: Promise<void>;
}

export interface EconomyResult {
  addresses: SwarmAddresses;
  runId: bigint;
  swarm: SwarmResult;
  settlement: SettlementReport;
  answer: { prompt: string; text: string; spendId: string; answerHash: string };
  workers: Array<{ account: Address; units: string; ownership: string; credentials: string }>;
}

/** The contracts on a local chain, and a client of them signed by each dev account. */
async function deployLocal(evm: LocalEvm): Promise<{ addresses: SwarmAddresses; as: (account: number) => SwarmChain }> {
  const chain = chainOf(evm);
  const transport = http(evm.rpcUrl);
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 100 });
  const addresses = await deploySwarmContracts(publicClient, createWalletClient({ account: evm.accounts[ADMIN], chain, transport }), {
    coordinator: evm.accounts[COORDINATOR].address,
    veto: evm.accounts[VETO].address,
  });
  return { addresses, as: (i) => swarmChain(publicClient, addresses, createWalletClient({ account: evm.accounts[i], chain, transport })) };
}

/** The designer stakes 1 ETH on the run, committing to its exact configuration. */
async function openRunOnChain(designer: SwarmChain, run: RunConfig, e: EconomyOptions): Promise<{ runId: bigint; target: bigint }> {
  const target = expectedUnits(run, e.risk);
  const { result: runId } = await designer.openRun({
    stake: parseEther('1'),
    computeTarget: target,
    designerBps: 1000,
    credentialSupply: 1000n,
    challengeWindow: BigInt(e.challengeWindow),
    // The hash of the very text its coordinator serves at /run.json, so a dashboard can check it.
    modelHash: runSpecHash(run),
  });
  return { runId, target };
}

/**
 * The market after training: the largest owner pulls its credentials and lists ten; the buyer
 * buys one and spends it on a prompt, which the swarm then answers.
 */
async function buyOneSpend(as: (account: number) => SwarmChain, workerAccounts: Address[], report: SettlementReport, runId: bigint, prompt: string) {
  const top = report.units.reduce((a, b) => (b.ownership > a.ownership ? b : a));
  const owner = as(FIRST_WORKER + workerAccounts.indexOf(top.account));
  await owner.claimCredentials(runId);
  await owner.list(runId, 10n, parseEther('0.001'));
  const buyer = as(BUYER);
  const [listing] = await buyer.openListings(runId);
  await buyer.buy(listing, 1n);
  const { result: spendId } = await buyer.spendCredentials(runId, 1n, prompt);
  return { spendId, price: listing.price };
}

/** Each worker's units, ownership and credentials as the chain holds them. */
async function ownership(reader: SwarmChain, runId: bigint, workerAccounts: Address[], report: SettlementReport): Promise<EconomyResult['workers']> {
  return Promise.all(
    workerAccounts.map(async (account) => ({
      account,
      units: (report.units.find((u) => u.account === account)?.units ?? 0n).toString(),
      ownership: (await reader.ownershipOf(runId, account)).toString(),
      credentials: ((await reader.credentialsOf(runId, account)) + (await reader.pendingCredentials(runId, account))).toString(),
    })),
  );
}

function ownershipTable(workers: EconomyResult['workers'], report: SettlementReport): string {
  const share = (units: string | bigint) => ((Number(units) / Number(report.ownershipTotal)) * 100).toFixed(2).padStart(6);
  const rows = workers.map((w) => `  ${w.account}  ${share(w.ownership)} %  ${w.ownership.padStart(12)} units  ${w.credentials.padStart(5)} credentials\n`);
  const designer = `  designer                                     ${share(report.designerUnits)} %  ${report.designerUnits.toString().padStart(12)} units\n`;
  return ['\nownership of the trained model (on chain):\n', ...rows, designer].join('');
}

export const ACCOUNTS_FILE = 'accounts.sh';

/**
 * The settings `npm run wallet` and `npm run buy` need from another terminal, one block per account
 * of this local chain, written to OUT/accounts.sh; what to say about it.
 */
function accountsFile(out: string, coordinator: string, chain: Omit<ChainConfig, 'key'>, keys: readonly Hex[], workers: number, prompt: string): string {
  const blocks = [
    ...Array.from({ length: workers }, (_, i) => exportBlock(`worker ${i}'s account: npm run wallet -- status`, { ...chain, key: keys[FIRST_WORKER + i] })),
    exportBlock(`the buyer: npm run buy -- --coordinator ${coordinator} --prompt ${shellLine([prompt])}`, { ...chain, key: keys[BUYER] }),
    exportBlock('the designer: npm run wallet -- status', { ...chain, key: keys[DESIGNER] }),
  ];
  const file = join(out, ACCOUNTS_FILE);
  mkdirSync(out, { recursive: true });
  writeFileSync(file, `# npm start's local chain (public Hardhat test keys: this chain only). Paste one block into another terminal.\n\n${blocks.join('\n')}`);
  return `\nfrom another terminal, npm run wallet and npm run buy take the settings of one account in ${file}, e.g. the buyer's:\n${blocks.at(-2)}\n`;
}

/** With `evm`, runs on that chain and leaves it running (a test inspects it afterwards). */
export async function runLocalEconomy(o: SwarmOptions, e: EconomyOptions, given?: LocalEvm, dashboard?: DashboardHooks): Promise<EconomyResult> {
  const say = (line: string) => !o.quiet && process.stdout.write(line);
  say('starting a local EVM and deploying the contracts… ');
  // With a dashboard, one account after the workers' is its user's own.
  const needed = FIRST_WORKER + o.workers + (dashboard ? 1 : 0);
  const evm = given ?? (await startLocalEvm({ accounts: needed }));
  if (evm.accounts.length < needed) throw new Error(`the chain has ${evm.accounts.length} dev accounts; ${needed} are needed`);
  const you = dashboard && evm.accounts[FIRST_WORKER + o.workers].address;
  let opened: { close(): Promise<void> } | undefined;
  let store: RunStore | undefined;
  try {
    const { addresses, as } = await deployLocal(evm);
    say(`registry ${addresses.registry}, tokens ${addresses.tokens} on ${evm.rpcUrl}\n`);
    const run: RunConfig = { ...(await runConfig(o)), serve: true };
    const { runId, target } = await openRunOnChain(as(DESIGNER), run, e);
    // Where a volunteer finds the run's text: this machine's file (a public run lists a public URL).
    await as(DESIGNER).listCorpus(runId, pathToFileURL(resolve(o.data)).href, `0x${run.data.sha256}`);
    say(`run ${runId} opened: stake 1 ETH, compute target ${target} units (risk-adjusted MFLOPs, ${e.risk}), designer share 10 %\n`);
    const at = { chainId: evm.chainId, registry: addresses.registry, tokens: addresses.tokens, runId };
    store = RunStore.fresh(join(o.out, 'coordinator.db'), run);
    const { options, settlement } = settleOnChain({ run, chain: as(COORDINATOR), at, store, risk: e.risk, epochSteps: e.epochSteps, log: (l) => say(`\n${l}\n`) });
    const workerAccounts = Array.from({ length: o.workers }, (_, i) => evm.accounts[FIRST_WORKER + i].address);
    let answer: EconomyResult['answer'] | undefined;
    let report: SettlementReport | undefined;
    const swarm = await runSwarm(o, run, {
      coordinator: options,
      workerEnv: (i) => ({ SWARM_RPC_URL: evm.rpcUrl, SWARM_KEY: evm.keys[FIRST_WORKER + i] }),
      onCoordinator: (c) => settlement.attach(c),
      async onListening(url) {
        await as(COORDINATOR).announceCoordinator(runId, url);
        say(accountsFile(o.out, url, { rpcUrl: evm.rpcUrl, ...at }, evm.keys, workerAccounts.length, e.prompt));
        if (!dashboard) return;
        opened = await dashboard.open({
          coordinator: url,
          chain: { rpcUrl: evm.rpcUrl, chainId: evm.chainId, registry: addresses.registry, tokens: addresses.tokens, runId: runId.toString() },
          // The Runs page lists this chain's runs and a tab may switch to another of them.
          network: { name: 'local', chainId: evm.chainId, rpcUrls: [evm.rpcUrl], registry: addresses.registry, tokens: addresses.tokens, stun: [] },
          // The contributor's and the buyer's test accounts, which the local node signs for; the desktop
          // app pays its gas from the contributor's key.
          localAccounts: [evm.accounts[FIRST_WORKER + o.workers].address, evm.accounts[BUYER].address],
          localKeys: [evm.keys[FIRST_WORKER + o.workers]],
        });
      },
      async afterTraining(c) {
        say('\ntraining done: settling the last epoch on chain…\n');
        report = await settlement.finish({ pollMs: 500, selfClaim: you ? [you] : [] });
        const { spendId, price } = await buyOneSpend(as, workerAccounts, report, runId, e.prompt);
        say(`buyer bought 1 credential for ${formatEther(price)} ETH and spent it (spend ${spendId}); asking the swarm…\n`);
        const a = await requestAnswer(c.url!, WebSocket as unknown as WebSocketConstructor, { spendId, prompt: e.prompt, maxTokens: e.answerTokens });
        answer = { prompt: e.prompt, ...a };
        say(`\n--- answer to ${JSON.stringify(e.prompt)} (receipt ${a.answerHash.slice(0, 10)}… on chain) ---\n${e.prompt}${a.text}\n---\n`);
        if (dashboard) {
          say('the swarm keeps serving: claim, buy and spend in the dashboard; Ctrl-C stops everything\n');
          await dashboard.until;
        }
      },
    });
    if (swarm.stopped && !report)
      stoppedEarly(
        o.out,
        { addresses, runId, swarm },
        workerAccounts.map((account) => ({ account, units: settlement.units(account) })),
        say,
      );
    const workers = await ownership(as(ADMIN), runId, workerAccounts, report!);
    say(ownershipTable(workers, report!));
    const result: EconomyResult = { addresses, runId, swarm, settlement: report!, answer: answer!, workers };
    writeEconomy(o.out, result);
    return result;
  } finally {
    await opened?.close();
    // Closed, the store folds its write-ahead log back in (no coordinator.db-wal left behind).
    store?.close();
    if (!given) await evm.stop();
  }
}

const writeEconomy = (out: string, result: object) => {
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'economy.json'),
    JSON.stringify(result, (_, v) => (typeof v === 'bigint' ? v.toString() : v), 2),
  );
};

/** Ctrl-C ended `npm start` before training did. */
export class StoppedEarly extends Error {
  override name = 'StoppedEarly';
}

/**
 * A run stopped before its end: the units each worker earned so far, in the table and economy.json.
 * The run never reached its compute target, so none became ownership.
 */
function stoppedEarly(out: string, base: Pick<EconomyResult, 'addresses' | 'runId' | 'swarm'>, units: { account: Address; units: bigint }[], say: (line: string) => void): never {
  const step = base.swarm.loss.at(-1)?.[0] ?? 0;
  const rows = units.map((u) => `  ${u.account}  ${u.units.toString().padStart(12)} units\n`);
  say(
    [
      `\nstopped at step ${step} of ${base.swarm.run.steps}, before training ended: the run did not reach its compute target, so no ownership was issued. Units each worker earned:\n`,
      ...rows,
    ].join(''),
  );
  writeEconomy(out, { ...base, stoppedEarly: { step, units } });
  throw new StoppedEarly(`stopped at step ${step} of ${base.swarm.run.steps}`);
}

export const START_USAGE = `npm start -- [--epoch-steps 25 --risk exp:4 --prompt TEXT --answer-tokens N --challenge-window S --port 8080] and the swarm's ${SWARM_USAGE.replace('npm run swarm -- ', '')}`;

export function parseEconomyArgs(argv: string[]): { swarm: SwarmOptions; economy: EconomyOptions; port: number } {
  const flags = ['epoch-steps', 'risk', 'prompt', 'answer-tokens', 'challenge-window', 'port'] as const;
  // Not strict: the swarm's flags pass through to parseSwarmArgs, which is.
  const { values, tokens } = parseArgs({ args: argv, options: stringOptions(flags), strict: false, tokens: true });
  const rest = tokens
    .filter((t) => t.kind !== 'option' || !(flags as readonly string[]).includes(t.name))
    .flatMap((t) => (t.kind === 'option' ? [t.rawName, ...(t.value !== undefined ? [t.value] : [])] : t.kind === 'positional' ? [t.value] : []));
  const e = { ...ECONOMY_DEFAULTS };
  if (values['epoch-steps'] !== undefined) e.epochSteps = Math.max(1, intFlag('epoch-steps', values['epoch-steps']));
  if (values['answer-tokens'] !== undefined) e.answerTokens = intFlag('answer-tokens', values['answer-tokens']);
  if (values['challenge-window'] !== undefined) e.challengeWindow = intFlag('challenge-window', values['challenge-window']);
  if (typeof values.risk === 'string') e.risk = values.risk;
  if (typeof values.prompt === 'string') e.prompt = values.prompt;
  parseRisk(e.risk); // fail fast with its message
  const port = values.port === undefined ? DEFAULT_DASHBOARD_PORT : intFlag('port', values.port);
  return { swarm: parseSwarmArgs(rest), economy: e, port };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { swarm, economy, port } = readFlags('npm start', START_USAGE, () => parseEconomyArgs(process.argv.slice(2)));
  buildDashboard('npm start'); // the contracts' ABIs are built by the npm script before: this module imports them
  let interrupted = false;
  const until = new Promise<void>((resolve) =>
    // Kept, not once: a terminal's Ctrl-C reaches this process and tsx above it, which passes it on
    // again; with no listener left the second would kill the process before it says what was earned.
    process.on('SIGINT', () => {
      if (interrupted) return;
      interrupted = true;
      process.stdout.write('\nCtrl-C: stopping the swarm, the dashboard and the chain…\n');
      resolve();
    }),
  );
  const say = (line: string) => process.stdout.write(line);
  runLocalEconomy(swarm, economy, undefined, { until, open: (config) => openDashboard(config, { dataFile: swarm.data, port, say }) }).then(
    () => process.exit(interrupted ? 130 : 0),
    (err: unknown) => {
      // A run stopped early has said what it earned; anything else is said, Ctrl-C or not.
      if (!(err instanceof StoppedEarly)) console.error(`\nerror: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(interrupted ? 130 : 1);
    },
  );
}
