// Which web pages may open a socket to the coordinator. A browser names the page's origin on every
// WebSocket handshake and no page can forge it; a Node worker names none. Without this check any
// site a gamer visits could make their browser a peer of the run, using their GPU unasked.
import { isLoopbackHost } from '../shared/swarm/coordinator-url.js';

/** The desktop app's pages (electron/protocol.ts). */
export const APP_ORIGIN = 'app://swarm';

/**
 * Why a handshake from `origin` is refused, if it is: allowed are clients that name no origin (not a
 * browser), the desktop app, pages served from this machine (`npm start`'s dashboard), and `allowed`
 * ('*' allows every page).
 */
export function originProblem(origin: string | undefined, allowed: readonly string[]): string | undefined {
  if (origin === undefined || allowed.includes('*')) return undefined;
  if (origin === APP_ORIGIN || allowed.includes(origin)) return undefined;
  try {
    const u = new URL(origin);
    if ((u.protocol === 'http:' || u.protocol === 'https:') && isLoopbackHost(u.hostname)) return undefined;
  } catch {
    // Not a URL ("null" from a sandboxed frame or a file:// page): not a page we serve.
  }
  return `pages from ${origin.slice(0, 200)} may not join this run (allowed: this machine's pages, the desktop app${allowed.length ? `, ${allowed.join(', ')}` : ''})`;
}
