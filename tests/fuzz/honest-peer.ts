// A peer that keeps to the protocol but computes nothing, for checking that the swarm still works
// after (and while) the coordinator is fuzzed. Its data channels are real: NeighbourLinks over
// simple-peer and wrtc, signaled through the coordinator, so whatever the coordinator relays lands
// in a real WebRTC stack. It answers each round after `roundMs` with the seals of the inputs its
// routes say it computed from, signed by the neighbours that would have sent them (honest peers of
// one test share a key ring, as if the frames had really travelled).
import { WebSocket } from 'ws';
import { NeighbourLinks } from '../../shared/peer/links.js';
import { CoordinatorClient } from '../../shared/swarm/coordinator-client.js';
import { PeerKey } from '../../shared/swarm/identity.js';
import { applyViewChange, type PeerInfo, type Seal, type ServerMessageOf } from '../../shared/swarm/protocol.js';
import { FrameKind } from '../../shared/wire/frame.js';
import { sealMessage } from '../../shared/trust/seal.js';
import { nodeRtc } from '../../worker/node-rtc.js';
import { toHex } from '../../shared/base/hex.js';

export class HonestPeer {
  peerId = '';
  stage = -1;
  readonly client: CoordinatorClient;
  readonly rounds: Array<ServerMessageOf<'round'>> = [];
  readonly errors: string[] = [];
  /** Signals the coordinator relayed to it, and what its links made of them when they threw. */
  signals = 0;
  readonly signalThrows: unknown[] = [];
  committed = 0;
  private members: PeerInfo[] = [];
  private links?: NeighbourLinks;
  private key?: PeerKey;
  private beat?: ReturnType<typeof setInterval>;

  constructor(
    readonly name: string,
    url: string,
    private readonly ring: Map<string, PeerKey>,
    private readonly roundMs = 20,
  ) {
    this.client = new CoordinatorClient(url, WebSocket);
    this.client.on('assign', (m) => this.onAssign(m));
    this.client.on('peers', (m) => this.want(applyViewChange(this.members, m)));
    this.client.on('signal', (m) => this.onSignal(m));
    this.client.on('round', (m) => this.onRound(m));
    this.client.on('commit', (m) => this.onCommit(m));
    this.client.on('error', (m) => this.errors.push(m.message));
  }

  async connect(): Promise<this> {
    this.key = await PeerKey.generate();
    const { peerId } = await this.client.connect({ name: this.name, capability: { adapter: 'honest', kind: 'cpu', gflops: 5, memoryBytes: 1e9, maxLayers: 8 } }, { key: this.key });
    this.peerId = peerId;
    this.ring.set(peerId, this.key);
    this.links = new NeighbourLinks({
      self: peerId,
      rtc: nodeRtc,
      sendSignal: (to, data) => this.client.send({ type: 'signal', to, data }),
      onMessage: () => {},
      onChange: (connected) => this.client.send({ type: 'links', connected }),
      log: () => {},
      maxMessageBytes: 1 << 20,
      openTimeoutMs: 2000,
    });
    // Its assign may have come before its welcome resolved: open the channels it asked for now.
    this.want(this.members);
    this.beat = setInterval(() => this.client.send({ type: 'heartbeat', step: this.committed, bytesSent: 0, bytesReceived: 0 }), 100);
    return this;
  }

  /** Open channels to the peers it now has open. */
  connected(): string[] {
    return this.links?.connected() ?? [];
  }

  close(): void {
    clearInterval(this.beat);
    this.links?.close();
    this.client.close();
  }

  private onAssign(m: ServerMessageOf<'assign'>): void {
    this.stage = m.stage;
    this.want(m.peers);
    this.client.send({ type: 'ready', step: 0 });
  }

  /** Every peer of its own and the adjacent stages is a neighbour (hostile ones included: it cannot tell). */
  private want(peers: PeerInfo[]): void {
    this.members = peers;
    if (this.stage < 0) return;
    this.links?.set(peers.filter((p) => Math.abs(p.stage - this.stage) <= 1).map((p) => p.peerId));
  }

  private onSignal(m: ServerMessageOf<'signal'>): void {
    this.signals++;
    try {
      this.links?.signal(m.from, m.data);
    } catch (e) {
      this.signalThrows.push(e);
    }
  }

  private onRound(m: ServerMessageOf<'round'>): void {
    this.rounds.push(m);
    setTimeout(() => void this.report(m), this.roundMs);
  }

  private async report(m: ServerMessageOf<'round'>): Promise<void> {
    const mine = m.routes.filter((path) => path.includes(this.peerId));
    const last = this.stage === m.routes[0].length - 1;
    const inputs = await Promise.all(this.inputsOf(m).map((i) => this.sealFrom(i)));
    this.client.send({ type: 'round-done', round: m.round, microbatches: mine.length, inputs, ...(last && { lossSum: 2 * mine.length }) });
  }

  /** The activation from the previous hop and the gradient from the next, for each microbatch routed through it. */
  private inputsOf(m: ServerMessageOf<'round'>): Array<Omit<Seal, 'sig'>> {
    return m.routes.flatMap((path, microbatch) => {
      const at = path.indexOf(this.peerId);
      const from = [at > 0 && ([FrameKind.Activation, path[at - 1]] as const), at >= 0 && at < path.length - 1 && ([FrameKind.Gradient, path[at + 1]] as const)];
      return from.filter((f) => f !== false).map(([kind, peer]) => ({ kind, tag: m.round, microbatch, hash: '0'.repeat(64), from: peer, to: this.peerId }));
    });
  }

  private async sealFrom(facts: Omit<Seal, 'sig'>): Promise<Seal> {
    const key = this.ring.get(facts.from);
    if (!key) throw new Error(`no key of ${facts.from} in the honest ring`);
    return { ...facts, sig: toHex(await key.sign(sealMessage(facts))) };
  }

  private onCommit(m: ServerMessageOf<'commit'>): void {
    if (!m.apply) return;
    this.committed = m.step;
    if (m.average) this.client.send({ type: 'checkpoint', step: m.step, hash: 'ab'.repeat(32) });
  }
}
