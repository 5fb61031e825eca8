// The app against a real local swarm: chain, contracts, coordinator and two headless workers as
// `npm start` runs them, and the dashboard in the system Chromium, whose tab joins as a third
// worker once its user asks it to. In order: the GPU and its verdict, and the run as the chain lists
// it (Runs); the tab trains its stage, the loss falls and validation points are drawn; a game
// starting pauses it with the reason shown while the swarm trains on; after the run the header says
// so, and the contributor's ownership is verified against the chain and claimed; a buyer, whose tab
// never trains, buys and spends a credential and reads the answer; the owner's re-issued credentials
// appear; every page fits a 420 px window; bad settings are refused in the page. Screenshots of
// every page at both widths land in e2e/artifacts/.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import AxeBuilder from '@axe-core/playwright';
import { type Browser, type Page, chromium, expect, test } from '@playwright/test';
import { CHROMIUM, LOOPBACK_ONLY_PERMISSIONS, loopbackOnly } from '../chromium.js';
import { StartProcess } from './local-swarm-process.js';

const ARTIFACTS = 'e2e/artifacts';
/**
 * Long enough that the tab trains even when its first round is slow: a neighbour kept waiting names
 * its channel, which is then cut for CUT_ROUNDS (50) rounds (coordinator/routing.ts). A 30-step run
 * once ended inside that cut, the tab credited nothing.
 */
const STEPS = 80;
const GAME = 'eldenring.exe';
const PAGES = ['Training', 'GPU', 'Runs', 'Earnings', 'Credentials', 'Settings'] as const;
/**
 * The longest task the tab's page may run while its peer trains (in a worker: the page only draws
 * and relays WebRTC). The aim is 200 ms: most runs on this machine measured at most 71 ms, two 223 ms.
 * It was 118–271 ms while a chart library drew the loss, 273 ms training on the page's own thread.
 */
const MAX_TRAINING_TASK_MS = 400;
/**
 * The longest task of the dashboard's own over the whole visit (start-up, wallet, pages; not the
 * test's own work in the page). The aim is 200 ms. On this 2-core machine the tab's GPU is emulated
 * in Chromium's GPU process, at a higher priority than the page: a task of 45 ms of the page's CPU
 * took 765 ms while the tab trained. Measured 287 ms once the GPU waited for the first screen
 * (255–804 ms before; 685–928 ms before start-up came in steps; 4.8 s before training moved to a
 * worker). The bound catches a regression to seconds.
 */
const MAX_VISIT_TASK_MS = 2000;

test.describe.configure({ mode: 'serial' });

let swarm: StartProcess;
let browser: Browser;
let url: string;
let contributor: Page;

async function openDashboard(): Promise<Page> {
  const context = await browser.newContext({ permissions: loopbackOnly ? LOOPBACK_ONLY_PERMISSIONS : [], viewport: { width: 1280, height: 900 } });
  // Long tasks on the dashboard's main thread: how responsive it stays while the tab trains.
  await context.addInitScript(() => {
    const w = window as unknown as { __longTasks: { start: number; ms: number }[]; __slowFrames: unknown[] };
    w.__longTasks = [];
    w.__slowFrames = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) w.__longTasks.push({ start: e.startTime, ms: e.duration });
    }).observe({ type: 'longtask', buffered: true });
    // What blocked: the scripts of each frame over 150 ms (Long Animation Frames), for the report.
    type Script = { invoker: string; sourceURL: string; sourceFunctionName: string; duration: number };
    new PerformanceObserver((list) => {
      for (const e of list.getEntries() as (PerformanceEntry & { scripts: Script[] })[])
        if (e.duration > 150)
          w.__slowFrames.push({
            start: Math.round(e.startTime),
            ms: Math.round(e.duration),
            scripts: e.scripts.map((x) => ({ invoker: x.invoker, source: `${x.sourceURL.split('/').pop()} ${x.sourceFunctionName}`, ms: Math.round(x.duration) })),
          });
    }).observe({ type: 'long-animation-frame', buffered: true });
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto(url);
  return page;
}

async function show(page: Page, name: (typeof PAGES)[number]): Promise<void> {
  await page.getByRole('navigation', { name: 'pages' }).getByRole('button', { name, exact: true }).click();
  await expect(page.getByRole('main', { name })).toBeVisible();
}

/**
 * The spans in which the test itself worked inside a page, in that page's time: axe's scan runs on
 * the page's thread and a full-page screenshot lays the page out again; neither is the dashboard's.
 */
const testWork = new WeakMap<Page, [number, number][]>();

