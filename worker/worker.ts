// `npm run worker -- --coordinator ws://HOST:PORT [--data FILE] [--name NAME] [--extra-warmup N]`: a headless peer.
// It detects its GPU, registers, gets a stage of the run, opens WebRTC data channels to its
// neighbours, trains its block in the pipeline and reports progress until the run ends.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import os from 'node:os';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { privateKeyToAccount } from 'viem/accounts';
import { BlockRuntime } from '../shared/engine/block-runtime.js';
import { ChainEnvSchema } from '../shared/chain/config.js';
import { connectChain } from '../shared/chain/connect.js';
import { decodeText, encodeText } from '../shared/engine/data.js';
import { dtypeOf } from '../shared/wire/codec.js';
import { CoordinatorClient, type WebSocketConstructor } from '../shared/swarm/coordinator-client.js';
import { DEFAULT_RUN, detectGpu, verdict } from '../shared/engine/gpu-detect.js';
import { stageConfigs } from '../shared/swarm/partition.js';
import { ReplicaAverager } from '../shared/peer/replicas.js';
import { oneFOneB, slotsNeeded } from '../shared/peer/schedule.js';
import { PipelineStage } from '../shared/peer/stage.js';
import { type ServerMessageOf, formatIssues } from '../shared/swarm/protocol.js';
import { FrameKind } from '../shared/wire/frame.js';
import { nodeGPU, openNodeGpu } from './node-gpu.js';
import { rtcPeer, type RtcPeer } from './node-rtc.js';
import { DEFAULT_DATA, runCorpus, runLearningRate, trainBatch, valBatch } from './run-data.js';

const { values: args } = parseArgs({
  options: {
    coordinator: { type: 'string' },
    data: { type: 'string', default: DEFAULT_DATA },
    name: { type: 'string', default: `${os.hostname()}-${process.pid}` },
    quiet: { type: 'boolean', default: false },
    /** Where to write this peer's loss curves and stats at the end (the local launcher reads them). */
    metrics: { type: 'string' },
    'extra-warmup': { type: 'string', default: '0' },
    /**
     * Skip the start-up measurements (the GPU benchmark and matmul autotuning): with a cold shader
     * cache and several workers sharing a CPU they take minutes and measure the contention.
     */
    'quick-start': { type: 'boolean', default: false },
    /** Write the boundary tensors of step 1 as sent and as received (for end-to-end checks). */
    dump: { type: 'string' },
    /** Where this peer keeps its settlement proofs (default runs/proofs/ACCOUNT-runID.json). */
    proofs: { type: 'string' },
  },
  strict: true,
});

function say(line: string): void {
  if (!args.quiet) process.stdout.write(line);
}

/** Files named by the boundary they cross, so a sender's and a receiver's dump pair up. */
function dumpBoundary(dir: string, stage: number) {
  mkdirSync(dir, { recursive: true });
  return (side: 'sent' | 'received', kind: number, step: number, mb: number, t: Float32Array) => {
    if (step !== 1) return;
    // Activations cross from stage s to s+1, gradients from s to s−1: name the boundary by its lower stage.
    const forward = kind !== FrameKind.Gradient;
    const boundary = forward === (side === 'sent') ? stage : stage - 1;
    writeFileSync(join(dir, `b${boundary}-k${kind}-mb${mb}-${side}.f32`), t);
  };
}

/** This peer's payout key and RPC endpoint, from the environment (never from code or flags). */
function chainSettings() {
  const r = ChainEnvSchema.pick({ SWARM_RPC_URL: true, SWARM_KEY: true }).partial().safeParse({ SWARM_RPC_URL: process.env.SWARM_RPC_URL || undefined, SWARM_KEY: process.env.SWARM_KEY || undefined });
  if (!r.success) throw new Error(`chain configuration: ${formatIssues('env', r.error)}`);
  const key = r.data.SWARM_KEY as `0x${string}` | undefined;
  return { rpcUrl: r.data.SWARM_RPC_URL, key, account: key && privateKeyToAccount(key).address };
}

