// `npm run bench:scale [-- --peers 250,500,1000,2000 --window-s 30 --joins-per-min 100 --profile DIR]`: how many
// peers one coordinator process holds. Simulated peers (real WebSocket clients speaking the
// protocol, with their own keys; no GPU) connect to `npm run coordinator` in a child process, get
// placed, say they are ready, heartbeat every 2 s and relay signals to neighbours; meanwhile peers
// leave and new ones join at `joins-per-min`. For each size: p50/p99 latency of a signal relayed
// from one peer to another and of an assignment (connect → assign), messages/s through the
// coordinator, its CPU (fraction of one core) and RSS. Writes bench/results/scale.json.
//
// The run never starts training (its minimum of peers per stage is out of reach), so the figures are
// the coordinator's control plane alone. The load generator shares this 2-core machine: its own
// event-loop delay is reported too, as it adds to the latencies it measures.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { CoordinatorClient, type WebSocketConstructor } from '../shared/swarm/coordinator-client.js';
import { PeerKey } from '../shared/swarm/identity.js';
import { applyViewChange, type PeerInfo } from '../shared/swarm/protocol.js';

const STAGES = 8;
const HEARTBEAT_MS = 2000;
/** Each peer relays a signal to a random neighbour this often. */
const PING_MS = 5000;
/** Peers connecting at once while a size is being reached. */
const CONNECT_BATCH = 50;

export interface ScaleRun {
  peers: number;
  joins_per_min: number;
  relay_p50_ms: number;
  relay_p99_ms: number;
  assign_p99_ms: number;
  messages_per_s: number;
  cpu_fraction: number;
  rss_mib: number;
  /** Relays that arrived in the window, and those sent in it that never did. */
  relays: number;
  relays_lost: number;
  /** Relays the coordinator refused, and the first reason. */
  relays_refused: number;
  /** Peers that left and joined again in the window. */
  churned: number;
  /** Messages the coordinator could not send (e.g. a membership list above the message size cap). */
  send_failures: number;
  generator_loop_p99_ms: number;
  notes: string;
}

interface Peer {
  client: CoordinatorClient;
  members: PeerInfo[];
  stage?: number;
  timers: ReturnType<typeof setInterval>[];
}

interface Counters {
  messages: number;
  relays: number[];
  assigns: number[];
  /** Pings in flight: when sent, and to whom. */
  pending: Map<string, { at: number; to: string }>;
  /** Peers that left: a ping to one cannot arrive, and is not the coordinator's loss. */
  left: Set<string>;
  /** Why the coordinator refused to relay a ping (a target that has just left races the news of it). */
  refused: string[];
  /** The window is over: no new pings, so those in flight can drain before any is counted lost. */
  draining: boolean;
}

/** A coordinator process whose run cannot start: placement, heartbeats and relays only. */
async function startCoordinator(dir: string, profileDir?: string): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  const script = fileURLToPath(new URL('../coordinator/main.ts', import.meta.url));
  const args = ['--port', '0', '--stages', String(STAGES), '--layers', String(STAGES), '--min-per-stage', '100000'];
  const profile = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', script, ...args, '--run-id', `scale-${Date.now()}`, '--state', join(dir, 'coordinator.db')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-200_000)));
  child.stderr!.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-200_000)));
  let listening: RegExpExecArray | null = null;
  for (const deadline = Date.now() + 60_000; !(listening = /workers join with: .* --coordinator (ws:\/\/\S+)/.exec(out)); await sleep(100)) {
    if (Date.now() > deadline) throw new Error(`the coordinator did not listen within 60 s:\n${out}`);
  }
  return { child, url: listening[1], output: () => out };
}

/** One simulated peer: registers with its own key, says it is ready, heartbeats, and relays pings to neighbours. */
async function simulatedPeer(url: string, name: string, c: Counters): Promise<Peer> {
  const client = new CoordinatorClient(url, WebSocket as unknown as WebSocketConstructor);
  const peer: Peer = { client, members: [], timers: [] };
  const t0 = performance.now();
  client.on('assign', (m) => {
    c.messages++;
    c.assigns.push(performance.now() - t0);
    peer.stage = m.stage;
    peer.members = m.peers;
    client.send({ type: 'ready', step: 0 });
  });
  client.on('peers', (m) => {
    c.messages++;
    peer.members = applyViewChange(peer.members, m);
  });
  client.on('signal', (m) => {
    c.messages++;
    const sent = c.pending.get((m.data as { ping: string }).ping);
    if (sent === undefined) return;
    c.pending.delete((m.data as { ping: string }).ping);
    c.relays.push(performance.now() - sent.at);
  });
  for (const t of ['status', 'peer-lost'] as const) client.on(t, () => c.messages++);
  client.on('error', (m) => {
    c.messages++;
    if (m.ref === 'signal') c.refused.push(m.message);
  });
  const capability = { adapter: 'simulated', kind: 'cpu' as const, gflops: 1, memoryBytes: 1e9, maxLayers: STAGES };
  await client.connect({ name, capability }, { key: await PeerKey.generate() }, { timeoutMs: 60_000 });
  let seq = 0;
  peer.timers.push(
    setInterval(() => {
      c.messages++;
      client.send({ type: 'heartbeat', step: 0, bytesSent: 0, bytesReceived: 0 });
    }, HEARTBEAT_MS),
    setInterval(
      () => {
        const self = client.peerId;
        const near = peer.members.filter((p) => p.peerId !== self && !c.left.has(p.peerId) && peer.stage !== undefined && Math.abs(p.stage - peer.stage) <= 1);
        if (c.draining || near.length === 0 || !client.connected) return;
        const to = near[Math.floor(Math.random() * near.length)].peerId;
        const ping = `${self}:${seq++}`;
        c.pending.set(ping, { at: performance.now(), to });
        c.messages++;
        client.send({ type: 'signal', to, data: { ping } });
      },
      PING_MS * (0.5 + Math.random()),
    ),
  );
  return peer;
}