async function asTestWork<T>(page: Page, work: () => Promise<T>): Promise<T> {
  const from = await page.evaluate(() => performance.now());
  try {
    return await work();
  } finally {
    const to = await page.evaluate(() => performance.now());
    testWork.set(page, [...(testWork.get(page) ?? []), [from, to]]);
  }
}

async function shoot(page: Page, file: string): Promise<void> {
  await asTestWork(page, () => page.screenshot({ path: `${ARTIFACTS}/${file}`, fullPage: true }));
}

/** No serious or critical accessibility violation on the page as it is now. */
async function accessible(page: Page): Promise<void> {
  const r = await asTestWork(page, () => new AxeBuilder({ page }).analyze());
  const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`)).toEqual([]);
}

const statNumber = async (page: Page, testId: string) => Number((await page.getByTestId(testId).textContent())?.replace(/[^\d]/g, '') || 'NaN');

test.beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  swarm = new StartProcess(['--steps', String(STEPS), '--workers', '2', '--epoch-steps', '10', '--eval-every', '10', '--port', '0', '--answer-tokens', '40']);
  url = (await swarm.waitFor(/open (http:\/\/127\.0\.0\.1:\d+)/, "the dashboard's address", 5 * 60_000))[1];
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--enable-unsafe-webgpu', '--disable-gpu-sandbox', '--no-sandbox', '--disable-background-networking', ...(loopbackOnly ? ['--allow-loopback-in-peer-connection'] : [])],
  });
});

// CI keeps a failed run's output, not its artifacts: the tab's peer log and the swarm's, there.
// biome-ignore lint/correctness/noEmptyPattern: Playwright reads the fixtures a hook uses from this pattern; this one uses none
test.afterEach(async ({}, info) => {
  if (info.status === info.expectedStatus) return;
  const peerLog = await contributor
    ?.getByRole('log', { name: 'peer log' })
    .textContent({ timeout: 5000 })
    .catch((e: Error) => `(not readable: ${e.message})`);
  console.log(`the tab's peer log (its last 40 lines):\n${peerLog}`);
  console.log(`npm start printed (its last 6000 characters):\n${swarm?.tail(6000)}`);
});

test.afterAll(async () => {
  await browser?.close();
  if (swarm) writeFileSync(`${ARTIFACTS}/npm-start.log`, swarm.tail(1_000_000));
  if (swarm && swarm.child.exitCode === null) swarm.child.kill('SIGKILL');
});

/** Connect the local node's test account `i` through RainbowKit, as a user does. */
async function connectLocalAccount(page: Page, i: number): Promise<void> {
  await page.getByTestId('connect-wallet').click();
  await page.getByTestId(`rk-wallet-option-localAccount${i}`).click();
  await expect(page.getByTestId('account-button')).toBeVisible();
}

