// An emulated wide-area network on this machine, for bench/wan.ts. Each peer gets its own network
// namespace, joined to the others by a veth pair whose host end is a port of delay-bridge (a
// user-space Ethernet bridge that holds every frame for the one-way delay). What is real: the
// namespaces, the kernel's TCP/UDP stacks and the rate limit, a token-bucket shaper (`tc qdisc tbf`)
// on both ends of every peer's veth, so uploads and downloads are each capped at the link's rate.
// What is emulated: the delay (this kernel has no netem), added in user space per frame.
//
// The coordinator stays in the root namespace, reached over an unshaped port of the same bridge
// (delayed like everything else: it sits across the internet from the peers too). Needs root.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface LinkProfile {
  name: string;
  /** Each peer's upload and download cap; undefined: unshaped. */
  rateMbit?: number;
  oneWayDelayMs: number;
}

/** The coordinator's address inside the emulated network. */
export const COORDINATOR_IP = '10.77.0.1';
const PREFIX = 'wan';

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}
function tc(...args: string[]): void {
  execFileSync('tc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why namespaces cannot be made here, or undefined when they can. */
export function cannotEmulate(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  try {
    ip('netns', 'add', `${PREFIX}-probe`);
    ip('netns', 'del', `${PREFIX}-probe`);
  } catch (e) {
    return `cannot create a network namespace: ${(e as Error).message.split('\n')[0]}`;
  }
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'no C compiler to build the delay bridge (scripts/setup.sh installs one)';
  }
  return undefined;
}

/** Build delay-bridge.c into a temporary directory; returns the binary's path. */
function buildBridge(): string {
  const out = join(mkdtempSync(join(tmpdir(), 'delay-bridge-')), 'delay-bridge');
  const src = fileURLToPath(new URL('./delay-bridge.c', import.meta.url));
  execFileSync('cc', ['-O2', '-o', out, src], { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}

/** Token bucket on an interface's egress: the rate, a burst of ~2 ms at that rate (≥ 2 frames), 100 ms of queue. */
function shape(dev: string, rateMbit: number, netns?: string): void {
  const burstBytes = Math.max(3200, Math.round((rateMbit * 1e6 * 0.002) / 8));
  const args = ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${rateMbit}mbit`, 'burst', String(burstBytes), 'latency', '100ms'];
  if (netns) execFileSync('ip', ['netns', 'exec', netns, 'tc', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  else tc(...args);
}

export class EmulatedWan {
  private bridge?: ChildProcess;
  private bridgeLog = '';
  private readonly made: string[] = [];

  private constructor(
    readonly profile: LinkProfile,
    readonly peers: number,
  ) {}

  /** Make `peers` namespaces (wan-0 … wan-N-1) on `profile`'s links, and the bridge between them. */
  static async create(profile: LinkProfile, peers: number): Promise<EmulatedWan> {
    const w = new EmulatedWan(profile, peers);
    EmulatedWan.removeLeftovers();
    try {
      await w.build();
    } catch (e) {
      await w.close();
      throw e;
    }
    return w;
  }

  /** The namespace of peer i (to run its process in with `ip netns exec`). */
  netns(i: number): string {
    return `${PREFIX}-${i}`;
  }

  /** A command line that runs `argv` inside peer i's namespace. */
  wrap(i: number, argv: string[]): string[] {
    return ['ip', 'netns', 'exec', this.netns(i), ...argv];
  }

  private async build(): Promise<void> {
    const ports: string[] = [];
    // The coordinator's port: an address in the root namespace, unshaped.
    ip('link', 'add', `${PREFIX}-c`, 'type', 'veth', 'peer', 'name', `${PREFIX}-cb`);
    this.made.push(`${PREFIX}-c`);
    ip('addr', 'add', `${COORDINATOR_IP}/24`, 'dev', `${PREFIX}-c`);
    ip('link', 'set', `${PREFIX}-c`, 'up');
    ip('link', 'set', `${PREFIX}-cb`, 'up');
    ports.push(`${PREFIX}-cb`);
    for (let i = 0; i < this.peers; i++) {
      const ns = this.netns(i);
      const host = `${PREFIX}-h${i}`;
      ip('netns', 'add', ns);
      this.made.push(`netns:${ns}`);
      ip('link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      this.made.push(host);
      ip('link', 'set', host, 'up');
      ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
      ip('netns', 'exec', ns, 'ip', 'addr', 'add', `10.77.0.${10 + i}/24`, 'dev', 'eth0');
      ip('netns', 'exec', ns, 'ip', 'link', 'set', 'eth0', 'up');
      if (this.profile.rateMbit !== undefined) {
        shape('eth0', this.profile.rateMbit, ns); // its upload
        shape(host, this.profile.rateMbit); // its download (the bridge writes into this end)
      }
      ports.push(host);
    }
    this.bridge = spawn(buildBridge(), [String(this.profile.oneWayDelayMs), ...ports], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.bridge.stderr!.on('data', (b: Buffer) => (this.bridgeLog += b.toString()));
    for (const deadline = Date.now() + 5000; !this.bridgeLog.includes('one-way delay'); await new Promise((r) => setTimeout(r, 20))) {
      if (this.bridge.exitCode !== null || Date.now() > deadline) throw new Error(`the delay bridge did not start: ${this.bridgeLog}`);
    }
  }

  /** Stop the bridge and remove every namespace and link made; returns the bridge's last words (frames forwarded, dropped). */
  async close(): Promise<string> {
    const b = this.bridge;
    if (b && b.exitCode === null) {
      const exited = new Promise((r) => b.once('exit', r));
      b.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    }
    for (const m of this.made.reverse()) {
      try {
        if (m.startsWith('netns:')) ip('netns', 'del', m.slice(6));
        else ip('link', 'del', m);
      } catch {
        // Already gone with its namespace.
      }
    }
    this.made.length = 0;
    return this.bridgeLog.trim().split('\n').at(-1) ?? '';
  }

  /** A crashed earlier run may have left namespaces and links behind: they would clash. */
  private static removeLeftovers(): void {
    const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter((n) => n.startsWith(`${PREFIX}-`));
    for (const n of names) ip('netns', 'del', n);
    try {
      ip('link', 'del', `${PREFIX}-c`);
    } catch {
      // None left.
    }
  }
}
