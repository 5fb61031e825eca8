// Where a peer may reach its coordinator. A coordinator on another machine is reached over TLS
// (wss://) only: its messages place the peer, name its neighbours and carry its TURN credentials,
// and anyone on the path could rewrite them on plain ws://. Loopback never leaves this machine.

/** Whether `host` (a URL's hostname) names this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Why a peer must not dial `url` as its coordinator, as a sentence; undefined when it may. */
export function coordinatorUrlProblem(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url.slice(0, 200)}" is not a coordinator address: give it as wss://host:port`;
  }
  if (u.protocol !== 'wss:' && u.protocol !== 'ws:') return `${url.slice(0, 200)} is not a coordinator address: it must start with wss://`;
  if (u.protocol === 'ws:' && !isLoopbackHost(u.hostname)) {
    return `refusing to reach the coordinator at ${url.slice(0, 200)} without TLS: a coordinator on another machine is reached over wss://`;
  }
  return undefined;
}

/**
 * The http(s) twin of a ws(s) coordinator address: the same server, reached for the plain HTTP
 * documents it serves beside its WebSocket (its run's spec); TLS stays TLS.
 */
export function coordinatorHttpUrl(url: string): string {
  return url.replace(/^ws(s?):/i, 'http$1:');
}
