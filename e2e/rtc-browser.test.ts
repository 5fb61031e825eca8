// WebRTC between a headless Chromium tab (browser/rtc.ts, simple-peer on the tab's RTCPeerConnection)
// and Node (worker/node-rtc.ts, simple-peer on @roamhq/wrtc): real data channels on both sides.
// A tiny WebSocket relay carries the signaling, as the coordinator does. With each side as the
// initiator, the test connects, exchanges seeded messages (a 200 KB one chunked by ChunkedLink and
// hundreds of small ones) checked byte for byte on both ends, and destroys the tab's peer to time
// Node's onClose; the first pair also sends 8 MiB of 64 KiB messages each way in a tight loop. A
// third pair sends bursts larger than the data channels' 16 MiB send queues, which RtcPeer.send
// must absorb (past that queue Chromium throws, wrtc silently drops messages), then Node destroys
// its peer and the tab must notice.
//
// Environment: CHROMIUM_PATH (default /usr/bin/chromium), RTC_FLOOD_MIB (default 8), RTC_BURST_MIB
// (default 20), RTC_LOG_SIGNALS=1 prints the relayed signaling (offers, answers, ICE candidates).
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { bundle, pageHtml, serveStatic } from '../cli/static-site.js';
import { nodeRtc } from '../worker/node-rtc.js';
import { NODE_SEED, TAB_SEED } from './browser/rtc-payloads.js';
import { LOOPBACK_ONLY_PERMISSIONS, launchChromium, loopbackOnly } from './chromium.js';
import { type Connected, type FloodReceiveReport, type FloodSendReport, connect, exchange, floodReceive, floodSend } from './browser/rtc-steps.js';

const ENTRY = fileURLToPath(new URL('./browser/rtc-entry.ts', import.meta.url));
const MIB = 2 ** 20;
const FLOOD_MESSAGE = 64 * 1024;
const FLOOD_MIB = Number(process.env.RTC_FLOOD_MIB) || 8;
const BURST_MIB = Number(process.env.RTC_BURST_MIB) || 20;
/** Connecting and closing must finish within this long. */
const STEP_TIMEOUT_MS = 10_000;
/**
 * An exchange or a flood gives up after this long without a message. Generous: on a loaded CI
 * machine a lost loopback packet costs SCTP a retransmission timeout that doubles each time.
 */
const STALL_MS = 20_000;

let browser: Browser | undefined;
let page: Page;
let site: { url: string; close(): Promise<void> } | undefined;
let relay: WebSocketServer | undefined;
let relayUrl = '';
const nodePeers: Connected[] = [];

const ms = (t: number) => `${t.toFixed(0)} ms`;

/**
 * The signaling relay: the two sockets that join the same path (a room) get each other's text
 * messages; what one sends before the other joins is queued, so neither side has to wait.
 */
async function startRelay(): Promise<string> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  relay = wss;
  const rooms = new Map<string, { sockets: WebSocket[]; queued: string[] }>();
  wss.on('connection', (socket, req) => {
    const name = req.url ?? '/';
    const room = rooms.get(name) ?? { sockets: [], queued: [] };
    rooms.set(name, room);
    if (room.sockets.length === 2) return socket.close(1008, `room ${name} is full`);
    room.sockets.push(socket);
    if (room.sockets.length === 2) for (const m of room.queued.splice(0)) socket.send(m);
    socket.on('message', (data) => {
      const text = data.toString();
      if (process.env.RTC_LOG_SIGNALS) console.log(`[signal ${name}] ${text}`);
      const other = room.sockets.find((s) => s !== socket);
      if (other) other.send(text);
      else room.queued.push(text);
    });
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('error', reject);
    wss.once('listening', () => resolve());
  });
  return `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
}

async function openSocket(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return socket;
}

beforeAll(async () => {
  const t0 = performance.now();
  const [served, relayAt] = await Promise.all([
    bundle(ENTRY).then((js) => serveStatic({ '/': pageHtml('WebRTC checks', '/rtc-entry.js'), '/rtc-entry.js': { type: 'text/javascript; charset=utf-8', body: js } })),
    startRelay(),
  ]);
  site = served;
  const url = `${served.url}/`;
  relayUrl = relayAt;
  browser = await launchChromium();
  const context = await browser.newContext({ permissions: loopbackOnly ? LOOPBACK_ONLY_PERMISSIONS : [] });
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') console.error(`[chromium ${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => console.error(`[chromium page error] ${e.message}`));
  await page.goto(url);
  await page.waitForFunction(() => window.__rtc !== undefined);
  const mode = loopbackOnly ? 'loopback only: loopback allowed and media permission granted' : "Chromium's WebRTC defaults";
  console.log(`[rtc] bundle, relay, Chromium launch and page load: ${ms(performance.now() - t0)} (${mode})`);
}, 60_000);

afterAll(async () => {
  for (const n of nodePeers) n.peer.destroy();
  await browser?.close();
  for (const c of relay?.clients ?? []) c.terminate();
  relay?.close();
  await site?.close();
});

/** Connect the tab and a Node peer through the relay's `room`; `tabInitiates` picks the offerer. */
async function pair(room: string, tabInitiates: boolean): Promise<Connected> {
  const socket = await openSocket(`${relayUrl}/${room}`);
  const [tabMs, node] = await Promise.all([
    page.evaluate(([r, rm, i, t]) => window.__rtc.connect(r, rm, i, t), [relayUrl, room, tabInitiates, STEP_TIMEOUT_MS] as const),
    connect(nodeRtc, socket, !tabInitiates, STEP_TIMEOUT_MS),
  ]);
  nodePeers.push(node);
  console.log(`[rtc] ${room}: connected in ${ms(node.connectMs)} (Node's view), ${ms(tabMs)} (the tab's)`);
  return node;
}

