// `npm run tab -- --coordinator ws://HOST:PORT | --network NAME|FILE [--run ID]  [--port 8080] [--data FILE] [--no-build]`:
// builds the dashboard (--no-build: serves it as last built) and serves it on 127.0.0.1 for a swarm that runs elsewhere, and
// prints its address; a tab that opens it joins the swarm as a peer on the browser's own WebGPU and
// WebRTC (Chrome or Edge; Chromium on Linux needs --enable-unsafe-webgpu). With --network the page
// finds the run on that network's chain itself (--run, else the best run taking volunteers when it
// loads), trains on the text the run lists at an http(s) URL or else on --data, and is paid on that
// chain; its Runs page can switch to another run. With --coordinator alone it trains unpaid.
// Ctrl-C stops serving.
import { parseArgs } from 'node:util';
import { DEFAULT_DATA } from '../node/corpus.js';
import { loadNetwork } from '../node/network-file.js';
import { intFlag, listenError, readFlags } from '../node/flags.js';
import type { SiteConfig } from '../shared/app/bridge.js';
import { resolveAppConfig } from '../shared/app/join-run.js';
import { buildDashboard, serveDashboard } from './dashboard-site.js';

const WHERE = 'give --coordinator ws://HOST:PORT (the address `npm run coordinator` or `npm run swarm` prints), or --network NAME|FILE [--run ID] to find the run on chain';

/** What the page is handed: a coordinator, or a network (and a run) to find one on. */
function siteConfig(v: { coordinator?: string; network?: string; run?: string }): SiteConfig {
  if (v.coordinator && v.network) throw new Error('--coordinator and --network both given: give one');
  if (v.run !== undefined && !v.network) throw new Error('--run needs --network NAME|FILE: the network whose chain lists the run');
  if (v.coordinator) return { coordinator: v.coordinator };
  if (!v.network) throw new Error(WHERE);
  if (v.run !== undefined && !/^[1-9]\d{0,30}$/.test(v.run)) throw new Error(`--run ${v.run}: a run id is a positive integer`);
  return { network: loadNetwork(v.network), ...(v.run !== undefined && { runId: v.run }) };
}

const USAGE = 'npm run tab -- --coordinator ws://HOST:PORT | --network NAME|FILE [--run ID] [--port 8080] [--data FILE] [--no-build]';

async function main(): Promise<void> {
  const { values, config, port } = readFlags('npm run tab', USAGE, () => {
    const { values } = parseArgs({
      options: {
        coordinator: { type: 'string' },
        network: { type: 'string' },
        run: { type: 'string' },
        port: { type: 'string', default: '8080' },
        data: { type: 'string', default: DEFAULT_DATA },
        'no-build': { type: 'boolean', default: false },
      },
      strict: true,
    });
    return { values, config: siteConfig(values), port: intFlag('port', values.port) };
  });
  if (!values['no-build']) buildDashboard('npm run tab');
  const site = await serveDashboard(config, { dataFile: values.data, port }).catch((e: unknown) => {
    throw listenError(e, 'port');
  });
  if (config.coordinator) {
    console.log(`open ${site.url} in a browser with WebGPU and press Train with this GPU: the tab joins the swarm at ${config.coordinator} as a peer`);
  } else {
    // The page chooses when it loads; what it would find now only tells the user what to expect.
    const now = await resolveAppConfig(config).then(
      (c) => `now that is run ${c.chain?.runId}, coordinated at ${c.coordinator}`,
      (e: Error) => `for now: ${e.message}`,
    );
    console.log(`open ${site.url} in a browser with WebGPU and press Train with this GPU: the tab finds its run on ${config.network?.name} and joins it as a peer (${now})`);
  }
  process.on('SIGINT', () => void site.close().then(() => process.exit(130)));
}

main().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
