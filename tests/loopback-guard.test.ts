// The local servers' request guard (cli/loopback-guard.ts) on every form of Host and Origin a
// browser, curl or a DNS-rebinding page may send: the loopback names on the server's own port pass,
// in any letter case, fully qualified or with IPv6 brackets; other names, other ports, other
// schemes and malformed values do not; keys and the process list go only to the server's own pages.
import { describe, expect, it } from 'vitest';
import { isOwnOrigin, judgeRequest, type RequestHead } from '../cli/loopback-guard.js';

const PORT = 8080;
const get = (over: Partial<RequestHead>): RequestHead => ({ method: 'GET', target: '/', host: `127.0.0.1:${PORT}`, ...over });
const status = (req: RequestHead, sameOriginOnly = false) => {
  const v = judgeRequest(req, PORT, sameOriginOnly);
  return v.ok ? 200 : v.status;
};

describe('the Host a request names', () => {
  it.each([
    '127.0.0.1:8080',
    'localhost:8080',
    '[::1]:8080',
    'LOCALHOST:8080',
    'LocalHost:8080',
    'localhost.:8080',
    '127.0.0.1.:8080',
    '[0:0:0:0:0:0:0:1]:8080',
    '[::0001]:8080',
    'localhost:08080',
  ])('answers %s (a loopback name on its port)', (host) => {
    expect(status(get({ host }))).toBe(200);
  });

  it.each([
    ['evil.example:8080', 'a rebinding name'],
    ['evil.example', 'a rebinding name, no port'],
    ['localhost.evil.example:8080', 'a name that starts like localhost'],
    ['127.0.0.1.nip.io:8080', 'a name that resolves to 127.0.0.1'],
    ['app.localhost:8080', 'a subdomain of localhost'],
    ['127.0.0.1:8081', 'another port'],
    ['localhost:80', 'the default port, not its own'],
    ['127.0.0.1', 'no port (80), not its own'],
    ['[::1]', 'IPv6 without a port'],
    ['::1:8080', 'IPv6 without brackets'],
    ['[::2]:8080', 'another IPv6 address'],
    ['[::ffff:127.0.0.1]:8080', 'an IPv4-mapped address'],
    ['127.0.0.2:8080', 'another loopback address it does not listen on'],
    ['0.0.0.0:8080', 'the unspecified address'],
    ['localhost..:8080', 'two trailing dots'],
    ['127.0.0.1:', 'an empty port'],
    ['127.0.0.1:8080:8080', 'two ports'],
    ['user@127.0.0.1:8080', 'credentials'],
    ['127.0.0.1:8080/evil', 'a path'],
    ['127.0.0.1:8080 evil.example', 'two names'],
    ['', 'an empty Host'],
  ])('refuses %s (%s) with 421', (host) => {
    const v = judgeRequest(get({ host }), PORT, false);
    expect(v.ok).toBe(false);
    if (!v.ok) {
      expect(v.status).toBe(421);
      expect(v.why).toContain(`http://127.0.0.1:${PORT}`);
    }
  });

  it('refuses a request that names no host (HTTP/1.0) with 421, saying so', () => {
    const v = judgeRequest(get({ host: undefined }), PORT, false);
    expect(v).toEqual({ ok: false, status: 421, why: expect.stringContaining('names no host') });
  });

  it('refuses every path, public or not, at a rebinding name', () => {
    expect(status(get({ host: 'evil.example:8080', target: '/index.html' }))).toBe(421);
    expect(status(get({ host: 'evil.example:8080', target: '/config.json' }), true)).toBe(421);
  });

  it('quotes the Host it refused, cut short', () => {
    const v = judgeRequest(get({ host: `${'a'.repeat(300)}.example:8080` }), PORT, false);
    expect(!v.ok && v.why.length).toBeLessThan(250);
  });
});

describe('the request line', () => {
  it.each(['HEAD', 'GET'])('answers %s', (method) => expect(status(get({ method }))).toBe(200));
  it.each(['POST', 'PUT', 'DELETE', 'OPTIONS', undefined])('refuses %s with 405', (method) => expect(status(get({ method }))).toBe(405));
  it.each(['http://evil.example/config.json', '127.0.0.1:8080', '*', undefined])('refuses the target %s (not a path) with 400', (target) => {
    expect(status(get({ target }))).toBe(400);
  });
});

describe('who may read the keys and the machine (same-origin-only paths)', () => {
  it.each([
    [{}, 'no Origin (a same-origin GET)'],
    [{ origin: 'http://127.0.0.1:8080' }, 'its own origin'],
    [{ origin: 'http://localhost:8080' }, 'its own origin by name'],
    [{ origin: 'http://[::1]:8080' }, 'its own origin over IPv6'],
    [{ secFetchSite: 'same-origin' }, 'a fetch of its own page'],
    [{ secFetchSite: 'none' }, 'an address the user typed'],
    [{ origin: 'http://127.0.0.1:8080', secFetchSite: 'same-origin' }, 'both, as Chromium sends a same-origin POST'],
  ])('hands them to %o (%s)', (over, _why) => {
    expect(status(get({ target: '/config.json', ...over }), true)).toBe(200);
  });

  it.each([
    [{ origin: 'http://evil.example' }, 'another site'],
    [{ origin: 'http://evil.example:8080' }, 'a rebinding name on its port'],
    [{ origin: 'http://127.0.0.1:3000' }, 'another local server'],
    [{ origin: 'https://127.0.0.1:8080' }, 'another scheme'],
    [{ origin: 'null' }, 'a sandboxed or file page'],
    [{ origin: 'file://' }, 'a file page'],
    [{ origin: 'app://swarm' }, "the desktop app's scheme"],
    [{ origin: '' }, 'an empty Origin'],
    [{ origin: 'http://127.0.0.1:8080, http://evil.example' }, 'two origins, as Node joins a repeated header'],
    [{ secFetchSite: 'cross-site' }, 'a cross-site request without Origin (a no-cors GET)'],
    [{ secFetchSite: 'same-site' }, 'a page of localhost on another port'],
    [{ origin: 'http://127.0.0.1:8080', secFetchSite: 'cross-site' }, 'headers that disagree'],
  ])('refuses them to %o (%s) with 403', (over, _why) => {
    const v = judgeRequest(get({ target: '/machine', ...over }), PORT, true);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.status).toBe(403);
  });

  it('serves any other path whatever the Origin (no CORS header lets that page read it)', () => {
    expect(status(get({ target: '/data.txt', origin: 'app://swarm', secFetchSite: 'cross-site' }))).toBe(200);
  });
});

describe('isOwnOrigin', () => {
  it.each(['http://127.0.0.1:8080', 'http://LOCALHOST:8080', 'http://localhost.:8080', 'HTTP://[::1]:8080'])('%s is its own', (o) => {
    expect(isOwnOrigin(o, PORT)).toBe(true);
  });
  it.each(['http://127.0.0.1', 'http://127.0.0.1:8080/page', 'http://u:p@127.0.0.1:8080', 'ws://127.0.0.1:8080', 'http://127.0.0.1:8080?x', 'not a url'])('%s is not', (o) => {
    expect(isOwnOrigin(o, PORT)).toBe(false);
  });
  it('counts port 80 as the default', () => expect(isOwnOrigin('http://localhost', 80)).toBe(true));
});
