// A page and what it needs, served on 127.0.0.1 (a secure origin, which WebGPU requires): an entry
// bundled with esbuild into memory, static files and files made on request. The dashboard's server
// (cli/dashboard-site.ts) and the browser tests use it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { build } from 'esbuild';

export interface StaticFile {
  type: string;
  body: string | Uint8Array;
}

/** The entry and what it imports as one ES module. */
export async function bundle(entry: string): Promise<string> {
  const out = await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', sourcemap: 'inline', write: false, logLevel: 'silent' });
  return out.outputFiles[0].text;
}

/** A page that runs one module script. */
export function pageHtml(title: string, script: string): StaticFile {
  return {
    type: 'text/html; charset=utf-8',
    body: `<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8"><title>${title}</title><link rel="icon" href="data:,"></head>\n<body><script type="module" src="${script}"></script></body>\n</html>\n`,
  };
}

/** A file made when asked for (e.g. a reading of the machine). */
export type DynamicFile = () => Promise<StaticFile>;

/** Serve `files` by path on 127.0.0.1 (`port` 0: any free one); resolves with the base URL and a close function. */
export async function serveStatic(files: Record<string, StaticFile | DynamicFile>, port = 0): Promise<{ url: string; close(): Promise<void> }> {
  const s = http.createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const entry = files[path];
    if (!entry) return void res.writeHead(404).end();
    try {
      const f = typeof entry === 'function' ? await entry() : entry;
      res.writeHead(200, { 'content-type': f.type, 'cache-control': 'no-store' }).end(f.body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end((e as Error).message);
    }
  });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve());
  });
  const close = () =>
    new Promise<void>((r) => {
      s.closeAllConnections(); // a browser keeps its connections alive
      s.close(() => r());
    });
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, close };
}