/** Join the run on chain with this peer's own key, so its verified work can be claimed. */
async function joinRun(chain: NonNullable<ServerMessageOf<'welcome'>['chain']>, s: ReturnType<typeof chainSettings>): Promise<void> {
  if (!s.key || !s.rpcUrl) {
    say(`the run settles on chain ${chain.chainId}, but SWARM_KEY and SWARM_RPC_URL are not both set: this peer's work will not earn ownership\n`);
    return;
  }
  const c = await connectChain({ ...chain, rpcUrl: s.rpcUrl, runId: BigInt(chain.runId), key: s.key } as Parameters<typeof connectChain>[0]);
  if (!(await c.joined(BigInt(chain.runId), s.account!))) await c.join(BigInt(chain.runId));
  say(`joined run ${chain.runId} on chain ${chain.chainId} as ${s.account}\n`);
}

async function main(): Promise<void> {
  if (!args.coordinator) throw new Error('--coordinator ws://HOST:PORT is required');
  const chainCfg = chainSettings();
  const gpu = await openNodeGpu();
  const report = await detectGpu(nodeGPU(), { name: `node ${process.version}`, totalMemoryBytes: os.totalmem(), runtime: 'node' }, { benchSize: 128, benchmark: !args['quick-start'] });
  const fit = verdict(report, DEFAULT_RUN);
  if (!fit.ok) throw new Error(`this machine cannot train: ${fit.text}`);
  const capability = {
    adapter: report.adapter?.description || 'unknown',
    kind: report.adapter?.kind ?? 'unknown',
    gflops: report.bench?.matmulGflops ?? 0,
    memoryBytes: report.budget?.bytes ?? 0,
    maxLayers: fit.layers,
  };
  const client = new CoordinatorClient(args.coordinator, WebSocket as unknown as WebSocketConstructor);
  let status = { step: 0, loss: undefined as number | undefined, valLoss: undefined as number | undefined, tokensPerSec: 0, busyFraction: 0 };
  let links: RtcPeer[] = [];
  const bytes = () => ({
    bytesSent: links.reduce((s, l) => s + l.link.bytesSent, 0),
    bytesReceived: links.reduce((s, l) => s + l.link.bytesReceived, 0),
  });
  const heartbeat = () =>
    client.send({
      type: 'heartbeat',
      step: status.step,
      ...(status.loss !== undefined && { loss: status.loss }),
      ...(status.valLoss !== undefined && { valLoss: status.valLoss }),
      tokensPerSec: status.tokensPerSec,
      busyFraction: Math.min(1, status.busyFraction),
      ...bytes(),
    });

  const stopped = new Promise<string>((resolve) => client.on('stop', (m) => resolve(m.reason)));
  client.on('peer-lost', (m) => say(`\npeer ${m.peerId} lost: ${m.reason}\n`));
  client.on('error', (m) => say(`\ncoordinator: ${m.message}\n`));
  const assigned = new Promise<ServerMessageOf<'assign'>>((resolve) => client.on('assign', resolve));
  const started = new Promise<void>((resolve) => client.on('start', () => resolve()));
  const { peerId, chain } = await client.connect({ name: args.name, capability, ...(chainCfg.account && { account: chainCfg.account }) });
  // Heartbeats first: joining on chain waits for a block, and silence would mark us lost.
  const beat = setInterval(heartbeat, 2000);
  say(`registered as ${peerId} (${capability.adapter}, ${capability.gflops.toFixed(1)} GFLOP/s)\n`);
  if (chain) {
    keepProofs(client, chain, args.proofs ?? join('runs', 'proofs', `${chainCfg.account ?? peerId}-run${chain.runId}.json`));
    await joinRun(chain, chainCfg);
  }

  const a = await Promise.race([assigned, stopped.then((r) => Promise.reject(new Error(`run stopped before assignment: ${r}`)))]);
  const run = a.run;
  const S = run.stages;
  const R = a.peers.filter((p) => p.stage === 0).length;
  const corpus = runCorpus(run, args.data);
  const subspace = run.codec.kind === 'subspace' ? { k: run.codec.k, seed: run.seed } : undefined;
  const cfg = stageConfigs({ ...run.model, subspace }, run.layersPerStage)[a.stage];
  say(`stage ${a.stage}/${S} replica ${a.replica}: ${cfg.nLayer} layer(s)${cfg.hasEmbedding ? ' + embedding' : ''}${cfg.hasHead ? ' + head' : ''}; tuning kernels…\n`);
  // Forwards in flight beyond plain 1F1B can hide a gradient's round trip over a slow network;
  // on loopback they only cost activation memory, so the default is none.
  const extraWarmup = Number(args['extra-warmup']);
  if (!Number.isInteger(extraWarmup) || extraWarmup < 0) throw new Error('--extra-warmup must be a non-negative integer');
  const slots = slotsNeeded(oneFOneB(a.stage, S, run.microbatches, extraWarmup));
  const runtime = await BlockRuntime.create(gpu, cfg, { seed: run.seed, optimizer: run.optimizer, slots, autotune: !args['quick-start'] });

  // WebRTC to the neighbours: the lower peer id initiates, so exactly one side does.
  const peerOf = (stage: number, replica: number) => a.peers.find((p) => p.stage === stage && p.replica === replica);
  const neighbours = {
    prev: a.stage > 0 ? peerOf(a.stage - 1, a.replica) : undefined,
    next: a.stage < S - 1 ? peerOf(a.stage + 1, a.replica) : undefined,
    replicas: a.peers.filter((p) => p.stage === a.stage && p.replica !== a.replica),
  };
  const rtc = new Map<string, RtcPeer>();
  const onError = (e: Error) => say(`\nlink error: ${e.message}\n`);
  for (const p of [neighbours.prev, neighbours.next, ...neighbours.replicas]) {
    if (!p) continue;
    rtc.set(p.peerId, rtcPeer(peerId < p.peerId, (data) => client.send({ type: 'signal', to: p.peerId, data }), onError));
  }
  client.on('signal', (m) => rtc.get(m.from)?.signal(m.data));
  links = [...rtc.values()];
  await runtime.warmUp();
  await Promise.all(links.map((l) => l.connected));
  client.send({ type: 'ready' });
  await Promise.race([started, stopped.then((r) => Promise.reject(new Error(`run stopped: ${r}`)))]);

  const stage = new PipelineStage({
    runtime,
    stage: a.stage,
    stages: S,
    microbatches: run.microbatches,
    batch: (step, mb, split) => (split === 'train' ? trainBatch(run, corpus, R, a.replica, step, mb) : valBatch(run, corpus, mb)),
    dtype: dtypeOf(run.codec),
    extraWarmup,
    prev: neighbours.prev && rtc.get(neighbours.prev.peerId)!.link,
    next: neighbours.next && rtc.get(neighbours.next.peerId)!.link,
    lr: (step) => runLearningRate(run, step),
    now: () => performance.now(),
    onBoundary: args.dump ? dumpBoundary(args.dump, a.stage) : undefined,
  });
  const averager = new ReplicaAverager(runtime, a.replica, neighbours.replicas.map((p) => ({ replica: p.replica, link: rtc.get(p.peerId)!.link })));
  let stop: string | undefined;
  void stopped.then((r) => (stop = r));
  const t0 = performance.now();
  let busy = 0;
  const curves = { train: [] as [number, number][], val: [] as [number, number][] };
  const tokensPerStep = run.microbatches * run.model.batch * run.model.seq;
  for (let step = 1; step <= run.steps && !stop; step++) {
    const r = await stage.trainStep(step);
    busy += r.busyMs;
    if (R > 1 && step % run.averageEvery === 0) await averager.average(step);
    const evalNow = run.evalEvery > 0 && run.evalBatches > 0 && (step % run.evalEvery === 0 || step === run.steps);
    if (evalNow && a.replica === 0) {
      const v = await stage.evaluate(step, run.evalBatches);
      if (v !== undefined) curves.val.push([step, (status.valLoss = v)]);
    }
    if (r.loss !== undefined) curves.train.push([step, r.loss]);
    const secs = (performance.now() - t0) / 1000;
    status = { ...status, step, loss: r.loss ?? status.loss, tokensPerSec: (step * tokensPerStep) / secs, busyFraction: busy / (secs * 1000) };
    // The coordinator credits a lane's step once every stage of the lane reported it (and closes
    // epochs from that), so each step is reported as it finishes.
    heartbeat();
    say(
      `\rstep ${step}/${run.steps}${status.loss !== undefined ? ` | loss ${status.loss.toFixed(4)}` : ''}${status.valLoss !== undefined ? ` | val ${status.valLoss.toFixed(4)}` : ''}` +
        ` | ${Math.round(status.tokensPerSec)} tok/s | busy ${(status.busyFraction * 100).toFixed(0)}% | sent ${(bytes().bytesSent / 1e6).toFixed(2)} MB recv ${(bytes().bytesReceived / 1e6).toFixed(2)} MB   `,
    );
  }
  heartbeat();
  const w = stage.wire;
  const stats = {
    stage: a.stage,
    replica: a.replica,
    steps: status.step,
    wallMs: performance.now() - t0,
    busyMs: busy,
    fwdBytesSent: w.fwdSent,
    bwdBytesSent: w.bwdSent,
    fwdTokens: w.fwdTokens,
    bwdTokens: w.bwdTokens,
    averagingBytesSent: averager.bytesSent,
    rejectedFrames: stage.rejected,
    layersHeld: cfg.nLayer,
    paramsHeld: runtime.layout.count,
    ...(status.loss !== undefined && { finalTrainLoss: status.loss }),
  };
  if (args.metrics) writeFileSync(args.metrics, JSON.stringify({ peerId, stage: a.stage, replica: a.replica, ...curves, stats }));
  if (run.serve && !stop) serveQueries(client, stage, corpus);
  client.send({
    type: 'done',
    ...(status.valLoss !== undefined && a.replica === 0 && a.stage === S - 1 && { finalValLoss: status.valLoss }),
    stats,
  });
  say(`\n${stop ? `stopped: ${stop}` : run.serve ? 'trained: serving queries' : 'done'}\n`);
  // A serving peer stays until the coordinator stops the run; otherwise it waits briefly for the stop.
  await (run.serve ? stopped : Promise.race([stopped, new Promise((r) => setTimeout(r, 10_000))]));
  clearInterval(beat);
  for (const l of links) l.destroy();
  client.close();
  runtime.destroy();
  if (stop && stop !== 'run complete') throw new Error(`run stopped: ${stop}`);
}

