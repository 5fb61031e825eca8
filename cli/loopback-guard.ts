// Which requests a server on 127.0.0.1 may answer, decided from the request's head alone. A page
// anywhere on the web can have a browser send requests to a loopback port; by DNS rebinding (its
// own name made to resolve to 127.0.0.1) it can even read the answers, as if they were its own.
// What gives such a page away is the Host header (its name, not a loopback one) and, for
// cross-origin fetches, Origin and Sec-Fetch-Site. Pure, so every form of those is unit-tested
// (tests/loopback-guard.test.ts); cli/static-site.ts applies it to each request.

export type Verdict = { ok: true } | { ok: false; status: 400 | 403 | 405 | 421; why: string };

/** What the guard reads of a request (header values as Node gives them: absent or a string). */
export interface RequestHead {
  method?: string;
  /** The request target as sent (Node's req.url). */
  target?: string;
  host?: string;
  origin?: string;
  secFetchSite?: string;
}

/** The loopback names a browser may address this server by, as the URL parser writes them. */
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
/** A Host header's grammar: a name or IPv4 address, or an IPv6 address in brackets, and a port. */
const HOST_SYNTAX = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::(\d{1,5}))?$/i;
/** Sec-Fetch-Site values of a request made by the server's own page or typed by the user. */
const OWN_FETCH_SITES = new Set(['same-origin', 'none']);
const METHODS = new Set(['GET', 'HEAD']);

/** The loopback name `host` (a Host header or an origin's host) gives, or undefined when it names anything else or another port. */
function loopbackName(host: string, port: number): string | undefined {
  const m = HOST_SYNTAX.exec(host);
  if (!m || Number(m[2] ?? 80) !== port) return undefined;
  let name: string;
  try {
    // The URL parser lowercases, writes IPv6 and IPv4 in one form each, and checks both.
    name = new URL(`http://${m[1]}`).hostname;
  } catch {
    return undefined;
  }
  // "localhost." is the same name written fully qualified.
  name = name.replace(/\.$/, '');
  return LOOPBACK.has(name) ? name : undefined;
}

/** Whether `origin` (an Origin header) is one of this server's own: http, a loopback name, its port. */
export function isOwnOrigin(origin: string, port: number): boolean {
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return false; // "null" (a sandboxed or file page) included
  }
  return u.protocol === 'http:' && !u.username && !u.password && u.pathname === '/' && !u.search && !u.hash && loopbackName(u.host, port) !== undefined;
}

/** Printable and short, for quoting a header back in an answer. */
function quote(value: string): string {
  return JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);
}

/**
 * May the server on 127.0.0.1:`port` answer this request? Only a GET or HEAD for a path, sent to a
 * loopback name on its own port (anything else is a DNS-rebinding page or a misdirected client);
 * a `sameOriginOnly` path (local keys, the machine's processes) besides only to the server's own
 * pages: no Origin but its own, and no Sec-Fetch-Site saying another site asked.
 */
export function judgeRequest(req: RequestHead, port: number, sameOriginOnly: boolean): Verdict {
  const own = `http://127.0.0.1:${port}`;
  if (req.host === undefined || !loopbackName(req.host, port)) {
    const named = req.host === undefined ? 'names no host' : `names ${quote(req.host)}`;
    return { ok: false, status: 421, why: `This server answers only at ${own} (or localhost:${port}); the request ${named}, as a page using DNS rebinding would.` };
  }
  if (!req.target?.startsWith('/')) return { ok: false, status: 400, why: `This server answers requests for a path (such as /), not ${quote(req.target ?? '')}.` };
  if (!METHODS.has(req.method ?? '')) return { ok: false, status: 405, why: `This server only serves files: ${quote(req.method ?? '')} is not GET or HEAD.` };
  if (!sameOriginOnly) return { ok: true };
  if (req.origin !== undefined && !isOwnOrigin(req.origin, port)) {
    return { ok: false, status: 403, why: `This is given only to the dashboard's own pages at ${own}, not to a page of ${quote(req.origin)}.` };
  }
  if (req.secFetchSite !== undefined && !OWN_FETCH_SITES.has(req.secFetchSite)) {
    return { ok: false, status: 403, why: `This is given only to the dashboard's own pages at ${own}; the browser says a ${req.secFetchSite} page asked.` };
  }
  return { ok: true };
}