test('the dashboard shows the detected GPU and its verdict', async () => {
  // The tab joins a swarm that already trains on its headless workers, as one more replica: a
  // stage it held alone would wait for it while it is paused.
  await swarm.waitFor(/step \d+\/\d+/, 'the swarm training on its headless workers', 20 * 60_000);
  contributor = await openDashboard();
  // A tab trains only once its user asks it to.
  await expect(contributor.getByTestId('header-doing')).toHaveText('This tab does not train until you ask it to.');
  await contributor.getByTestId('train-here').click();
  await expect(contributor.getByTestId('train-here')).toHaveText('Stop training here');
  // The contributor is paid at the first local account: its tab's peer rejoins under it once connected.
  await show(contributor, 'Earnings');
  await connectLocalAccount(contributor, 0);
  // Keyboard: the pages are reached with Tab and Enter.
  await contributor.getByRole('navigation', { name: 'pages' }).getByRole('button', { name: 'Training', exact: true }).focus();
  await contributor.keyboard.press('Tab');
  await contributor.keyboard.press('Enter');
  await expect(contributor.getByRole('main', { name: 'GPU' })).toBeVisible();
  // A processor standing in for a GPU (CI has none) is accepted, and never shown as a GPU.
  await expect(contributor.getByTestId('verdict')).toHaveText(/^(✔ Ready to train: it can hold|⚠ No GPU found: WebGPU runs on this machine's processor)/, { timeout: 120_000 });
  await expect(contributor.getByTestId('adapter')).not.toBeEmpty();
  await contributor.getByText('Technical details').click();
  await expect(contributor.getByRole('cell', { name: /^[\d.,]+( (B|KiB|MiB|GiB))?$/ }).first()).toBeVisible();
  await shoot(contributor, 'gpu.png');
  await accessible(contributor);
  // The run is found on chain: its coordinator announced where it listens, its designer the text.
  await show(contributor, 'Runs');
  const run = contributor.getByTestId('run-1');
  await expect(run).toContainText(/ws:\/\/127\.0\.0\.1:\d+/);
  await expect(run).toContainText('tinyshakespeare.txt (sha256');
  await expect(run).toContainText("(this machine's)");
  // Its coordinator served a spec that hashes to the run's modelHash: the GPU column answers, never errs.
  await expect(contributor.getByTestId('fit-1')).toHaveText(/^(Yes|No): /);
  await expect(contributor.getByTestId('join-1')).toHaveCount(0); // no Join for the run it is in
  await shoot(contributor, 'runs.png');
  await accessible(contributor);
});

test('the tab joins as a worker over WebRTC, its stage trains and the loss falls', async () => {
  await show(contributor, 'Training');
  // Its own work: microbatches of committed steps the coordinator credits to this tab.
  await expect.poll(() => statNumber(contributor, 'credited'), { message: 'the tab computes microbatches', timeout: 15 * 60_000, intervals: [2000] }).toBeGreaterThan(0);
  await expect(contributor.getByText('(this machine)')).toBeVisible();
  await expect(contributor.getByTestId('header-status')).toHaveText('training');
  await expect(contributor.getByTestId('header-doing')).toHaveText(/^Training stage [12] of 2 of the model\.$/);
  await expect(contributor.getByTestId('header-run')).toHaveText(/step \d+ of 80/);
  const trainingFrom = await contributor.evaluate(() => performance.now());
  const chart = contributor.getByTestId('loss-chart');
  await expect.poll(async () => Number(await chart.getAttribute('data-points')), { timeout: 10 * 60_000, intervals: [2000] }).toBeGreaterThanOrEqual(12);
  const [first, last] = await Promise.all(['data-first-loss', 'data-last-loss'].map((a) => chart.getAttribute(a)));
  expect([first, last]).not.toContain(null);
  expect(Number(last)).toBeLessThan(Number(first));
  // The validation loss is the last stage's to compute, and every peer's to draw (the coordinator tells them all).
  await expect
    .poll(async () => Number(await chart.getAttribute('data-val-points')), { message: 'validation points drawn', timeout: 5 * 60_000, intervals: [2000] })
    .toBeGreaterThan(0);
  await expect(chart.locator('[data-series="validation loss"] circle').first()).toBeVisible();
  // The tab's peer trains in a worker (the desktop app's in a hidden window): record how long the
  // page could not answer input, what blocked it (slowFrames), and bound its longest task while training.
  const [longTasks, slowFrames, now] = await contributor.evaluate(() => {
    const w = window as unknown as { __longTasks: { start: number; ms: number }[]; __slowFrames: unknown[] };
    return [w.__longTasks, w.__slowFrames, performance.now()] as const;
  });
  const summary = (tasks: { ms: number }[], seconds: number) => ({
    longTasks: tasks.length,
    maxMs: Math.round(Math.max(0, ...tasks.map((t) => t.ms))),
    blockedPercent: Number(((tasks.reduce((a, t) => a + t.ms - 50, 0) / (seconds * 1000)) * 100).toFixed(2)),
    seconds: Math.round(seconds),
  });
  const byTest = (t: { start: number; ms: number }) => (testWork.get(contributor) ?? []).some(([from, to]) => t.start < to && t.start + t.ms > from);
  const own = longTasks.filter((t) => !byTest(t));
  const training = own.filter((t) => t.start >= trainingFrom);
  const report = {
    wholeVisit: summary(own, now / 1000),
    whileTraining: summary(training, (now - trainingFrom) / 1000),
    duringTestWork: summary(longTasks.filter(byTest), now / 1000),
    over100ms: own.filter((t) => t.ms > 100).map((t) => ({ start: Math.round(t.start), ms: Math.round(t.ms) })),
    slowFrames,
  };
  writeFileSync(`${ARTIFACTS}/responsiveness.json`, JSON.stringify(report, null, 2));
  console.log(`dashboard main thread: ${JSON.stringify({ ...report, slowFrames: slowFrames.length })}`);
  expect(report.whileTraining.maxMs).toBeLessThan(MAX_TRAINING_TASK_MS);
  expect(report.wholeVisit.maxMs).toBeLessThan(MAX_VISIT_TASK_MS);
  await shoot(contributor, 'training.png');
  await accessible(contributor);
});

test('a game starting pauses the tab with the reason shown; the swarm trains on without it', async () => {
  mkdirSync('/tmp/swarm-e2e-game', { recursive: true });
  copyFileSync('/bin/sleep', `/tmp/swarm-e2e-game/${GAME}`);
  const game = spawn(`/tmp/swarm-e2e-game/${GAME}`, ['600'], { stdio: 'ignore' });
  try {
    await expect(contributor.getByTestId('header-doing')).toHaveText(`Paused: game running (${GAME}).`, { timeout: 20_000 });
    await expect(contributor.getByTestId('header-status')).toHaveText('paused');
    await shoot(contributor, 'paused.png');
    const before = swarm.step();
    await expect.poll(() => swarm.step(), { message: 'the swarm keeps committing steps without the tab', timeout: 5 * 60_000, intervals: [1000] }).toBeGreaterThan(before);
  } finally {
    game.kill();
  }
  await expect(contributor.getByTestId('header-doing')).not.toContainText('game running', { timeout: 20_000 });
});

test('after the run, the contributor verifies its units against the chain and claims its ownership', async () => {
  await swarm.waitFor(/the swarm keeps serving/, 'the end of training and settlement', 20 * 60_000);
  // No stale "training" once the run is over: the header says the run is trained, and the speed is an old reading.
  await expect(contributor.getByTestId('header-status')).toHaveText('serving');
  await expect(contributor.getByTestId('header-run')).toHaveText(`trained: ${STEPS} steps`);
  await expect(contributor.getByTestId('header-speed')).toHaveAttribute('data-stale', 'true', { timeout: 60_000 });
  await show(contributor, 'Earnings');
  await expect(contributor.getByTestId('run-state')).toHaveText('trained');
  await expect.poll(() => statNumber(contributor, 'units-saved')).toBeGreaterThan(0);
  await contributor.getByRole('button', { name: 'Verify against the chain' }).click();
  await expect(contributor.getByText(/saved epochs check out against the roots on chain/)).toBeVisible();
  await contributor.getByRole('button', { name: 'Claim ownership' }).click();
  await expect.poll(() => statNumber(contributor, 'ownership')).toBeGreaterThan(0);
  await expect(contributor.getByTestId('claimable')).toHaveText('0');
  await shoot(contributor, 'earnings.png');
  await accessible(contributor);
});

test('a buyer buys and spends a credential and reads the answer; the owner gets re-issued credentials', async () => {
  await show(contributor, 'Credentials');
  await contributor.getByRole('button', { name: 'Claim credentials' }).click();
  await expect.poll(() => statNumber(contributor, 'credentials-held')).toBeGreaterThan(0);
  const accrued = async () => Number(await contributor.getByTestId('credentials-accrued').textContent());
  const accruedBefore = await accrued();
  // A listing with a bad amount and price is refused in the page, in the fields' words, and nothing is listed.
  const listed = await contributor.getByTestId('listings').locator('tbody tr').count();
  await contributor.getByLabel('Amount').fill('ten');
  await contributor.getByLabel('Price per credential (ETH)').fill('0');
  await contributor.getByRole('button', { name: 'List for sale' }).click();
  await expect(contributor.getByText('Amount must be a whole number of credentials, from 1 to 9,999,999.')).toBeVisible();
  await expect(contributor.getByText('Price per credential (ETH) must be an amount of ETH above 0, like 0.001.')).toBeVisible();
  await expect(contributor.getByLabel('Amount')).toHaveAttribute('aria-invalid', 'true');
  expect(await contributor.getByTestId('listings').locator('tbody tr').count()).toBe(listed);
  await contributor.getByLabel('Amount').fill('10');
  await contributor.getByLabel('Price per credential (ETH)').fill('0.001');
  await expect(contributor.getByText(/must be a whole number|must be an amount of ETH/)).toHaveCount(0);

  // The buyer never asks its tab to train: it is not made a worker of the swarm, and says so.
  const buyer = await openDashboard();
  await expect(buyer.getByTestId('header-status')).toHaveText('off');
  await expect(buyer.getByTestId('header-doing')).toHaveText('This tab does not train until you ask it to.');
  await show(buyer, 'Credentials');
  await connectLocalAccount(buyer, 1);
  await expect(buyer.getByRole('button', { name: 'Spend 1 credential and ask' })).toBeEnabled();
  await buyer.getByRole('textbox', { name: 'Prompt' }).fill('ROMEO:\n');
  await buyer.getByRole('button', { name: 'Spend 1 credential and ask' }).click();
  const answer = buyer.getByTestId('answer');
  await expect(answer).toContainText('recorded on chain', { timeout: 5 * 60_000 });
  await expect(answer.locator('pre')).not.toHaveText('ROMEO:\n');
  // Parts came before the answer: the time to the first token is known only from them.
  await expect(buyer.getByTestId('answer-timing')).toContainText('First token after');
  await shoot(buyer, 'credentials-buyer.png');
  await accessible(buyer);
  await show(buyer, 'Training');
  await expect(buyer.getByText('Not placed in the swarm yet.')).toBeVisible();
  await expect(buyer.getByTestId('header-status')).toHaveText('off');

  // The owner's share of the spent credential (a fraction of one for a small owner).
  await expect.poll(accrued, { message: "the spent credential is re-issued to the model's owners" }).toBeGreaterThan(accruedBefore);
  await shoot(contributor, 'credentials.png');
});

test('every page at 1280 and at 420 pixels wide: none is wider than the window (screenshots of each)', async () => {
  for (const width of [1280, 420]) {
    await contributor.setViewportSize({ width, height: 800 });
    for (const name of PAGES) {
      await show(contributor, name);
      const [scrollWidth, innerWidth] = await contributor.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
      expect(scrollWidth, `the ${name} page at ${width} px`).toBeLessThanOrEqual(innerWidth);
      await shoot(contributor, `${name.toLowerCase()}-${width}.png`);
    }
  }
  await contributor.setViewportSize({ width: 1280, height: 900 });
});

test('settings are validated and saved; Ctrl-C stops everything', async () => {
  await show(contributor, 'Settings');
  await contributor.getByLabel('GPU usage limit (%)').fill('60');
  await contributor.getByRole('button', { name: 'Save settings' }).click();
  await expect(contributor.getByText('Saved.')).toBeVisible();
  const saved = () => contributor.evaluate(() => localStorage.getItem('swarm.settings'));
  const before = await saved();
  // Bad values, each refused in the page next to its field in the field's own words; nothing is saved.
  await contributor.getByLabel('Pause at GPU temperature (°C, 0: off)').fill('5000');
  await contributor.getByLabel('GPU usage limit (%)').fill('5');
  await contributor.getByLabel('Pause below this charge (%)').fill('');
  await contributor.getByRole('button', { name: 'Save settings' }).click();
  const problems = contributor.getByTestId('settings-problems');
  await expect(problems).toContainText('Not saved: 3 settings need fixing.');
  await expect(problems).toContainText('Pause at GPU temperature (°C, 0: off) must be between 0 and 120 °C.');
  await expect(problems).toContainText('GPU usage limit (%) must be between 10 and 100 %.');
  await expect(problems).toContainText('Pause below this charge (%) must be a number.');
  await expect(contributor.getByLabel('GPU usage limit (%)')).toHaveAttribute('aria-invalid', 'true');
  await expect(contributor.getByLabel('Start after this many idle minutes')).toBeDisabled(); // a tab cannot see idleness, and says so
  await shoot(contributor, 'settings-refused.png');
  await accessible(contributor);
  // Each value within its field's range, together inconsistent (resume above the pause temperature).
  await contributor.getByLabel('GPU usage limit (%)').fill('60');
  await contributor.getByLabel('Pause below this charge (%)').fill('30');
  await contributor.getByLabel('Pause at GPU temperature (°C, 0: off)').fill('80');
  await contributor.getByLabel('Resume below (°C)').fill('90');
  await expect(problems).toHaveText(/^Not saved: one setting needs fixing\.Resume below \(°C\) must be above 0 and below the temperature that pauses training/);
  expect(await saved()).toBe(before);
  await contributor.getByLabel('Resume below (°C)').fill('70');
  await expect(problems).toHaveCount(0);
  await contributor.getByRole('button', { name: 'Save settings' }).click();
  await expect(contributor.getByText('Saved.')).toBeVisible();
  expect(await saved()).toContain('"resumeBelowC":70');
  await shoot(contributor, 'settings.png');
  await accessible(contributor);

  const started = swarm.descendants();
  expect(started.length).toBeGreaterThanOrEqual(3); // the chain and two workers at least
  swarm.interrupt();
  const code = await Promise.race([swarm.exited, new Promise((r) => setTimeout(() => r('timeout'), 120_000))]);
  // 130: the shell's code for a command ended by Ctrl-C, after everything was stopped in order.
  expect(code, swarm.tail()).toBe(130);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  await expect.poll(() => started.filter(alive), { message: 'no process left behind', timeout: 10_000 }).toEqual([]);
});
