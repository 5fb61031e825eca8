// One swarm of bench/internet.ts, found on chain by every peer: a chain, contracts and a run opened
// with its training text listed at a URL; a coordinator that announces itself on chain; workers
// given only a network file and the run id; a Chromium tab that serves its dashboard on its own
// 127.0.0.1 (cli/tab.ts --network) and finds the run the same way. With `homes`, each peer runs in
// its home's namespace and the coordinator offers STUN and a TURN relay (coturn); without, all
// of it is on loopback.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { appendFileSync, chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { CHROMIUM, launchChromium } from '../../e2e/chromium.js';
import { createPublicClient, createWalletClient, http as viemHttp, parseEther } from 'viem';
import { startLocalEvm } from '../../contracts/local-evm.js';
import { BURST_MS } from '../../coordinator/roster.js';
import type { CommitEvent } from '../../coordinator/run-control.js';
import { type SwarmOptions, runConfig, runSwarm } from '../../cli/swarm.js';
import { swarmChain } from '../../shared/chain/client.js';
import { chainOf } from '../../shared/chain/config.js';
import { deploySwarmContracts } from '../../shared/chain/deploy.js';
import type { Network } from '../../shared/chain/network.js';
import type { RunConfig } from '../../shared/run/config.js';
import { runSpecHash } from '../../shared/run/spec.js';
import type { LinkRecord } from '../../shared/peer/link-ledger.js';
import { measured } from '../wan.js';
import { EmulatedInternet, type Home } from './internet.js';
import { makeTestCa } from './test-ca.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TURN_PORT = 3478;
const TAB_PORT = 8090;
const TAB_NAME = 'tab';

export interface Where {
  /** Where the chain, the coordinator, the relay and the training text listen. */
  host: string;
  /** Peers' homes (workers in order, then the tab's); absent: everything on loopback. */
  homes?: Home[];
  /** Serve wss:// with a certificate from a CA made for the run. */
  tls: boolean;
}

export interface PeerReport {
  name: string;
  home: string;
  kind: Home['kind'] | 'loopback';
  peerId?: string;
  /** Microbatches of committed steps it computed. */
  microbatches: number;
  links: Array<LinkRecord & { to: string }>;
}

/** What the tab's own dashboard showed: why the run it picked first failed, its loss chart, and its Runs page (a screenshot). */
export interface TabEvidence {
  /** The Training page's status once the gone run's coordinator could not be reached. */
  firstStatus: string;
  /** The Runs page's "This GPU" cell of the run joined. */
  fit: string;
  lossPoints: number;
  firstLoss: number;
  lastLoss: number;
  /** The Runs page's row of the run, as text, at the end. */
  runsRow: string;
  /** The Runs page once the tab had joined the run. */
  screenshot: string;
}

export interface SwarmRun {
  tab?: TabEvidence;
  tokensPerS: number;
  /** The step tokens/s is measured from: every peer that trained had been routed work by then. */
  measuredFrom: number;
  /** Each step's time from the commit before it (ms), and its round's wall time (ms): where a slow step lost its time. */
  steps: { step: number; ms: number; roundMs: number }[];
  finalValLoss: number;
  /** Tensor bytes the coordinator received (frames of binary data): all of them travel peer to peer. */
  coordinatorTensorBytes: number;
  peers: PeerReport[];
}

/** The run's training text at a URL, as a public run lists it (any page may fetch it). */
async function serveCorpus(host: string, file: string): Promise<{ url: string; close(): void }> {
  const body = readFileSync(file);
  const s = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'access-control-allow-origin': '*' }).end(body));
  await new Promise<void>((r) => s.listen(0, host, r));
  return { url: `http://${host}:${(s.address() as AddressInfo).port}/corpus.txt`, close: () => s.close() };
}

