// The short form of `npm run bench:wan`: the emulated wide-area network does what it says (the
// shaper caps the rate, the bridge adds the one-way delay each way), a swarm trains across it to
// the loss it reaches on loopback (the network changes how fast, never what), and a
// replica slowed on purpose is given less work by expected-finish-time routing than by round-robin.
// Needs root for network namespaces: where they cannot be made, the tests say why and skip.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SWARM_DEFAULTS, type SwarmOptions } from '../cli/swarm.js';
import { EmulatedWan, cannotEmulate } from '../bench/net/wan.js';
import { runOn } from '../bench/wan.js';
import { TINY_MODEL } from './tiny-swarm.js';

const why = cannotEmulate();
if (why) console.warn(`tests/wan.test.ts skipped: ${why}`);

const LINK = { name: 'test-8mbit-30ms', rateMbit: 8, oneWayDelayMs: 30 };

/** Run a script with node inside peer i's namespace. */
function nodeIn(wan: EmulatedWan, i: number, script: string): ChildProcess {
  const [command, ...args] = wan.wrap(i, [process.execPath, '-e', script]);
  return spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
}
const output = (c: ChildProcess) =>
  new Promise<string>((resolve, reject) => {
    let out = '';
    c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exited ${code}: ${out}`))));
  });

describe.skipIf(!!why)('emulated WAN link', () => {
  let wan: EmulatedWan;
  let server: ChildProcess;
  beforeAll(async () => {
    wan = await EmulatedWan.create(LINK, 2);
    // Peer 1: a UDP echo and a TCP sink that reports how many bytes it took.
    server = nodeIn(
      wan,
      1,
      `const d=require('dgram').createSocket('udp4');d.on('message',(m,r)=>d.send(m,r.port,r.address));d.bind(9000);
       require('net').createServer((c)=>{let n=0;c.on('data',(b)=>n+=b.length);c.on('end',()=>c.end(String(n)));}).listen(9001,()=>console.log('up'));`,
    );
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`the test server in ${wan.netns(1)} exited (${code}) before listening`)));
    });
  });
  afterAll(async () => {
    server?.kill();
    await wan?.close();
  });

  it('delays every packet by the one-way delay each way, and caps the rate at the shaper', async () => {
    const probe = nodeIn(
      wan,
      0,
      `const d=require('dgram').createSocket('udp4');const rtts=[];let t;
       const ping=()=>{t=performance.now();d.send('x',9000,'10.77.0.11');};
       d.on('message',()=>{rtts.push(performance.now()-t);if(rtts.length<8)ping();else{d.close();bulk(rtts.sort((a,b)=>a-b)[4]);}});ping();
       function bulk(rtt){const s=require('net').connect(9001,'10.77.0.11');const buf=Buffer.alloc(65536);const t0=performance.now();let sent=0;
         const more=()=>{while(performance.now()-t0<3000){sent+=buf.length;if(!s.write(buf))return s.once('drain',more);}s.end();};
         s.on('connect',more);let reply='';s.on('data',(b)=>reply+=b);s.on('end',()=>{console.log(JSON.stringify({rtt,mbit:Number(reply)*8/((performance.now()-t0)/1000)/1e6}));});}`,
    );
    const { rtt, mbit } = JSON.parse(await output(probe)) as { rtt: number; mbit: number };
    expect(rtt).toBeGreaterThanOrEqual(2 * LINK.oneWayDelayMs);
    expect(rtt).toBeLessThan(2 * LINK.oneWayDelayMs + 25);
    // TCP over the link: at most its rate, and not far below it once the window has opened.
    expect(mbit).toBeLessThanOrEqual(LINK.rateMbit * 1.05);
    expect(mbit).toBeGreaterThan(LINK.rateMbit * 0.5);
  });

  it('leaves nothing behind when closed', async () => {
    const probe = await EmulatedWan.create(LINK, 1);
    await probe.close();
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toMatch(/wan-0\b/);
  });
});

describe.skipIf(!!why)('a swarm across the emulated WAN', () => {
  const swarm = (o: Partial<SwarmOptions> = {}): SwarmOptions => ({
    ...SWARM_DEFAULTS,
    ...TINY_MODEL,
    codec: 'subspace:k=8:int8',
    steps: 6,
    workers: 2,
    stages: 2,
    minPerStage: 1,
    microbatches: 4,
    averageEvery: 3,
    evalEvery: 6,
    evalBatches: 2,
    extraWarmup: 1,
    quiet: true,
    out: '',
    ...o,
  });

  it('trains to the loss it reaches on loopback, over a real shaper and the delay', async () => {
    const local = await runOn(undefined, { swarm: { ...swarm(), out: tmp('wan-lb') } });
    const far = await runOn(LINK, { swarm: { ...swarm(), out: tmp('wan-far') } });
    // The same steps of the same microbatches: equal but for the last float32 bits (a CI run differed
    // by 1e-7 relative), where a lost or reordered microbatch would move it by far more.
    expect(Math.abs(far.finalValLoss - local.finalValLoss) / local.finalValLoss).toBeLessThan(1e-5);
    expect(far.bytesPerToken).toBe(local.bytesPerToken);
    for (const b of [...far.steadyBusy, ...far.overallBusy]) expect(b).toBeGreaterThan(0);
    for (const b of [...far.steadyBusy, ...far.overallBusy]) expect(b).toBeLessThanOrEqual(1.0001);
  });

  it('gives a replica slowed on purpose less work by finish time, its turn by round-robin', async () => {
    const straggler = { workers: 4, minPerStage: 2, steps: 8, microbatches: 8 };
    const work = async (routing: 'finish-time' | 'round-robin') => {
      const r = await runOn(undefined, { swarm: { ...swarm(straggler), out: tmp(`wan-${routing}`) }, workerArgs: (i) => (i === 3 ? ['--slowdown', '4'] : []), routing });
      // The straggler against the other replica of its stage (workers are placed as they register), in
      // the steps after the warm-up (while channels are still opening, routes go where they can).
      const slow = r.byWorker['worker-3'];
      const peer = Object.entries(r.byWorker).find(([name, w]) => name !== 'worker-3' && w.stage === slow.stage)![1];
      return { slow: slow.microbatches, peer: peer.microbatches };
    };
    const routed = await work('finish-time');
    const rr = await work('round-robin');
    expect(rr.slow).toBe(rr.peer);
    expect(routed.slow).toBeLessThan(routed.peer);
  });
});

const tmp = (name: string) => mkdtempSync(join(tmpdir(), `${name}-`));
