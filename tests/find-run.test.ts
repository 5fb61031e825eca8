// Finding a run on a network (issue 20): a network file checked on load, a run found on a real EVM by
// its listing (where its coordinator is, where its text is), and each way of not finding one said as
// a sentence: wrong chain id, unreachable RPC, no such run, finished, abandoned, no coordinator yet,
// and training text that is not the run's. And the run a dashboard joins from its network: the one
// asked for, else the best one taking volunteers (shared/app/join-run.ts).
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_DATA, loadText } from '../node/corpus.js';
import { checkListedCorpus, fetchListedCorpus } from '../node/corpus.js';
import { loadNetwork } from '../node/network-file.js';
import { runSearch } from '../renderer/hosts/tab.js';
import { resolveAppConfig, withChosenNetwork } from '../shared/app/join-run.js';
import { bestRun, findRun, listRuns, networkChain } from '../shared/chain/find-run.js';
import { type Network, parseNetwork } from '../shared/chain/network.js';
import { LOCAL_NETWORK } from '../shared/chain/networks.js';
import { type ChainFixture, WINDOW, chainFixture, settleAndFinish, trainingRun, treeOf } from './chain-fixture.js';

let f: ChainFixture;
let network: Network;
beforeAll(async () => {
  f = await chainFixture();
  network = { ...LOCAL_NETWORK, name: 'test', rpcUrls: [f.evm.rpcUrl], ...f.addresses };
  await f.saveState();
});
afterAll(async () => f?.stop());
beforeEach(async () => f.restoreState());

const MODEL = `0x${'ab'.repeat(32)}` as const;

async function openRun(): Promise<bigint> {
  const { result } = await f
    .as('designer')
    .openRun({ stake: 10n ** 18n, computeTarget: 1000n, designerBps: 1000, credentialSupply: 100n, challengeWindow: BigInt(WINDOW), modelHash: MODEL });
  return result;
}