/**
 * Every settled epoch's proof of this peer's units, kept on its own disk: with them it can claim its
 * ownership (or its share of an abandoned run's stake) even if the coordinator is gone
 * (`npm run wallet -- claim-ownership FILE`).
 */
function keepProofs(client: CoordinatorClient, chain: NonNullable<ServerMessageOf<'welcome'>['chain']>, file: string): void {
  const epochs: Omit<ServerMessageOf<'settled'>, 'type'>[] = [];
  mkdirSync(dirname(file), { recursive: true });
  client.on('settled', ({ type: _, ...m }) => {
    epochs.push(m);
    writeFileSync(`${file}.tmp`, JSON.stringify({ ...chain, epochs }, null, 2));
    renameSync(`${file}.tmp`, file); // a crash mid-write keeps the previous proofs
    say(`\nepoch ${m.epoch} settled: ${m.cumulative} units credited to ${m.account}; proof saved in ${file}\n`);
  });
}

/**
 * After training: every peer of lane 0 takes part in each `generate` the coordinator sends, one at
 * a time; stage 0 turns the prompt into tokens and the generated tokens into the answer.
 */
function serveQueries(client: CoordinatorClient, stage: PipelineStage, corpus: ReturnType<typeof runCorpus>): void {
  let queue = Promise.resolve();
  client.on('generate', (m) => {
    queue = queue.then(async () => {
      const t0 = performance.now();
      try {
        if (stage.runtime.cfg.hasEmbedding) {
          const tokens = await stage.generate(m.requestId, encodeText(corpus, m.prompt), m.maxTokens, { temperature: m.temperature, seed: m.seed >>> 0 });
          client.send({ type: 'generated', requestId: m.requestId, text: decodeText(corpus, tokens) });
        } else {
          await stage.serveGeneration(m.requestId, { maxTokens: m.maxTokens });
        }
        say(`served request ${m.requestId} (${m.maxTokens} tokens) in ${Math.round(performance.now() - t0)} ms\n`);
      } catch (e) {
        const message = (e as Error).message.slice(0, 1000);
        say(`request ${m.requestId} failed: ${message}\n`);
        if (stage.runtime.cfg.hasEmbedding) client.send({ type: 'generated', requestId: m.requestId, error: message });
      }
    });
  });
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`\nworker error: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
