// `npm run tab -- --coordinator ws://HOST:PORT [--port 8080] [--data FILE]`: serves the dashboard
// (built by the npm script) on 127.0.0.1 for a swarm that runs elsewhere, and prints its address;
// a tab that opens it joins the swarm as a peer on the browser's own WebGPU and WebRTC (Chrome or
// Edge; Chromium on Linux needs --enable-unsafe-webgpu). Without a chain it trains unpaid.
// Ctrl-C stops serving.
import { parseArgs } from 'node:util';
import { DEFAULT_DATA } from '../node/corpus.js';
import { serveDashboard } from './dashboard-site.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { coordinator: { type: 'string' }, port: { type: 'string', default: '8080' }, data: { type: 'string', default: DEFAULT_DATA } },
    strict: true,
  });
  if (!values.coordinator) throw new Error('--coordinator ws://HOST:PORT is required (the address `npm run coordinator` or `npm run swarm` prints)');
  const site = await serveDashboard({ coordinator: values.coordinator }, { dataFile: values.data, port: Number(values.port) });
  console.log(`open ${site.url} in a browser with WebGPU: the tab joins the swarm at ${values.coordinator} as a peer`);
  process.on('SIGINT', () => void site.close().then(() => process.exit(130)));
}

main().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
