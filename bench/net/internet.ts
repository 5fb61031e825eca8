// An emulated internet on this machine, for bench/internet.ts: an "internet" namespace whose bridge
// joins public addresses (198.51.100.0/24, a documentation range), and homes around it. A public
// home is a namespace with an address on that bridge. A NATed home is two namespaces: a router
// with a public address on the bridge and nftables masquerading its LAN, and the home behind it on
// a private subnet of its own. The NAT kinds are the kernel's own:
// - cone: `masquerade` keeps a flow's source port where it can, so one local socket maps to one
//   public port whatever it sends to (endpoint-independent mapping); conntrack lets in only replies
//   from where the socket sent to (port-restricted filtering). STUN learns the mapping; two such
//   homes punch through to each other directly.
// - symmetric: `masquerade fully-random` gives every new destination a random public port, so the
//   port STUN saw is not the one a neighbour sees: only a TURN relay (or a peer with a public
//   address, which answers whatever port it sees) connects it.
// No delay or rate limit: what this proves is reachability and the path each link takes. Needs root.
import { execFileSync } from 'node:child_process';

export type HomeKind = 'public' | 'cone' | 'symmetric';

export interface Home {
  name: string;
  kind: HomeKind;
  /** The namespace its processes run in. */
  netns: string;
  /** Its address as the home sees it (private behind a NAT). */
  ip: string;
  /** Its address as the internet sees it (the router's, behind a NAT). */
  publicIp: string;
}

/** Where the chain, the coordinator and the TURN relay listen: the internet namespace's own address. */
export const INTERNET_IP = '198.51.100.1';
export const INTERNET_NETNS = 'inet';
const PREFIX = 'inet';