function leave(p: Peer, c: Counters): void {
  for (const t of p.timers) clearInterval(t);
  const id = p.client.peerId;
  p.client.close();
  if (!id) return;
  c.left.add(id);
  for (const [ping, { to }] of c.pending) if (to === id) c.pending.delete(ping);
}

/** CPU seconds (user + system) and RSS of a process, from /proc. */
function usage(pid: number): { cpuS: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuS: ticks / 100, rssMiB: rss ? Number(rss[1]) / 1024 : Number.NaN };
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reach `n` peers, then measure a window of `windowS` seconds with churn at `joinsPerMin`. */
export async function measure(n: number, windowS: number, joinsPerMin: number, profileDir?: string): Promise<ScaleRun> {
  const dir = mkdtempSync(join(tmpdir(), 'scale-'));
  const coord = await startCoordinator(dir, profileDir);
  const url = coord.url;
  const c: Counters = { messages: 0, relays: [], assigns: [], pending: new Map(), left: new Set(), refused: [], draining: false };
  const peers: Peer[] = [];
  const failures: string[] = [];
  const loop = monitorEventLoopDelay({ resolution: 10 });
  let joined = 0;
  try {
    while (peers.length < n) {
      const batch = Math.min(CONNECT_BATCH, n - peers.length);
      const made = await Promise.allSettled(Array.from({ length: batch }, () => simulatedPeer(url, `sim-${joined++}`, c)));
      for (const m of made) m.status === 'fulfilled' ? peers.push(m.value) : failures.push(m.reason.message);
      if (failures.length > n / 10) throw new Error(`${failures.length} peers could not join: ${failures[0]}`);
      process.stdout.write(`\r  ${peers.length}/${n} peers connected`);
    }
    process.stdout.write('\n');
    await sleep(PING_MS); // every peer has its membership and pings
    c.relays.length = 0;
    c.assigns.length = 0;
    c.pending.clear();
    c.refused.length = 0;
    c.messages = 0;
    loop.enable();
    const before = usage(coord.child.pid!);
    const t0 = performance.now();
    let churned = 0;
    const churn = setInterval(() => {
      churned++;
      const i = Math.floor(Math.random() * peers.length);
      leave(peers[i], c);
      simulatedPeer(url, `sim-${joined++}`, c).then(
        (p) => (peers[i] = p),
        (e: Error) => failures.push(e.message),
      );
    }, 60_000 / Math.max(1, joinsPerMin));
    await sleep(windowS * 1000);
    clearInterval(churn);
    const secs = (performance.now() - t0) / 1000;
    const after = usage(coord.child.pid!);
    loop.disable();
    // Relays in flight arrive (on a loaded 2-core machine one took over 1 s, and counted as lost);
    // pings sent during the drain would still be in flight when counted, so none are.
    c.draining = true;
    await sleep(3000);
    const sendFailures = (coord.output().match(/above the \d+-byte limit/g) ?? []).length;
    return {
      peers: n,
      joins_per_min: joinsPerMin,
      relay_p50_ms: pct(c.relays, 50),
      relay_p99_ms: pct(c.relays, 99),
      assign_p99_ms: pct(c.assigns, 99),
      messages_per_s: c.messages / secs,
      cpu_fraction: (after.cpuS - before.cpuS) / secs,
      rss_mib: after.rssMiB,
      relays: c.relays.length,
      relays_lost: c.pending.size,
      relays_refused: c.refused.length,
      churned,
      send_failures: sendFailures,
      generator_loop_p99_ms: loop.percentile(99) / 1e6,
      notes: [failures.length && `${failures.length} joins failed: ${failures[0]}`, c.refused.length && `relay refused: ${c.refused[0]}`].filter(Boolean).join('; '),
    };
  } finally {
    for (const p of peers) leave(p, c);
    coord.child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 3000));
    coord.child.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      peers: { type: 'string', default: '250,500,1000,2000' },
      'window-s': { type: 'string', default: '30' },
      'joins-per-min': { type: 'string', default: '100' },
      profile: { type: 'string' },
    },
    strict: true,
  });
  const sizes = values.peers.split(',').map(Number);
  const runs: ScaleRun[] = [];
  for (const n of sizes) {
    process.stdout.write(`${n} peers:\n`);
    const r = await measure(n, Number(values['window-s']), Number(values['joins-per-min']), values.profile);
    runs.push(r);
    process.stdout.write(
      `  relay p50 ${r.relay_p50_ms.toFixed(1)} ms, p99 ${r.relay_p99_ms.toFixed(1)} ms (${r.relays_lost} lost); assign p99 ${r.assign_p99_ms.toFixed(0)} ms; ${r.messages_per_s.toFixed(0)} msg/s; coordinator CPU ${(r.cpu_fraction * 100).toFixed(0)} % of a core, RSS ${r.rss_mib.toFixed(0)} MiB; ${r.send_failures} sends failed; generator loop p99 ${r.generator_loop_p99_ms.toFixed(0)} ms${r.notes ? `; ${r.notes}` : ''}\n`,
    );
  }
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'scale.json'), `${JSON.stringify({ runs }, null, 2)}\n`);
  process.stdout.write('wrote bench/results/scale.json\n');
}

if (process.argv[1]?.endsWith('scale.ts')) await main();