async function checkExchange(room: string, node: Connected): Promise<void> {
  const [tab, own] = await Promise.all([
    page.evaluate(([a, b, t]) => window.__rtc.exchange(a, b, t), [TAB_SEED, NODE_SEED, STALL_MS] as const),
    exchange(node.peer, NODE_SEED, TAB_SEED, STALL_MS),
  ]);
  console.log(`[rtc] ${room}: exchange checked in ${ms(own.ms)} (Node), ${ms(tab.ms)} (tab)`);
  expect(tab.problems, 'what the tab received from Node').toEqual([]);
  expect(own.problems, 'what Node received from the tab').toEqual([]);
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

function floodLine(what: string, mib: number, sent: FloodSendReport, got: FloodReceiveReport): string {
  const threw = sent.error ? `, threw after ${plural(sent.sent, 'message')}: ${sent.error}` : '';
  const rate = `${((mib / got.ms) * 1000).toFixed(1)} MiB/s`;
  const arrived = got.problems.length === 0 ? `all arrived after ${ms(got.ms)} (${rate})` : `${got.received} arrived`;
  return `${mib} MiB ${what}: send loop ${ms(sent.loopMs)}${threw}, ${arrived}`;
}

async function checkFloodFromTab(room: string, node: Connected, mib: number): Promise<void> {
  const count = (mib * MIB) / FLOOD_MESSAGE;
  const received = floodReceive(node.peer, count, FLOOD_MESSAGE, STALL_MS);
  const sent = await page.evaluate(([c, s]) => window.__rtc.floodSend(c, s), [count, FLOOD_MESSAGE] as const);
  const got = await received;
  console.log(`[rtc] ${room}: ${floodLine('tab → Node', mib, sent, got)}`);
  expect(sent.error, 'the tab sending the flood').toBeUndefined();
  expect(got.problems, 'the flood Node received').toEqual([]);
}

async function checkFloodFromNode(room: string, node: Connected, mib: number): Promise<void> {
  const count = (mib * MIB) / FLOOD_MESSAGE;
  await page.evaluate(([c, s, t]) => window.__rtc.startFloodReceive(c, s, t), [count, FLOOD_MESSAGE, STALL_MS] as const);
  const sent = floodSend(node.peer, count, FLOOD_MESSAGE);
  const got = await page.evaluate(() => window.__rtc.floodReceived());
  console.log(`[rtc] ${room}: ${floodLine('Node → tab', mib, sent, got)}`);
  expect(sent.error, 'Node sending the flood').toBeUndefined();
  expect(got.problems, 'the flood the tab received').toEqual([]);
}

/** Rejects after STEP_TIMEOUT_MS with `what` in the message. */
function deadline(what: string): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} within ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS).unref());
}

async function checkTabClose(room: string, node: Connected): Promise<void> {
  const t0 = performance.now();
  await page.evaluate(() => window.__rtc.destroy());
  const closed = await Promise.race([node.closed, deadline("Node's onClose did not fire after the tab destroyed its peer")]);
  console.log(`[rtc] ${room}: Node's onClose fired ${ms(closed.at - t0)} after the tab's destroy: "${closed.why}"`);
  expect(closed.why).toBe('the remote peer closed the connection');
}

async function checkNodeClose(room: string, node: Connected): Promise<void> {
  const t0 = performance.now();
  node.peer.destroy();
  const why = await Promise.race([page.evaluate(() => window.__rtc.closed()), deadline("the tab's onClose did not fire after Node destroyed its peer")]);
  // Measured from Node, so it includes one page.evaluate round trip.
  console.log(`[rtc] ${room}: the tab's onClose fired within ${ms(performance.now() - t0)} of Node's destroy: "${why}"`);
  // wrtc aborts the SCTP association when it closes, which Chromium reports as a data channel error
  // ("User-Initiated Abort"): either way the reason says what happened, in words.
  expect(why).toMatch(/^the remote peer closed the (connection|channel)$/);
}

describe('WebRTC data channels between a Chromium tab and Node', () => {
  it(`the tab initiates: connect, exchange, ${FLOOD_MIB} MiB each way, the tab closes`, async () => {
    const node = await pair('tab-initiates', true);
    await checkExchange('tab-initiates', node);
    await checkFloodFromTab('tab-initiates', node, FLOOD_MIB);
    await checkFloodFromNode('tab-initiates', node, FLOOD_MIB);
    await checkTabClose('tab-initiates', node);
  }, 120_000);

  it('Node initiates: connect, exchange, the tab closes', async () => {
    const node = await pair('node-initiates', false);
    await checkExchange('node-initiates', node);
    await checkTabClose('node-initiates', node);
  }, 60_000);

  it(`bursts of ${BURST_MIB} MiB, past the 16 MiB send queues, arrive whole both ways; Node closes`, async () => {
    const node = await pair('bursts', true);
    await checkFloodFromTab('bursts', node, BURST_MIB);
    await checkFloodFromNode('bursts', node, BURST_MIB);
    await checkNodeClose('bursts', node);
  }, 120_000);
});
