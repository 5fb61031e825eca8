// The hardening applied to every window and session of the desktop app (Electron's security
// checklist): pages are untrusted code with no Node, no navigation away from the app, no popups,
// no permissions, a strict CSP, and IPC answered only for this app's own frames.
import type { IpcMainEvent, IpcMainInvokeEvent, Session, WebContents, WebPreferences } from 'electron';

/** The dashboard's and trainer's origin (protocol.ts serves it). */
export const APP_SCHEME = 'app';
export const APP_HOST = 'swarm';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;

export function secureWebPreferences(preload: string): WebPreferences {
  return {
    preload,
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    webviewTag: false,
    experimentalFeatures: false,
    spellcheck: false,
    navigateOnDragDrop: false,
  };
}

/**
 * `scheme://host[:port]`, or undefined for what is not a URL. Node's URL gives origin 'null' for
 * schemes it does not know (app:), while Chromium treats our registered standard scheme as a real
 * origin; so the origin is built from its parts, the same way for every scheme.
 */
export function originOf(url: string | undefined): string | undefined {
  if (!url || !URL.canParse(url)) return undefined;
  const u = new URL(url);
  if (!u.host) return undefined;
  return `${u.protocol}//${u.host}`.toLowerCase();
}

const LOOPBACK = ['ws://127.0.0.1:*', 'http://127.0.0.1:*', 'ws://localhost:*', 'http://localhost:*'];
/**
 * Any TLS origin: the Runs page reads each listed run's model spec from its coordinator, and a user
 * may add a network whose RPC is anywhere; those origins come from the chain and the user, not from
 * a list known at start. Scripts still load from the app only; plain http and ws stay limited to the
 * loopback and the configured origins.
 */
const TLS = ['https:', 'wss:'];

/** The Content-Security-Policy of the app's pages; `origins` are the coordinator's, RPC's and data's. */
export function contentSecurityPolicy(origins: readonly string[] = []): string {
  // Only well-formed origins reach the header: a ';' or space smuggled in would add directives.
  const extra = [...new Set(origins.map((o) => originOf(o)).filter((o): o is string => o !== undefined))];
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    `connect-src 'self' ${[...LOOPBACK, ...TLS, ...extra].join(' ')}`,
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'none'",
  ].join('; ');
}

/** The policy with no configured origins (the loopback coordinator only). */
export const CSP = contentSecurityPolicy();

type HardenableSession = Pick<Session, 'setPermissionRequestHandler' | 'setPermissionCheckHandler' | 'setDevicePermissionHandler'> & {
  webRequest: Pick<Session['webRequest'], 'onHeadersReceived'>;
};

/** CSP on every response (`csp`: the policy now; it follows the run joined), and no permission of any kind (WebGPU needs none). */
export function hardenSession(session: HardenableSession, csp: () => string = () => CSP): void {
  session.webRequest.onHeadersReceived((details, callback) => {
    // Drop any server-sent CSP (in any letter case) so exactly ours applies.
    const headers = Object.fromEntries(Object.entries(details.responseHeaders ?? {}).filter(([k]) => k.toLowerCase() !== 'content-security-policy'));
    callback({ responseHeaders: { ...headers, 'Content-Security-Policy': [csp()] } });
  });
  session.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));
  session.setPermissionCheckHandler(() => false);
  session.setDevicePermissionHandler(() => false);
}

type HardenableContents = Pick<WebContents, 'on' | 'setWindowOpenHandler'>;

/** No navigation off the app's origin, no new windows, no webviews. */
export function hardenContents(contents: HardenableContents, appOrigin = APP_ORIGIN): void {
  const stayHome = (event: { preventDefault(): void; url: string }) => {
    if (originOf(event.url) !== appOrigin) event.preventDefault();
  };
  contents.on('will-navigate', stayHome);
  contents.on('will-redirect', stayHome);
  contents.setWindowOpenHandler(() => ({ action: 'deny' }));
  contents.on('will-attach-webview', (event) => event.preventDefault());
}

type SenderEvent = Pick<IpcMainInvokeEvent | IpcMainEvent, 'senderFrame' | 'sender'>;

/**
 * An IPC message is answered only if it comes from a frame of the app's own origin in one of our
 * windows (`isOurs`): a page navigated elsewhere, or a subframe of another origin, is refused.
 */
export function isTrustedSender(event: SenderEvent, appOrigin = APP_ORIGIN, isOurs: (sender: WebContents) => boolean = () => true): boolean {
  const frame = event.senderFrame;
  if (!frame) return false; // the frame navigated or was destroyed before the message was handled
  return originOf(frame.url) === appOrigin && isOurs(event.sender);
}
