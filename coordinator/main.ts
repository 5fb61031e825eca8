// `npm run coordinator`: serve one run from command-line flags and print progress until it ends.
// A minimal front end for manual runs; launchers use the Coordinator class directly.
//   npm run coordinator -- [--port 8787 --host 127.0.0.1] [--data data/tinyshakespeare.txt]
//     [--stages 2 --min-per-stage 1 --layers 4 --layers-per-stage 2,2]
//     [--d-model 128 --heads 4 --seq 64 --batch 16] [--microbatches 4 --steps 300]
//     [--lr 3e-3 --warmup 30 --average-every 5 --eval-every 50 --eval-batches 8 --seed 1]
//     [--codec fp32|bf16|int8|subspace:k=K:fp32|fp16|int8|int4] [--heartbeat-timeout-ms 10000] [--run-id ID]
//     [--epoch-steps 25 --risk exp:4] [--state runs/ID/coordinator.db]
//     [--cert cert.pem --key key.pem] [--allow-origin https://a.example,https://b.example]
//     [--stun stun:stun.example:3478] [--turn turn:turn.example:3478?transport=udp] (with SWARM_TURN_SECRET)
//     [--public-url wss://coordinator.example:8787] (announced on chain, where volunteers find the run)
// With --cert and --key it serves wss:// (peers refuse plain ws:// to another machine). Browser pages
// may connect from this machine, the desktop app, and the origins --allow-origin names ('*': any).
// Peers behind home NATs connect through --stun and, where no direct path exists, the --turn relay
// (scripts/turn.sh), which shares SWARM_TURN_SECRET with the coordinator: each peer gets a credential
// of its own that expires in a day.
// The run's state, ledger and epochs are kept in --state (SQLite). Started again with the same flags
// (the same --run-id) after a crash, even kill -9, the coordinator resumes the run from there, and
// the workers, which keep trying to reconnect, come back with the states they hold.
// The run's data (its name, SHA-256, length and vocabulary) is read from --data, the same file the
// workers train on. With a chain configured in the environment (SWARM_RPC_URL, SWARM_CHAIN_ID,
// SWARM_REGISTRY, SWARM_TOKENS, SWARM_RUN_ID and SWARM_KEY, the coordinator role's key), verified
// work is settled on chain per epoch, and after training the swarm serves buyers' credential spends
// until Ctrl-C.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { chainConfigFromEnv } from '../shared/chain/config.js';
import { connectChain } from '../shared/chain/connect.js';
import { charCorpus } from '../shared/engine/data.js';
import { DEFAULT_ADAMW } from '../shared/engine/optimizer.js';
import { splitLayers } from '../shared/run/derive.js';
import { parseCodec } from '../shared/wire/codec.js';
import { DEFAULT_DATA, loadText } from '../node/corpus.js';
import { RunStore } from './run-store.js';
import { Coordinator } from './server.js';
import type { Access } from './transport.js';
import type { IceConfig } from './turn-credentials.js';
import { type OnChain, settleOnChain } from './settle-on-chain.js';
import { formatIssues } from '../shared/base/issues.js';
import { type RunConfig, RunConfigSchema } from '../shared/run/config.js';
import { IceServerSchema } from '../shared/swarm/protocol.js';
import { listenError, numberFlag, readFlags, shellLine, stringOptions } from '../node/flags.js';

const defaults = {
  port: '8787',
  host: '127.0.0.1',
  data: DEFAULT_DATA,
  stages: '2',
  'min-per-stage': '1',
  layers: '4',
  'layers-per-stage': '',
  'd-model': '128',
  heads: '4',
  seq: '64',
  batch: '16',
  microbatches: '4',
  steps: '300',
  lr: String(DEFAULT_ADAMW.lr),
  warmup: '30',
  'average-every': '5',
  'eval-every': '50',
  'eval-batches': '8',
  seed: '1',
  codec: 'subspace:k=16:int8',
  'heartbeat-timeout-ms': '10000',
  'run-id': `run-${Date.now().toString(36)}`,
  'epoch-steps': '25',
  risk: 'exp:4',
  state: '',
  cert: '',
  key: '',
  'allow-origin': '',
  stun: '',
  turn: '',
  'public-url': '',
};
type Flag = keyof typeof defaults;

interface Flags {
  str(k: Flag): string;
  num(k: Flag): number;
}

/** The flags read as numbers. */
const NUMERIC: readonly Flag[] = [
  'average-every',
  'batch',
  'd-model',
  'epoch-steps',
  'eval-batches',
  'eval-every',
  'heads',
  'heartbeat-timeout-ms',
  'layers',
  'lr',
  'microbatches',
  'min-per-stage',
  'port',
  'seed',
  'seq',
  'stages',
  'steps',
  'warmup',
];