/** coturn in this namespace, sharing `secret` with the coordinator. */
async function startRelay(host: string, secret: string, logFile: string): Promise<ChildProcess> {
  // A relay runs on a server of its own; here it shares two cores with five peers, so it is given the
  // scheduler's first turn (nice -10): relayed frames wait for the network, not for a busy CPU.
  const relay = spawn('nice', ['-n', '-10', 'bash', join(ROOT, 'scripts/turn.sh'), '--listen', host, '--port', String(TURN_PORT)], {
    env: { ...process.env, TURN_SECRET: secret },
  });
  let log = '';
  const take = (b: Buffer) => {
    log = (log + b).slice(-4000);
    appendFileSync(logFile, b);
  };
  relay.stdout!.on('data', take);
  relay.stderr!.on('data', take);
  for (const t = Date.now(); !log.includes('Relay ports initialization done'); await new Promise((r) => setTimeout(r, 50)))
    if (Date.now() - t > 15_000 || relay.exitCode !== null) throw new Error(`coturn did not start:\n${log}`);
  return relay;
}

/** A chain with the contracts, and run `run` opened on it with its text listed at `corpusUrl`. */
async function chainWithRun(host: string, run: RunConfig, corpusUrl: string, corpusSha: string) {
  const evm = await startLocalEvm({ host, accounts: 6 });
  const chain = chainOf(evm);
  const transport = viemHttp(evm.rpcUrl);
  const publicClient = createPublicClient({ chain, transport, pollingInterval: 100 });
  const as = (i: number) => swarmChain(publicClient, addresses, createWalletClient({ account: evm.accounts[i], chain, transport }));
  const addresses = await deploySwarmContracts(publicClient, createWalletClient({ account: evm.accounts[0], chain, transport }), {
    coordinator: evm.accounts[1].address,
    veto: evm.accounts[2].address,
  });
  const designer = as(3);
  const params = { stake: parseEther('1'), computeTarget: 1000n, designerBps: 1000, credentialSupply: 1000n, challengeWindow: 3n };
  const { result: runId } = await designer.openRun({ ...params, modelHash: runSpecHash(run) });
  await designer.listCorpus(runId, corpusUrl, `0x${corpusSha}`);
  // A newer run whose coordinator is gone (nothing listens where it announced itself): the tab's page,
  // given no run, picks it as the newest, cannot reach it, and its user joins the live run instead.
  const { result: goneRunId } = await designer.openRun({ ...params, modelHash: runSpecHash(run) });
  await as(1).announceCoordinator(goneRunId, `wss://${host}:9`);
  const network: Network = { name: 'bench', chainId: evm.chainId, rpcUrls: [evm.rpcUrl], ...addresses, stun: [] };
  return { evm, runId, goneRunId, network, coordinator: as(1) };
}

/** The base64 SHA-256 of a certificate's public key: what Chromium is told to trust. */
const spkiHash = (pem: string) =>
  createHash('sha256')
    .update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');

/** The tab: its dashboard served on its home's 127.0.0.1, opened in Chromium running in that home. */
async function startTab(home: Home | undefined, networkFile: string, certPem?: string) {
  const inHome = (argv: string[]) => (home ? EmulatedInternet.wrap(home.netns, argv) : argv);
  // No run id: the page picks the best run the network's chain lists, as the app does by itself.
  const [cmd, ...args] = inHome([process.execPath, '--import', 'tsx', join(ROOT, 'cli/tab.ts'), '--network', networkFile, '--port', String(TAB_PORT), '--no-build']);
  const site = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    site.stdout!.on('data', (b: Buffer) => b.toString().includes('open http') && resolve());
    site.once('exit', (code) => reject(new Error(`the tab's dashboard site exited (${code})`)));
  });
  const wrapper = join(mkdtempSync(join(tmpdir(), 'chromium-in-home-')), 'chromium');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${inHome([CHROMIUM]).join(' ')} "$@"\n`);
  chmodSync(wrapper, 0o755);
  const browser = await launchChromium({
    executablePath: wrapper,
    args: certPem ? [`--ignore-certificate-errors-spki-list=${spkiHash(certPem)}`] : [],
  });
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${TAB_PORT}/?name=${TAB_NAME}`);
  await page.getByTestId('train-here').click(); // its user asks it to train, as a person does
  return {
    page,
    async close() {
      await browser.close().catch(() => {});
      site.kill('SIGINT');
    },
  };
}

const show = (page: Page, name: string) => page.getByRole('navigation', { name: 'pages' }).getByRole('button', { name, exact: true }).click();

/**
 * The page picked the newest run, whose coordinator is gone: once it says so, its user joins the live
 * run from the Runs page (a graceful leave, then the page reloads onto `runId`). Returns the status it showed.
 */