function run(argv: string[], netns?: string): void {
  const [cmd, ...args] = netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why namespaces cannot be made here, or undefined when they can. */
export function cannotMakeInternet(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  for (const tool of ['ip', 'nft', 'turnserver'])
    try {
      execFileSync('which', [tool], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (bash scripts/setup.sh installs it)`;
    }
  try {
    run(['ip', 'netns', 'add', `${PREFIX}-probe`]);
    run(['ip', 'netns', 'del', `${PREFIX}-probe`]);
  } catch (e) {
    return `cannot create a network namespace: ${(e as Error).message.split('\n')[0]}`;
  }
  return undefined;
}

export class EmulatedInternet {
  readonly homes: Home[] = [];
  private readonly namespaces: string[] = [];

  /** The internet namespace, and a home of each kind asked for (named as given). */
  static create(homes: { name: string; kind: HomeKind }[]): EmulatedInternet {
    EmulatedInternet.removeLeftovers();
    const net = new EmulatedInternet();
    try {
      net.addNamespace(INTERNET_NETNS);
      run(['ip', 'link', 'add', 'br0', 'type', 'bridge'], INTERNET_NETNS);
      run(['ip', 'addr', 'add', `${INTERNET_IP}/24`, 'dev', 'br0'], INTERNET_NETNS);
      run(['ip', 'link', 'set', 'br0', 'up'], INTERNET_NETNS);
      // Addresses beyond this range (a peer's private host candidates) go nowhere, silently, as on the
      // internet. Without a default route a send to one fails, and coturn closes the allocation that tried.
      // (A veth to a gateway that is only a fixed MAC: sends succeed, and the frames are dropped at its other end.)
      run(['ip', 'link', 'add', 'nowhere', 'type', 'veth', 'peer', 'name', 'nowhere-end'], INTERNET_NETNS);
      for (const dev of ['nowhere', 'nowhere-end']) run(['ip', 'link', 'set', dev, 'up'], INTERNET_NETNS);
      run(['ip', 'addr', 'add', '10.255.255.1/30', 'dev', 'nowhere'], INTERNET_NETNS);
      run(['ip', 'neigh', 'add', '10.255.255.2', 'lladdr', '02:00:00:00:00:02', 'dev', 'nowhere', 'nud', 'permanent'], INTERNET_NETNS);
      run(['ip', 'route', 'add', 'default', 'via', '10.255.255.2'], INTERNET_NETNS);
      homes.forEach((h, i) => net.addHome(h.name, h.kind, i));
    } catch (e) {
      net.close();
      throw e;
    }
    return net;
  }

  home(name: string): Home {
    const h = this.homes.find((x) => x.name === name);
    if (!h) throw new Error(`no home named ${name}`);
    return h;
  }

  /** A command line that runs `argv` inside a namespace (a home's, or the internet's). */
  static wrap(netns: string, argv: string[]): string[] {
    return ['ip', 'netns', 'exec', netns, ...argv];
  }

  private addNamespace(ns: string): void {
    run(['ip', 'netns', 'add', ns]);
    this.namespaces.push(ns);
    run(['ip', 'link', 'set', 'lo', 'up'], ns);
  }

  /** A veth from `ns` (named `dev` there, with `cidr`) to the internet's bridge. */
  private plugIn(ns: string, dev: string, cidr: string, i: number): void {
    const outer = `up${i}`;
    run(['ip', 'link', 'add', outer, 'netns', INTERNET_NETNS, 'type', 'veth', 'peer', 'name', dev, 'netns', ns]);
    run(['ip', 'link', 'set', outer, 'master', 'br0'], INTERNET_NETNS);
    run(['ip', 'link', 'set', outer, 'up'], INTERNET_NETNS);
    run(['ip', 'addr', 'add', cidr, 'dev', dev], ns);
    run(['ip', 'link', 'set', dev, 'up'], ns);
    // The internet namespace does not forward: what is sent beyond the range is dropped there.
    run(['ip', 'route', 'add', 'default', 'via', INTERNET_IP], ns);
  }

  private addHome(name: string, kind: HomeKind, i: number): void {
    const netns = `${PREFIX}-${name}`;
    const publicIp = `198.51.100.${10 + i}`;
    this.addNamespace(netns);
    if (kind === 'public') {
      this.plugIn(netns, 'eth0', `${publicIp}/24`, i);
      this.homes.push({ name, kind, netns, ip: publicIp, publicIp });
      return;
    }
    const router = `${netns}-nat`;
    const lan = `192.168.${i + 1}`;
    this.addNamespace(router);
    this.plugIn(router, 'wan', `${publicIp}/24`, i);
    run(['ip', 'link', 'add', 'lan', 'netns', router, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    run(['ip', 'addr', 'add', `${lan}.1/24`, 'dev', 'lan'], router);
    run(['ip', 'link', 'set', 'lan', 'up'], router);
    run(['ip', 'addr', 'add', `${lan}.2/24`, 'dev', 'eth0'], netns);
    run(['ip', 'link', 'set', 'eth0', 'up'], netns);
    run(['ip', 'route', 'add', 'default', 'via', `${lan}.1`], netns);
    run(['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], router);
    const how = kind === 'symmetric' ? 'masquerade fully-random' : 'masquerade';
    // Only what the home sent out is let back in: nothing from the internet starts a flow inward.
    // Unsolicited packets to the router itself are dropped before conntrack confirms a flow for
    // them, as a home router does: a confirmed inbound flow would take the very public port the
    // home's next packet out needs, and masquerade would pick another (no NAT would be a cone).
    const rules = [
      'table ip nat {',
      `  chain post { type nat hook postrouting priority 100; oifname "wan" ${how}; }`,
      '}',
      'table ip filter {',
      '  chain input { type filter hook input priority 0; policy accept; iifname "wan" ct state new drop; }',
      '  chain forwarding { type filter hook forward priority 0; policy drop;',
      '    ct state established,related accept; iifname "lan" oifname "wan" accept; }',
      '}',
    ].join('\n');
    execFileSync('ip', ['netns', 'exec', router, 'nft', '-f', '-'], { input: rules, stdio: ['pipe', 'ignore', 'pipe'] });
    this.homes.push({ name, kind, netns, ip: `${lan}.2`, publicIp });
  }

  /** Remove every namespace made (their links go with them). */
  close(): void {
    for (const ns of this.namespaces.splice(0).reverse()) {
      try {
        run(['ip', 'netns', 'del', ns]);
      } catch {
        // Already gone.
      }
    }
  }

  /** A crashed earlier run may have left namespaces behind: they would clash. */
  private static removeLeftovers(): void {
    const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter((n) => n === INTERNET_NETNS || n.startsWith(`${PREFIX}-`));
    for (const n of names) run(['ip', 'netns', 'del', n]);
  }
}