describe('finding a run on chain', () => {
  it('finds an open run by its listing: where its coordinator is and its text', async () => {
    const runId = await openRun();
    await expect(findRun(network, runId)).rejects.toThrow(`run ${runId} on test has not announced its coordinator yet`);
    const text = await loadText(DEFAULT_DATA);
    await f.as('designer').listCorpus(runId, 'https://data.example/tinyshakespeare.txt', `0x${text.sha256}`);
    await f.as('coordinator').announceCoordinator(runId, 'wss://coordinator.example:8787');
    const found = await findRun(network, runId);
    expect(found.listing).toEqual({ coordinator: 'wss://coordinator.example:8787', corpusUrl: 'https://data.example/tinyshakespeare.txt', corpusHash: `0x${text.sha256}` });
    expect(found.run).toMatchObject({ state: 'open', modelHash: MODEL, stake: 10n ** 18n, designerBps: 1000 });
    await checkListedCorpus(DEFAULT_DATA, found.listing);
    const other = join(mkdtempSync(join(tmpdir(), 'corpus-')), 'other.txt');
    writeFileSync(other, 'not the run’s text');
    await expect(checkListedCorpus(other, found.listing)).rejects.toThrow(
      /^corpus hash mismatch: .*other\.txt hashes to [0-9a-f]{12}…, the run lists [0-9a-f]{12}… \(https:\/\/data\.example\/tinyshakespeare\.txt\)/,
    );
  });

  it('says why a run cannot be joined: none, finished, abandoned', async () => {
    await expect(findRun(network, 42n)).rejects.toThrow('run 42 does not exist on test');
    const trained = await trainingRun(f, ['alice']);
    await f.as('coordinator').announceCoordinator(trained, 'wss://c.example');
    await settleAndFinish(f, trained, treeOf(f, 0, { alice: 2000n }));
    await expect(findRun(network, trained)).rejects.toThrow(`run ${trained} on test has finished training: it takes no more volunteers`);
    const abandoned = await openRun();
    await f.as('designer').abandon(abandoned);
    await expect(findRun(network, abandoned)).rejects.toThrow(`run ${abandoned} on test was abandoned by its designer`);
  });

  it('refuses a network whose RPC serves another chain, and says when no RPC answers', async () => {
    await expect(findRun({ ...network, chainId: 5 }, 1n)).rejects.toThrow(`the RPC at ${f.evm.rpcUrl} serves chain 31337, not test's chain 5: the network file is wrong`);
    await expect(findRun({ ...network, rpcUrls: ['http://127.0.0.1:1'] }, 1n)).rejects.toThrow(/^cannot reach test's chain: http:\/\/127\.0\.0\.1:1: /);
  });
});

/** Run `runId` announced at a coordinator named after it, so a test can tell which run was chosen. */
async function announce(runId: bigint): Promise<bigint> {
  await f.as('coordinator').announceCoordinator(runId, `wss://run-${runId}.example`);
  return runId;
}

describe('the run a dashboard joins', () => {
  it('bestRun prefers training over open, then more contributors, then the newest; never a finished or unannounced run', async () => {
    const open = await announce(await openRun());
    for (const n of ['alice', 'bob', 'carol'] as const) await f.as(n).join(open);
    const training = await announce(await trainingRun(f, ['alice']));
    const busier = await announce(await trainingRun(f, ['alice', 'bob']));
    await trainingRun(f, ['alice', 'bob', 'carol', 'dave']); // the most contributors, but no coordinator announced
    const finished = await announce(await trainingRun(f, ['alice', 'bob', 'carol', 'dave']));
    await settleAndFinish(f, finished, treeOf(f, 0, { alice: 2000n }));
    const runs = await listRuns(await networkChain(network));
    expect(bestRun(runs)?.run.runId).toBe(busier);
    expect(bestRun(runs.filter((r) => r.run.runId !== busier))?.run.runId).toBe(training);
    expect(bestRun(runs.filter((r) => r.run.state !== 'training'))?.run.runId).toBe(open);
    const newer = await announce(await trainingRun(f, ['alice', 'bob']));
    expect(bestRun(await listRuns(await networkChain(network)))?.run.runId).toBe(newer);
    expect(bestRun([])).toBeUndefined();
  });

  it('resolves a requested run: its coordinator, its text if the page can fetch it, the chain through the RPC that answered', async () => {
    const runId = await announce(await openRun());
    await f.as('designer').listCorpus(runId, 'https://data.example/t.txt', `0x${'11'.repeat(32)}`);
    const other = await announce(await openRun());
    await f.as('designer').listCorpus(other, 'file:///home/designer/t.txt', `0x${'11'.repeat(32)}`); // a text is listed while the run is open
    await f.as('alice').join(other);
    await f.as('coordinator').startTraining(other);
    const site = { network: { ...network, rpcUrls: ['http://127.0.0.1:1', f.evm.rpcUrl] }, dataUrl: '/data.txt', localKeys: [MODEL] };
    const config = await resolveAppConfig(site, runId.toString());
    expect(config).toEqual({
      ...site,
      coordinator: `wss://run-${runId}.example`,
      dataUrl: 'https://data.example/t.txt',
      chain: { rpcUrl: f.evm.rpcUrl, chainId: 31337, registry: network.registry, tokens: network.tokens, runId: runId.toString() },
    });
    // Named by the server, or by nobody (the training run is best): a file:// text stays the server's.
    expect(await resolveAppConfig({ ...site, runId: runId.toString() })).toMatchObject({ coordinator: `wss://run-${runId}.example` });
    expect(await resolveAppConfig(site)).toMatchObject({ coordinator: `wss://run-${other}.example`, dataUrl: '/data.txt', chain: { runId: other.toString() } });
    // A request overrides the coordinator the server named.
    expect(await resolveAppConfig({ ...site, coordinator: 'ws://127.0.0.1:9' }, other.toString())).toMatchObject({ coordinator: `wss://run-${other}.example` });
  });

  it('says when no run takes volunteers, when a run id is bad or a run cannot be joined, and when there is no network', async () => {
    await expect(resolveAppConfig({ network })).rejects.toThrow('no run on test takes volunteers now');
    await openRun(); // no coordinator announced: not joinable
    await expect(resolveAppConfig({ network })).rejects.toThrow('no run on test takes volunteers now');
    for (const bad of ['0', '-1', '0x1', 'abc', '1'.repeat(32)]) {
      await expect(resolveAppConfig({ network }, bad)).rejects.toThrow(`run ${JSON.stringify(bad)}: a run id is a positive integer`);
    }
    await expect(resolveAppConfig({ network }, '1')).rejects.toThrow('run 1 on test has not announced its coordinator yet');
    await expect(resolveAppConfig({}, '1')).rejects.toThrow(/^there is no network to find run 1 on: open this page from `npm start` or `npm run tab -- --network NAME\|FILE`/);
    await expect(resolveAppConfig({})).rejects.toThrow(/^there is no network to find a run on: /);
  });

  it('takes a coordinator the server names as it is, without asking the chain', async () => {
    const site = { coordinator: 'ws://127.0.0.1:8787', runId: '7', network: { ...network, rpcUrls: ['http://127.0.0.1:1'] }, localKeys: [MODEL] };
    const { runId: _, ...config } = site;
    expect(await resolveAppConfig(site)).toEqual(config);
  });

  it('a tab switching runs reloads asking for the run, keeping its peer’s name and no coordinator', () => {
    expect(runSearch('?name=gamer&coordinator=ws://127.0.0.1:9&run=2', '5')).toBe('?run=5&name=gamer');
    expect(runSearch('', '12')).toBe('?run=12');
    expect(runSearch('?name=gamer&run=2')).toBe('?name=gamer'); // another network: its best run
  });

  it('a network chosen in Settings replaces the page’s, and with it the coordinator, run and chain of the page’s network', () => {
    const site = {
      network,
      coordinator: 'wss://c.example',
      runId: '2',
      chain: { rpcUrl: 'http://x', chainId: 1, registry: network.registry, tokens: network.tokens, runId: '2' },
      dataUrl: '/data.txt',
    };
    const other: Network = { ...network, name: 'other', rpcUrls: ['https://rpc.other.example'] };
    expect(withChosenNetwork(site, undefined)).toBe(site);
    expect(withChosenNetwork(site, { ...network })).toBe(site); // the same network: nothing changes
    expect(withChosenNetwork(site, other)).toEqual({ network: other, dataUrl: '/data.txt' });
  });
});

describe('the listed training text', () => {
  it('is downloaded once, kept by its hash, and refused when it is not the text the run lists or too large', async () => {
    const text = 'First Citizen:\nBefore we proceed any further, hear me speak.\n'.repeat(40);
    const sha = createHash('sha256').update(text).digest('hex');
    let requests = 0;
    const server = http.createServer((req, res) => {
      requests++;
      res.end(req.url === '/other.txt' ? 'another text' : text);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const dir = mkdtempSync(join(tmpdir(), 'corpora-'));
      const listed = { corpusUrl: `${base}/corpus.txt`, corpusHash: `0x${sha}` };
      const path = await fetchListedCorpus(listed, dir);
      expect(readFileSync(path, 'utf8')).toBe(text);
      expect(await fetchListedCorpus(listed, dir)).toBe(path);
      expect(requests).toBe(1);
      await expect(fetchListedCorpus({ ...listed, corpusUrl: `${base}/other.txt` }, mkdtempSync(join(tmpdir(), 'corpora-')))).rejects.toThrow(
        /^corpus hash mismatch: http:\/\/127\.0\.0\.1:\d+\/other\.txt hashes to [0-9a-f]{12}…, the run lists [0-9a-f]{12}…$/,
      );
      await expect(fetchListedCorpus(listed, mkdtempSync(join(tmpdir(), 'corpora-')), 1000)).rejects.toThrow(/is over 1000 bytes: refused$/);
      const local = join(dir, 'local.txt');
      writeFileSync(local, text);
      expect(await fetchListedCorpus({ ...listed, corpusUrl: pathToFileURL(local).href }, dir)).toBe(local);
      await expect(fetchListedCorpus({ ...listed, corpusUrl: 'ftp://x/y' }, dir)).rejects.toThrow('not an http(s) or file URL');
    } finally {
      server.close();
    }
  });
});

describe('network files', () => {
  it('the shipped local network is the chain `npm run chain` serves: its first deployment’s addresses', () => {
    const lower = (a: { registry: string; tokens: string }) => [a.registry.toLowerCase(), a.tokens.toLowerCase()];
    expect(lower(f.addresses)).toEqual(lower(LOCAL_NETWORK));
    expect(loadNetwork('local')).toEqual(LOCAL_NETWORK);
  });

  it('reads a network file, and refuses a bad one with the reason and changes nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'network-'));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ ...LOCAL_NETWORK, name: 'mine', stun: ['stun:stun.example:3478'] }));
    expect(loadNetwork(good)).toMatchObject({ name: 'mine', chainId: 31337, stun: ['stun:stun.example:3478'] });
    expect(() => parseNetwork('{', 'n.json')).toThrow(/^n\.json is not JSON: /);
    const bad = (patch: object) => () => parseNetwork(JSON.stringify({ ...LOCAL_NETWORK, ...patch }), 'n.json');
    expect(bad({ chainId: 0 })).toThrow(/^n\.json is not a network: network\.chainId/);
    expect(bad({ registry: '0x1234' })).toThrow(/network\.registry: must be a 0x-prefixed 20-byte hex address/);
    expect(bad({ rpcUrls: ['ftp://x'] })).toThrow(/network\.rpcUrls\.0/);
    expect(bad({ rpcUrls: [] })).toThrow(/network\.rpcUrls/);
    expect(bad({ stun: ['turn:x'] })).toThrow(/must be a stun: URL/);
    expect(bad({ name: 'Bad Name' })).toThrow(/network\.name/);
    expect(bad({ extra: 1 })).toThrow(/network/);
    expect(() => loadNetwork(join(dir, 'missing.json'))).toThrow(/^--network .*missing\.json: not a network this app ships \(local\) and not a readable file/);
  });
});
