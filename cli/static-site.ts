// A page and what it needs, served on 127.0.0.1 (a secure origin, which WebGPU requires): an entry
// bundled with esbuild into memory, static files and files made on request. The dashboard's server
// (cli/dashboard-site.ts) and the browser tests use it. Every request passes cli/loopback-guard.ts
// first: a page elsewhere on the web must not read what this serves through DNS rebinding, and
// the paths marked same-origin-only (keys, the machine's processes) go to this server's pages only.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { build } from 'esbuild';
import { judgeRequest } from './loopback-guard.js';

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

/** A header's value as one string (Node gives an array only for the few headers it does not join). */
const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/**
 * Serve `files` by path on 127.0.0.1 (`port` 0: any free one); resolves with the base URL and a
 * close function. Paths in `sameOriginOnly` are refused to requests another site's page makes.
 * No response carries CORS headers: other origins read nothing of it.
 */
export async function serveStatic(
  files: Record<string, StaticFile | DynamicFile>,
  port = 0,
  o: { sameOriginOnly?: readonly string[] } = {},
): Promise<{ url: string; close(): Promise<void> }> {
  const sameOriginOnly = new Set(o.sameOriginOnly);
  const s = http.createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const head = { method: req.method, target: req.url, host: one(req.headers.host), origin: one(req.headers.origin), secFetchSite: one(req.headers['sec-fetch-site']) };
    const verdict = judgeRequest(head, (s.address() as AddressInfo).port, sameOriginOnly.has(path));
    // nosniff: a page elsewhere cannot run or style with what is served here under another type.
    const base = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
    if (!verdict.ok)
      return void res
        .writeHead(verdict.status, { ...base, 'content-type': 'text/plain; charset=utf-8', ...(verdict.status === 405 && { allow: 'GET, HEAD' }) })
        .end(`${verdict.why}\n`);
    const entry = files[path];
    if (!entry) return void res.writeHead(404, base).end();
    try {
      const f = typeof entry === 'function' ? await entry() : entry;
      res.writeHead(200, { ...base, 'content-type': f.type, ...(sameOriginOnly.has(path) && { 'cross-origin-resource-policy': 'same-origin' }) }).end(f.body);
    } catch (e) {
      res.writeHead(500, { ...base, 'content-type': 'text/plain' }).end((e as Error).message);
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
