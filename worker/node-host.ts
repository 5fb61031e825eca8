// The Node host of the peer session: Dawn for WebGPU, simple-peer over @roamhq/wrtc for WebRTC, the
// `ws` WebSocket, files for storage and the corpus, and a payout key from the environment.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { privateKeyToAccount } from 'viem/accounts';
import WebSocket from 'ws';
import { ChainEnvSchema } from '../shared/chain/config.js';
import { connectChain } from '../shared/chain/connect.js';
import { payoutWallet } from '../shared/chain/owner.js';
import { detectGpu } from '../shared/engine/gpu-detect.js';
import type { PeerHost, PeerWallet } from '../shared/peer/host.js';
import type { WebSocketConstructor } from '../shared/swarm/coordinator-client.js';
import { nodeGPU, openNodeGpu } from './node-gpu.js';
import { nodeRtc } from './node-rtc.js';
import { fileStorage } from './node-storage.js';
import { formatIssues } from '../shared/base/issues.js';
import { DEFAULT_RUN, verdict } from '../shared/engine/gpu-verdict.js';

export interface NodeHostOptions {
  /** The training text (checked against the run's hash when a run is assigned). */
  data: string;
  /** Where this peer keeps its stage states and settlement proofs. */
  stateDir: string;
  /** Skip the start-up benchmark (its speed is only a hint: the swarm measures the real one). */
  benchmark: boolean;
  env: NodeJS.ProcessEnv;
  log(line: string): void;
}

export function nodeHost(o: NodeHostOptions): PeerHost {
  return {
    async gpu() {
      const gpu = await openNodeGpu();
      const report = await detectGpu(nodeGPU(), { name: `node ${process.version}`, totalMemoryBytes: os.totalmem(), runtime: 'node' }, { benchSize: 128, benchmark: o.benchmark });
      return { gpu, report, verdict: verdict(report, DEFAULT_RUN) };
    },
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    rtc: nodeRtc,
    async loadCorpus() {
      try {
        return new Uint8Array(await readFile(o.data));
      } catch (e) {
        throw new Error(`cannot read the training text ${o.data}: ${(e as Error).message}`);
      }
    },
    storage: fileStorage(o.stateDir),
    wallet: envWallet(o.env),
    now: () => performance.now(),
    log: o.log,
  };
}

/** The payout account from SWARM_KEY, joining runs through SWARM_RPC_URL; none without both. */
function envWallet(env: NodeJS.ProcessEnv): PeerWallet | undefined {
  const r = ChainEnvSchema.pick({ SWARM_RPC_URL: true, SWARM_KEY: true })
    .partial()
    .safeParse({ SWARM_RPC_URL: env.SWARM_RPC_URL || undefined, SWARM_KEY: env.SWARM_KEY || undefined });
  if (!r.success) throw new Error(`chain configuration: ${formatIssues('env', r.error)}`);
  const { SWARM_KEY: key, SWARM_RPC_URL: rpcUrl } = r.data;
  if (!key || !rpcUrl) return undefined;
  const signer = privateKeyToAccount(key as `0x${string}`);
  return {
    account: signer.address,
    signMessage: (message) => signer.signMessage({ message }),
    async joinRun(chain) {
      const cfg = { chainId: chain.chainId, registry: chain.registry as `0x${string}`, tokens: chain.tokens as `0x${string}`, rpcUrl, runId: BigInt(chain.runId) };
      await payoutWallet(await connectChain({ ...cfg, key: key as `0x${string}` })).joinRun(chain);
    },
  };
}
