// The desktop app finds its run on chain (issue 20): `--network FILE|NAME [--run ID]` on its command
// line, else the user's last choice, else its default network; and switches runs and networks from
// the dashboard as a graceful leave. The main process runs for real against fake Electron modules
// (tests/fake-electron.ts) and a real EVM with real run listings.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CHANNELS } from '../electron/ipc-contract.js';
import { launchChoice, RUN_CHOICE_FILE, storedChoice } from '../electron/run-choice.js';
import { trainerLeaver } from '../electron/trainer-leave.js';
import type { Network } from '../shared/chain/network.js';
import { LOCAL_NETWORK } from '../shared/chain/networks.js';
import { type ChainFixture, chainFixture, settleAndFinish, trainingRun, treeOf, WINDOW } from './chain-fixture.js';
import { FakeBrowserWindow, FakeTray, invoke, type Started, start, tmp, windowsOf } from './fake-electron.js';

let f: ChainFixture;
let network: Network;
let networkFile: string;
let open: bigint;
let busy: bigint;
let finished: bigint;

beforeAll(async () => {
  f = await chainFixture();
  network = { ...LOCAL_NETWORK, name: 'test', rpcUrls: [f.evm.rpcUrl], ...f.addresses };
  networkFile = join(mkdtempSync(join(tmpdir(), 'network-')), 'test.json');
  writeFileSync(networkFile, JSON.stringify(network));
  const { result } = await f.as('designer').openRun({
    stake: 10n ** 18n,
    computeTarget: 1000n,
    designerBps: 1000,
    credentialSupply: 100n,
    challengeWindow: BigInt(WINDOW),
    modelHash: `0x${'ab'.repeat(32)}`,
  });
  open = result;
  busy = await trainingRun(f, ['alice', 'bob']);
  finished = await trainingRun(f, ['alice']);
  for (const id of [open, busy, finished]) await f.as('coordinator').announceCoordinator(id, `wss://run-${id}.example`);
  await settleAndFinish(f, finished, treeOf(f, 0, { alice: 2000n }));
}, 120_000);
afterAll(async () => f?.stop());

beforeEach(() => {
  FakeBrowserWindow.instances = [];
  FakeTray.instances = [];
});

const config = (s: Started) => invoke(s.fakes, CHANNELS.config, { contents: windowsOf(s).dashboard.webContents }) as Promise<{ coordinator?: string; problem?: string }>;
const fromDashboard = (s: Started) => ({ contents: windowsOf(s).dashboard.webContents });
const stored = (s: Started) => join(s.fakes.app.userData, RUN_CHOICE_FILE);
/** The trainer window reports a phase, as its session would. */
const trainerPhase = (s: Started, phase: string) =>
  s.fakes.ipcMain.listeners.get(CHANNELS.report)?.(
    { sender: windowsOf(s).trainer.webContents, senderFrame: { url: 'app://swarm/trainer.html' } },
    { type: 'phase', data: { phase, why: '' } },
  );
const tick = () => new Promise((r) => setTimeout(r, 10));