/** What a flag without a fixed default takes, as the usage line shows it. */
const PLACEHOLDER: Partial<Record<Flag, string>> = {
  data: 'FILE',
  'run-id': 'ID',
  state: 'FILE',
  cert: 'FILE',
  key: 'FILE',
  'allow-origin': 'ORIGIN',
  stun: 'URL',
  turn: 'URL',
  'public-url': 'wss://HOST:PORT',
  'layers-per-stage': 'N,N',
};
const USAGE = `npm run coordinator -- ${(Object.keys(defaults) as Flag[]).map((k) => `[--${k} ${PLACEHOLDER[k] ?? defaults[k]}]`).join(' ')}`;

/** The flags, each number checked now: a bad one is one line naming it and the usage (readFlags), before anything starts. */
function coordinatorFlags(): Flags {
  return readFlags('npm run coordinator', USAGE, () => {
    const { values } = parseArgs({ options: stringOptions(Object.keys(defaults) as Flag[]), strict: true });
    const str = (k: Flag): string => values[k] ?? defaults[k];
    const num = (k: Flag) => numberFlag(k, str(k));
    for (const k of NUMERIC) num(k);
    return { str, num };
  });
}

/** The run the flags describe; its data facts (name, SHA-256, length, vocabulary) from --data. */
async function runFromFlags({ str, num }: Flags): Promise<RunConfig> {
  const text = await loadText(str('data'));
  const stages = num('stages');
  const nLayer = num('layers');
  const parsed = RunConfigSchema.safeParse({
    runId: str('run-id'),
    model: { vocab: charCorpus(text.text).vocab.length, dModel: num('d-model'), nHead: num('heads'), nLayer, seq: num('seq'), batch: num('batch') },
    stages,
    layersPerStage: str('layers-per-stage') ? str('layers-per-stage').split(',').map(Number) : splitLayers(nLayer, stages),
    microbatches: num('microbatches'),
    minPerStage: num('min-per-stage'),
    steps: num('steps'),
    seed: num('seed'),
    data: { name: basename(str('data')), sha256: text.sha256, chars: text.chars },
    codec: parseCodec(str('codec')),
    optimizer: { ...DEFAULT_ADAMW, lr: num('lr'), warmup: num('warmup') },
    averageEvery: num('average-every'),
    evalEvery: num('eval-every'),
    evalBatches: num('eval-batches'),
  });
  if (!parsed.success) throw new Error(`invalid run: ${formatIssues('run', parsed.error)}`);
  return parsed.data;
}

/** With a chain in the environment, settle there and serve spends after training (run.serve). */
async function onChainFromEnv(run: RunConfig, store: RunStore, { str, num }: Flags, log: (line: string) => void): Promise<OnChain | undefined> {
  const cfg = chainConfigFromEnv(process.env);
  if (!cfg) return undefined;
  if (!cfg.key) throw new Error("SWARM_KEY (the coordinator role's key) is required to settle on chain");
  const chain = await connectChain(cfg);
  run.serve = true;
  log(`settling on chain ${cfg.chainId} (registry ${cfg.registry}, run ${cfg.runId}) as ${chain.account}`);
  return settleOnChain({ run, chain, at: cfg, store, risk: str('risk'), epochSteps: num('epoch-steps'), log });
}

/** TLS from --cert and --key (PEM files, both or neither) and the pages --allow-origin lets in. */
function accessFromFlags({ str }: Flags): Access {
  const origins = str('allow-origin').split(',').filter(Boolean);
  if (!str('cert') && !str('key')) return { origins };
  if (!str('cert') || !str('key')) throw new Error('--cert and --key go together: the certificate and its private key, PEM files');
  const read = (flag: 'cert' | 'key'): string => {
    try {
      return readFileSync(str(flag), 'utf8');
    } catch (e) {
      throw new Error(`could not read --${flag} ${str(flag)}: ${(e as Error).message}`);
    }
  };
  return { tls: { cert: read('cert'), key: read('key') }, origins };
}

/** STUN and TURN servers from --stun and --turn; TURN's shared secret from the environment, never a flag (ps shows flags). */
function iceFromFlags({ str }: Flags): IceConfig {
  const list = (flag: 'stun' | 'turn') => {
    const urls = str(flag).split(',').filter(Boolean);
    const checked = IceServerSchema.safeParse({ urls });
    if (urls.length && !checked.success) throw new Error(formatIssues(`--${flag}`, checked.error));
    return urls;
  };
  const secret = process.env.SWARM_TURN_SECRET;
  if (list('turn').length && !secret) throw new Error('--turn needs SWARM_TURN_SECRET, the secret the TURN server was started with (scripts/turn.sh)');
  return { stun: list('stun'), ...(secret && list('turn').length && { turn: { urls: list('turn'), secret } }) };
}

