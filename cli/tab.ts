// `npm run tab -- --coordinator ws://HOST:PORT [--port 8080] [--data FILE]`: serves the browser-tab
// peer (browser/tab.ts) on 127.0.0.1 and prints its address; a tab that opens it joins the swarm as
// a peer on the browser's own WebGPU and WebRTC (Chrome or Edge; Chromium on Linux needs
// --enable-unsafe-webgpu). Ctrl-C stops serving.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_DATA } from '../worker/node-corpus.js';
import { bundle, pageHtml, serveStatic } from './static-site.js';

const ENTRY = fileURLToPath(new URL('../browser/tab.ts', import.meta.url));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { coordinator: { type: 'string' }, port: { type: 'string', default: '8080' }, data: { type: 'string', default: DEFAULT_DATA } },
    strict: true,
  });
  if (!values.coordinator) throw new Error('--coordinator ws://HOST:PORT is required (the address `npm run coordinator` or `npm run swarm` prints)');
  const site = await serveStatic(
    {
      '/': pageHtml('swarm peer', '/tab.js'),
      '/tab.js': { type: 'text/javascript; charset=utf-8', body: await bundle(ENTRY) },
      '/data.txt': { type: 'text/plain; charset=utf-8', body: readFileSync(values.data) },
    },
    Number(values.port),
  );
  console.log(`open ${site.url}/?${new URLSearchParams({ coordinator: values.coordinator })} in a browser with WebGPU: the tab joins the swarm as a peer`);
  process.on('SIGINT', () => void site.close().then(() => process.exit(0)));
}

main().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