async function joinFromRunsPage(page: Page, goneRunId: bigint, runId: bigint): Promise<string> {
  await show(page, 'Runs');
  await page.getByTestId(`run-${goneRunId}`).getByText("(this machine's)").waitFor({ timeout: 30_000 });
  await show(page, 'Training');
  await page.getByTestId('header-status').getByText('failed', { exact: true }).waitFor({ timeout: 30_000 });
  const firstStatus = ((await page.getByTestId('header-doing').textContent()) ?? '').replace(/\s+/g, ' ');
  await show(page, 'Runs');
  await Promise.all([page.waitForURL(`**/?run=${runId}&name=${TAB_NAME}`, { timeout: 30_000 }), page.getByTestId(`join-${runId}`).click()]);
  return firstStatus;
}

/** The Runs page once the page has joined `runId` and asked its coordinator whether this GPU can hold a stage (screenshot `shot`). */
async function runsPageJoined(page: Page, runId: bigint, shot: string): Promise<{ fit: string; screenshot: string }> {
  await show(page, 'Runs');
  await page.getByTestId(`run-${runId}`).getByText("(this machine's)").waitFor({ timeout: 30_000 });
  const fit = page.getByTestId(`fit-${runId}`);
  await fit.getByText(/^(Yes|No):/).waitFor({ timeout: 30_000 });
  await page.screenshot({ path: shot, fullPage: true });
  return { fit: (await fit.textContent()) ?? '', screenshot: shot };
}

/** The tab's Training page's loss chart, and its Runs page listing the run (screenshot `shot`). */
async function tabEvidence(page: Page, runId: bigint, joined: Pick<TabEvidence, 'firstStatus' | 'fit' | 'screenshot'>): Promise<TabEvidence> {
  await show(page, 'Training');
  const chart = page.getByTestId('loss-chart');
  const attr = async (a: string) => Number(await chart.getAttribute(a, { timeout: 10_000 }).catch(() => Number.NaN));
  const [lossPoints, firstLoss, lastLoss] = [await attr('data-points'), await attr('data-first-loss'), await attr('data-last-loss')];
  await show(page, 'Runs');
  const row = page.getByTestId(`run-${runId}`);
  await row.waitFor({ timeout: 30_000 });
  return { ...joined, lossPoints, firstLoss, lastLoss, runsRow: ((await row.textContent()) ?? '').replace(/\s+/g, ' ') };
}

/**
 * The step by which every peer that trained had been routed work. Tokens/s is compared from there,
 * so both swarms are measured whole: peers arrive seconds apart and open their links at the pace of
 * the network they cross, which is each link's connect time (reported), not the swarm's tokens/s.
 */
export function allTrainingFrom(commits: readonly CommitEvent[]): number {
  const first = new Map<string, number>();
  for (const c of commits) for (const w of c.work) if (w.microbatches > 0 && !first.has(w.peerId)) first.set(w.peerId, c.step);
  return Math.max(0, ...first.values());
}

const stepTimes = (commits: readonly CommitEvent[], at: Map<number, number>) =>
  commits.map((c) => ({ step: c.step, ms: Math.round(at.get(c.step)! - (at.get(c.step - 1) ?? at.get(c.step)!)), roundMs: Math.round(c.ms) }));

/** Where worker i lives: the homes in order, the tab's left out. */
const workerHomes = (homes: Home[] | undefined, tabHome: string | undefined) => homes?.filter((h) => h.name !== tabHome) ?? [];