/** This command again, naming the run it started (its default --run-id is new each time). */
function resumeCommand(runId: string): string {
  const argv = process.argv.slice(2);
  const named = argv.some((a) => a === '--run-id' || a.startsWith('--run-id='));
  return shellLine(['npm', 'run', 'coordinator', '--', ...argv, ...(named ? [] : ['--run-id', runId])]);
}

/** A progress line every 2 s, printed when it changed. */
function printProgress(coord: Coordinator): ReturnType<typeof setInterval> {
  let last = '';
  return setInterval(() => {
    const p = coord.progress();
    const f = (x: number | undefined, d = 4): string => (x === undefined ? '–' : x.toFixed(d));
    const live = p.peers.filter((q) => q.state !== 'gone');
    const line = `[${p.phase}] step ${p.step}/${p.steps}  loss ${f(p.loss)}  val ${f(p.valLoss)}  tok/s ${f(p.tokensPerSec, 0)}  peers ${live.map((q) => `${q.peerId}:s${q.stage}:${q.state}`).join(' ')}`;
    if (line !== last) console.log((last = line));
  }, 2000);
}

async function main(): Promise<void> {
  const flags = coordinatorFlags();
  const run = await runFromFlags(flags);
  const log = (line: string) => console.log(`[coordinator] ${line}`);
  const store = RunStore.open(flags.str('state') || `runs/${run.runId}/coordinator.db`, run);
  const resumed = store.control();
  if (resumed) log(`resuming run ${run.runId} from ${store.path}: step ${resumed.step} of ${run.steps} committed (${resumed.phase})`);
  if (resumed?.phase === 'finished' || resumed?.phase === 'stopped') {
    log(`run ${run.runId} is ${resumed.phase} (${resumed.reason}); start a new run with another --run-id`);
    return store.close();
  }
  // The store keeps the run as the flags describe it, before run.serve is set for a chain.
  const onChain = await onChainFromEnv(run, store, flags, log);
  const coord = new Coordinator({
    run,
    heartbeatTimeoutMs: flags.num('heartbeat-timeout-ms'),
    log,
    store,
    access: accessFromFlags(flags),
    ice: iceFromFlags(flags),
    ...onChain?.options,
  });
  onChain?.settlement.attach(coord);
  const timer = printProgress(coord);
  // The first reason to end decides the exit code: Ctrl-C's close also rejects `trained`, which must not turn 130 into 1.
  let ending = false;
  const end = async (code: number): Promise<void> => {
    if (ending) return;
    ending = true;
    clearInterval(timer);
    await coord.close();
    store.close();
    process.exit(code);
  };
  process.on('SIGINT', () => {
    if (coord.phase !== 'finished' && coord.phase !== 'stopped') {
      log(
        `stopped at step ${coord.control.step}; the run is kept in ${store.path}: resume it with  ${resumeCommand(run.runId)}  (workers keep trying to reconnect for 10 minutes)`,
      );
    }
    void end(130);
  });
  const fail = (what: string) => (e: Error) => {
    if (ending) return;
    console.error(`${what}: ${e.message}`);
    void end(1);
  };
  coord.trained.then((t) => {
    log(`training complete at step ${t.step}${t.valLoss !== undefined ? `, validation loss ${t.valLoss.toFixed(4)}` : ''}`);
    if (!onChain) return void end(0);
    onChain.settlement.finish().then((s) => log(`ownership delivered to ${s.units.length} contributors; serving credential spends until Ctrl-C`), fail('settlement failed'));
  }, fail('run ended'));
  await coord.listen(flags.num('port'), flags.str('host')).catch((e: unknown) => {
    throw listenError(e, 'port');
  });
  // Where volunteers reach it (a name its certificate is for, not the address it binds), on chain.
  const publicUrl = flags.str('public-url');
  if (publicUrl && !publicUrl.startsWith('wss://')) throw new Error(`--public-url ${publicUrl}: volunteers reach a coordinator over wss:// only`);
  if (publicUrl && !onChain) throw new Error('--public-url is announced on chain: configure the chain (SWARM_RPC_URL and the rest, below)');
  if (publicUrl && onChain) await onChain.announce(publicUrl);
  log(`workers join with: npm run worker -- --coordinator ${publicUrl || coord.url} --data ${flags.str('data')}`);
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(2);
});