describe('the desktop app joins a run found on chain', () => {
  it('takes --network FILE and joins the best run; its pages get the run, the chain and the network; the CSP lets them reach its RPC', async () => {
    const s = await start({ env: {}, argv: ['dist/electron/main.cjs', '--no-sandbox', '--network', networkFile] });
    const got = await config(s);
    expect(got).toMatchObject({ coordinator: `wss://run-${busy}.example`, chain: { rpcUrl: f.evm.rpcUrl, chainId: 31337, runId: busy.toString() }, network });
    let csp = '';
    s.fakes.session.headersListener?.({ responseHeaders: {} }, (r: { responseHeaders: Record<string, string[]> }) => (csp = r.responseHeaders['Content-Security-Policy'][0]));
    expect(csp).toContain(new URL(f.evm.rpcUrl).origin);
    expect(csp).toContain(`wss://run-${busy}.example`);
    expect(existsSync(stored(s))).toBe(false); // a launch's flags are this launch's, not a saved choice
    const asked = await start({ env: {}, argv: ['--network', networkFile, '--run', open.toString()] });
    expect((await config(asked)).coordinator).toBe(`wss://run-${open}.example`);
  });

  it('switches runs as a graceful leave: refused for a run it cannot join, else the trainer leaves, the choice is saved and both pages reload', async () => {
    const s = await start({ env: {}, argv: ['--network', networkFile] });
    const { trainer, dashboard } = windowsOf(s);
    trainerPhase(s, 'training');
    const leaves = () => trainer.webContents.commands().filter((c) => c.type === 'leave');
    await expect(invoke(s.fakes, CHANNELS.switchRun, fromDashboard(s), finished.toString())).rejects.toThrow(`run ${finished} on test has finished training`);
    await expect(invoke(s.fakes, CHANNELS.switchRun, fromDashboard(s), '0x1')).rejects.toThrow(/must be a run id/);
    await expect(invoke(s.fakes, CHANNELS.switchRun, { contents: trainer.webContents, url: 'app://swarm/trainer.html' }, open.toString())).rejects.toThrow(/refused/);
    expect(leaves()).toEqual([]);
    expect((await config(s)).coordinator).toBe(`wss://run-${busy}.example`);

    const switched = invoke(s.fakes, CHANNELS.switchRun, fromDashboard(s), open.toString());
    await vi.waitFor(() => expect(leaves()).toEqual([{ type: 'leave', reason: `switching to run ${open}` }]));
    expect(existsSync(stored(s))).toBe(false); // not before the trainer has left
    trainerPhase(s, 'left');
    await switched;
    await tick();
    expect((await config(s)).coordinator).toBe(`wss://run-${open}.example`);
    expect(trainer.loads).toEqual(['app://swarm/trainer.html', 'app://swarm/trainer.html']);
    expect(dashboard.loads).toEqual(['app://swarm/index.html', 'app://swarm/index.html']);
    expect(JSON.parse(readFileSync(stored(s), 'utf8'))).toEqual({ network, runId: open.toString() });

    // The next launch, with no flags, joins the saved choice.
    const again = await start({ env: {}, userData: s.fakes.app.userData });
    expect((await config(again)).coordinator).toBe(`wss://run-${open}.example`);
  });

  it('switches networks: a file that is not a network, or one whose chain does not answer, is refused and nothing changes', async () => {
    const s = await start({ env: {}, argv: ['--network', networkFile, '--run', open.toString()] });
    const use = (json: string | null) => invoke(s.fakes, CHANNELS.switchNetwork, fromDashboard(s), json);
    await expect(use('{"name":"x"}')).rejects.toThrow(/the network file is not a network: .*chainId/);
    await expect(use(JSON.stringify({ ...network, name: 'gone', rpcUrls: ['http://127.0.0.1:1'] }))).rejects.toThrow(/cannot reach gone's chain/);
    await expect(use('x'.repeat(20_000))).rejects.toThrow(/at most 16384 characters/);
    expect(existsSync(stored(s))).toBe(false);
    expect((await config(s)).coordinator).toBe(`wss://run-${open}.example`);
    // No session runs, so nothing to wait for: the other network's best run at once.
    await use(JSON.stringify({ ...network, name: 'other' }));
    expect((await config(s)).coordinator).toBe(`wss://run-${busy}.example`);
    expect(JSON.parse(readFileSync(stored(s), 'utf8')).network.name).toBe('other');
    await use(null); // back to the launch's choice
    expect((await config(s)).coordinator).toBe(`wss://run-${open}.example`);
  });

  it('opens without a run when its network has none to join, saying why, and the pages can pick another', async () => {
    const gone = join(tmp(), 'gone.json');
    writeFileSync(gone, JSON.stringify({ ...network, name: 'gone', rpcUrls: ['http://127.0.0.1:1'] }));
    const s = await start({ env: {}, argv: ['--network', gone] });
    const got = await config(s);
    expect(got.coordinator).toBeUndefined();
    expect(got.problem).toMatch(/^cannot reach gone's chain: http:\/\/127\.0\.0\.1:1: /);
    expect(s.logs.some((l) => l.startsWith("no run to join: cannot reach gone's chain"))).toBe(true);
    await invoke(s.fakes, CHANNELS.switchNetwork, fromDashboard(s), JSON.stringify(network));
    expect((await config(s)).coordinator).toBe(`wss://run-${busy}.example`);
  });
});

describe('the launch choice', () => {
  it('reads --network NAME|FILE and --run ID among Electron’s own switches, and refuses what makes no sense', () => {
    expect(launchChoice(['main.cjs', '--enable-unsafe-webgpu'])).toBeUndefined();
    expect(launchChoice(['--network', 'local'])).toEqual({ network: LOCAL_NETWORK });
    expect(launchChoice([`--network=${networkFile}`, '--run', '3'])).toEqual({ network, runId: '3' });
    expect(() => launchChoice(['--run', '3'])).toThrow('--run needs --network NAME|FILE');
    expect(() => launchChoice(['--network', 'local', '--run', '-1'])).toThrow('--run -1: a run id is a positive integer');
    expect(() => launchChoice(['--network', 'nowhere'])).toThrow(/--network nowhere: not a network this app ships \(local\) and not a readable file/);
  });

  it('keeps a saved choice that is not one aside, and says so', async () => {
    const dir = tmp();
    writeFileSync(join(dir, RUN_CHOICE_FILE), JSON.stringify({ network: { ...network, chainId: -1 } }));
    const logs: string[] = [];
    expect(await storedChoice(dir, (l) => logs.push(l))).toBeUndefined();
    expect(existsSync(join(dir, `${RUN_CHOICE_FILE}.bad`))).toBe(true);
    expect(logs[0]).toMatch(/run-choice\.json is unusable \(.*chainId.*\); kept as run-choice\.json\.bad, joining the local network's best run/);
  });

  it('waits for a trainer in session to end before a switch goes on, and not for ever', async () => {
    const sent: string[] = [];
    const logs: string[] = [];
    const leaver = trainerLeaver(
      (r) => sent.push(r),
      (l) => logs.push(l),
      50,
    );
    await leaver.leave('none running'); // no session: nothing to ask
    leaver.observe({ type: 'phase', data: { phase: 'training', why: '' } });
    const t0 = Date.now();
    await leaver.leave('silent trainer');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    expect(logs).toEqual(['the trainer did not confirm its leave within 0.05 s: switching anyway']);
    expect(sent).toEqual(['silent trainer']);
  });
});
