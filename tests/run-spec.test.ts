// A run's model spec: the one JSON text the designer hashes into modelHash and the coordinator serves
// at /run.json; reading it back (refused unless it is JSON, a run config and hashes to the listed
// modelHash), fetched from a real coordinator on loopback; and whether a GPU can hold a stage of
// it, against cases computed by hand.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { keccak256, toHex } from 'viem';
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../coordinator/server.js';
import type { RunConfig } from '../shared/run/config.js';
import { parseRunSpec, runSpecHash, runSpecJson } from '../shared/run/spec.js';
import { stageFit } from '../shared/run/stage-fit.js';
import { fetchRunSpec, runSpecUrl } from '../shared/swarm/run-spec-client.js';
import { syntheticGpuReport } from './gpu-report.js';
import { testRun } from './test-run.js';

describe('the run spec text and its hash', () => {
  const run = testRun();

  it('is the schema-ordered JSON of the run, whatever order its keys were built in', () => {
    const reversed = Object.fromEntries(Object.entries(run).reverse()) as RunConfig;
    expect(runSpecJson(reversed)).toBe(JSON.stringify(run));
    expect(runSpecJson(reversed).startsWith('{"runId":"rc-test","model":{')).toBe(true);
    expect(runSpecHash(reversed)).toBe(keccak256(toHex(JSON.stringify(run))));
  });

  it('reads back the run from its text and hash', () => {
    expect(parseRunSpec(runSpecJson(run), runSpecHash(run))).toEqual(run);
  });

  it('refuses text that is not JSON', () => {
    const text = '<html>not found</html>';
    expect(() => parseRunSpec(text, keccak256(toHex(text)))).toThrow(/^the coordinator's model spec is not JSON \(/);
  });

  it('refuses JSON that is not a run config, saying what is wrong', () => {
    const text = JSON.stringify({ ...run, stages: 0 });
    expect(() => parseRunSpec(text, keccak256(toHex(text)))).toThrow(/^the coordinator's model spec is not a run config: run\.stages: /);
  });

  it('refuses a run config that does not hash to the listed modelHash', () => {
    expect(() => parseRunSpec(runSpecJson(run), runSpecHash(testRun({ steps: 11 })))).toThrow("the coordinator's model spec does not match the hash its run lists on chain");
    // The same config written another way is other bytes: the hash binds the exact text.
    expect(() => parseRunSpec(JSON.stringify(run, null, 2), runSpecHash(run))).toThrow(/does not match the hash/);
  });

  it('is asked for at /run.json on the http(s) twin of the coordinator address', () => {
    expect(runSpecUrl('ws://127.0.0.1:8787')).toBe('http://127.0.0.1:8787/run.json');
    expect(runSpecUrl('wss://coord.example')).toBe('https://coord.example/run.json');
    expect(runSpecUrl('wss://coord.example/swarm/')).toBe('https://coord.example/swarm/run.json');
    expect(() => runSpecUrl('https://coord.example')).toThrow(/is not a coordinator address/);
    expect(() => runSpecUrl('coord.example:8787')).toThrow(/is not a coordinator address/);
  });
});

describe('a coordinator serving its run spec', () => {
  const run = testRun();
  let coord: Coordinator | undefined;
  let other: http.Server | undefined;
  afterEach(async () => {
    await coord?.close();
    await new Promise((r) => (other ? other.close(r) : r(undefined)));
    coord = other = undefined;
  });

  async function serve(): Promise<{ url: string; base: string }> {
    coord = new Coordinator({ run });
    await coord.listen(0);
    const url = coord.url!;
    return { url, base: url.replace(/^ws:/, 'http:') };
  }

  it('serves /run.json as the text its modelHash commits to, public and uncached', async () => {
    const { base } = await serve();
    const res = await fetch(`${base}/run.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = await res.text();
    expect(body).toBe(runSpecJson(run));
    expect(keccak256(toHex(body))).toBe(runSpecHash(run));
  });

  it('answers every other plain request with 426, as before', async () => {
    const { base } = await serve();
    for (const [path, method] of [
      ['/', 'GET'],
      ['/run.json.bak', 'GET'],
      ['/constructor', 'GET'],
      ['/run.json', 'POST'],
    ]) {
      const res = await fetch(`${base}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(426);
      expect(await res.text()).toBe('Upgrade Required');
    }
  });

  it('fetchRunSpec returns the run; a wrong hash is refused', async () => {
    const { url } = await serve();
    expect(await fetchRunSpec(url, runSpecHash(run))).toEqual(run);
    await expect(fetchRunSpec(url, runSpecHash(testRun({ steps: 99 })))).rejects.toThrow(/does not match the hash its run lists on chain$/);
  });

  it('fetchRunSpec says why when there is no spec: unreachable, not served, too large', async () => {
    const { url } = await serve();
    await coord!.close();
    await expect(fetchRunSpec(url, runSpecHash(run))).rejects.toThrow(/^cannot reach the coordinator for its model spec \(/);
    // A server that answers like a coordinator that predates /run.json, and one that sends too much.
    other = http.createServer((req, res) => {
      if (req.url === '/big/run.json') res.writeHead(200).end(' '.repeat(65 * 1024));
      else res.writeHead(426).end();
    });
    await new Promise<void>((r) => other!.listen(0, '127.0.0.1', r));
    const port = (other.address() as AddressInfo).port;
    await expect(fetchRunSpec(`ws://127.0.0.1:${port}`, runSpecHash(run))).rejects.toThrow('the coordinator does not serve its model spec (HTTP 426)');
    await expect(fetchRunSpec(`ws://127.0.0.1:${port}/big`, runSpecHash(run))).rejects.toThrow("the coordinator's model spec is over 64 KiB: refused");
  });
});

describe('whether a GPU can hold a stage of a run', () => {
  it('a comfortable GPU holds any stage of the test run', () => {
    expect(stageFit(syntheticGpuReport(), testRun())).toEqual({ ok: true, text: 'Yes: holds any of its 2 stages' });
    expect(stageFit(syntheticGpuReport(), testRun({ stages: 1, layersPerStage: [4] }))).toEqual({ ok: true, text: 'Yes: holds its one stage' });
  });

  it('no adapter holds nothing', () => {
    const none = syntheticGpuReport({ available: false, message: 'WebGPU is missing', adapter: undefined, limits: {}, budget: { bytes: 0, basis: 'none' }, bench: undefined });
    expect(stageFit(none, testRun())).toEqual({ ok: false, text: 'No: no WebGPU adapter' });
  });

  // A narrow model whose logits (batch·seq·vocab = 4·16·65 = 4160 floats = 16,640 B = 16.3 KiB) are
  // its largest tensor; everywhere else the MLP hidden (4·16·4·8 = 2048 floats) and the attention
  // probabilities (batch·heads·seq² = 4·2·16² = 2048 floats) are, 8 KiB each; the embedding is
  // 65·8 = 520 floats.
  const narrow = (layersPerStage: number[]) =>
    testRun({
      model: { vocab: 65, dModel: 8, nHead: 2, nLayer: layersPerStage.reduce((a, b) => a + b), seq: 16, batch: 4 },
      stages: layersPerStage.length,
      layersPerStage,
    });
  const binding = (b: number) => syntheticGpuReport({ limits: { maxStorageBufferBindingSize: b, maxBufferSize: 2 ** 32 } });

  it('a binding size below the head stage’s logits leaves the other stages', () => {
    expect(stageFit(binding(12 * 1024), narrow([1, 1, 1]))).toEqual({
      ok: true,
      text: "Yes: stages 0–1 only (stage 2: the adapter's maxStorageBufferBindingSize (12 KiB) is below the largest tensor (16.3 KiB))",
    });
  });

  it('a binding size below every stage’s largest tensor holds none, and says why for the lightest', () => {
    expect(stageFit(binding(4 * 1024), narrow([1, 1, 1]))).toEqual({
      ok: false,
      text: "No: the adapter's maxStorageBufferBindingSize (4 KiB) is below the largest tensor (8 KiB)",
    });
  });

  // One layer of the narrow model: 872 params (ln 2·16, qkv 8·24 + 24, proj 8·8 + 8, MLP 8·32 + 32
  // + 32·8 + 8) × 16 B, and 64 tokens × 164 activation floats (8+8+24+2·16+8+8+8+32+32+4) × 4 B.
  const perLayer = 872 * 16 + 64 * 164 * 4; // 55,936 B
  // Stage 0 adds wte + wpe (520 + 128 params × 16 B) and the embedded tokens (64·8 floats × 4 B);
  // the last stage lnf + head (16 + 520 params × 16 B) and logits with their gradient (2·64·65 × 4 B).
  const embedding = 648 * 16 + 512 * 4; // 12,416 B
  const head = 536 * 16 + 2 * 64 * 65 * 4; // 41,856 B
  const budget = (b: number) => syntheticGpuReport({ budget: { bytes: b, basis: 'hand-set' } });

  it('a memory budget of under two layers leaves the ends but not a two-layer middle stage', () => {
    const b = 2 * perLayer - 1;
    expect(embedding + perLayer).toBeLessThanOrEqual(b);
    expect(head + perLayer).toBeLessThanOrEqual(b);
    expect(stageFit(budget(b), narrow([1, 2, 1]))).toEqual({ ok: true, text: 'Yes: stages 0, 2 only (stage 1 needs 2 layers, this GPU holds 1)' });
  });

  it('a budget of one bare layer holds no stage, and says so for the smallest', () => {
    expect(stageFit(budget(perLayer + 100), narrow([1, 2, 1]))).toEqual({ ok: false, text: 'No: its smallest stage needs 2 layers, this GPU holds 1' });
  });
});