export async function runSwarmOn(where: Where, o: SwarmOptions, tab: boolean, tabHome = 'tab-home'): Promise<SwarmRun> {
  const run = await runConfig(o);
  const corpus = await serveCorpus(where.host, o.data);
  const { evm, runId, goneRunId, network, coordinator } = await chainWithRun(where.host, run, corpus.url, run.data.sha256);
  const networkFile = join(o.out, 'network.json');
  writeFileSync(networkFile, JSON.stringify(network));
  const secret = randomBytes(16).toString('hex');
  const relay = where.homes && (await startRelay(where.host, secret, join(o.out, 'turn.log')));
  const ca = where.tls ? makeTestCa([where.host]) : undefined;
  const homes = workerHomes(where.homes, tab ? tabHome : undefined);
  const commits: CommitEvent[] = [];
  const commitsAt = new Map<number, number>();
  const names = new Map<string, string>();
  let opened: Awaited<ReturnType<typeof startTab>> | undefined;
  let joined: Promise<Pick<TabEvidence, 'firstStatus' | 'fit' | 'screenshot'>> | undefined;
  try {
    const r = await runSwarm(o, run, {
      coordinator: {
        ...(ca && { access: { tls: { cert: ca.cert, key: ca.key } } }),
        ...(relay && { ice: { stun: [`stun:${where.host}:${TURN_PORT}`], turn: { urls: [`turn:${where.host}:${TURN_PORT}?transport=udp`], secret } } }),
      },
      // Apart by more than a sybil burst: volunteers across the internet do not arrive together (and
      // on loopback the same, so both swarms fill alike).
      spawnGapMs: BURST_MS + 2000,
      workerEnv: (): Record<string, string> => (ca ? { NODE_EXTRA_CA_CERTS: ca.caFile } : {}),
      local: {
        host: where.host,
        joinArgs: () => ['--network', networkFile, '--run', runId.toString()],
        ...(homes.length && { launch: (i: number, argv: string[]) => EmulatedInternet.wrap(homes[i].netns, argv) }),
      },
      onCoordinator: (c) => {
        c.on('commit', (e) => {
          commitsAt.set(e.step, performance.now());
          commits.push(e);
        });
        c.on('register', (e) => names.set(e.peerId, e.name));
      },
      async onListening(url) {
        await coordinator.announceCoordinator(runId, url);
        if (tab)
          opened = await startTab(
            where.homes?.find((h) => h.name === tabHome),
            networkFile,
            ca?.cert,
          );
        // Not awaited: the workers keep arriving while the tab's user finds the live run.
        const page = opened?.page;
        joined =
          page && joinFromRunsPage(page, goneRunId, runId).then(async (firstStatus) => ({ firstStatus, ...(await runsPageJoined(page, runId, join(o.out, 'tab-runs.png'))) }));
        joined?.catch(() => {}); // awaited below, where a failure fails the run
      },
    });
    const m = measured(r, commits, commitsAt, names, allTrainingFrom(commits));
    const tabSeen = opened && joined && (await tabEvidence(opened.page, runId, await joined));
    const done = (peerId: string) => commits.reduce((n, c) => n + c.work.filter((w) => w.peerId === peerId).reduce((k, w) => k + w.microbatches, 0), 0);
    const homeOf = (peerId: string) => homes[Number(/^worker-(\d+)$/.exec(names.get(peerId) ?? '')?.[1] ?? -1)];
    const peers: PeerReport[] = r.peers.map((p) => ({
      name: names.get(p.peerId) ?? p.peerId,
      home: homeOf(p.peerId)?.name ?? 'loopback',
      kind: homeOf(p.peerId)?.kind ?? 'loopback',
      peerId: p.peerId,
      microbatches: done(p.peerId),
      links: p.links.map((l) => ({ ...l, to: names.get(l.peerId) ?? l.peerId })),
    }));
    if (tab) {
      const tabId = [...names].find(([, n]) => n === TAB_NAME)?.[0];
      const h = where.homes?.find((x) => x.name === tabHome);
      // The page keeps its link stats to itself: its links are read from its neighbours' ends.
      const links = peers.flatMap((p) => p.links.filter((l) => l.peerId === tabId).map((l) => ({ ...l, peerId: p.peerId!, to: p.name, local: l.remote, remote: l.local })));
      peers.push({ name: TAB_NAME, home: h?.name ?? 'loopback', kind: h?.kind ?? 'loopback', peerId: tabId, microbatches: tabId ? done(tabId) : 0, links });
    }
    return {
      ...(tabSeen && { tab: tabSeen }),
      tokensPerS: m.tokensPerS,
      measuredFrom: m.fromStep,
      steps: stepTimes(commits, commitsAt),
      finalValLoss: m.finalValLoss,
      coordinatorTensorBytes: r.coordinator.binaryBytesReceived,
      peers,
    };
  } finally {
    await opened?.close();
    relay?.kill('SIGTERM');
    corpus.close();
    await evm.stop();
  }
}
