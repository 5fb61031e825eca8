// The dashboard and trainer pages are served from dist/renderer on a privileged custom scheme,
// app://swarm/, instead of file://: a standard, secure origin (so WebGPU, fetch, workers and
// storage work as on https) that can reach nothing but the built renderer folder.
import { readFile, stat } from 'node:fs/promises';
import { extname, isAbsolute, relative, resolve, sep } from 'node:path';
import type { Protocol } from 'electron';
import { APP_HOST, APP_SCHEME, CSP } from './security.js';

/** Must run before the app's 'ready' event (Electron refuses it later). */
export function registerAppScheme(protocol: Pick<Protocol, 'registerSchemesAsPrivileged'>): void {
  protocol.registerSchemesAsPrivileged([{ scheme: APP_SCHEME, privileges: { standard: true, secure: true, supportFetchAPI: true, stream: true, codeCache: true } }]);
}

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
};

/**
 * The file under `root` a request URL names, or undefined when it names anything else: another
 * host, a path that (decoded) climbs out of root with '..', or an encoded separator or NUL.
 */
export function resolveAppPath(root: string, url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const u = new URL(url);
  if (u.protocol !== `${APP_SCHEME}:` || u.host !== APP_HOST) return undefined;
  let path: string;
  try {
    path = decodeURIComponent(u.pathname);
  } catch {
    return undefined; // malformed percent-encoding
  }
  if (path.includes('\0') || path.includes('\\')) return undefined;
  const base = resolve(root);
  const file = resolve(base, `.${path.endsWith('/') ? `${path}index.html` : path}`);
  const rel = relative(base, file);
  if (rel === '' || rel.startsWith(`..${sep}`) || rel === '..' || isAbsolute(rel)) return undefined;
  return file;
}

function text(status: number, body: string): Response {
  return new Response(body, { status, headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
}

/** The handler for protocol.handle: the file's bytes with its type and the CSP, 404 or 403 otherwise. */
export function appProtocolHandler(root: string, csp: () => string = () => CSP): (request: Request) => Promise<Response> {
  return async (request) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return text(405, 'method not allowed');
    const file = resolveAppPath(root, request.url);
    if (!file) return text(403, 'forbidden');
    try {
      if (!(await stat(file)).isFile()) return text(404, 'not found');
      const body = request.method === 'HEAD' ? null : await readFile(file);
      const headers = {
        'Content-Type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
        // Also set here: a custom protocol's responses may not pass through session.webRequest.
        'Content-Security-Policy': csp(),
        'X-Content-Type-Options': 'nosniff',
      };
      return new Response(body, { status: 200, headers });
    } catch {
      return text(404, 'not found');
    }
  };
}

/** After 'ready': serve `root` (dist/renderer) on app://swarm/. */
export function serveApp(protocol: Pick<Protocol, 'handle'>, root: string, csp: () => string): void {
  protocol.handle(APP_SCHEME, appProtocolHandler(root, csp));
}
