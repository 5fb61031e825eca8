// What the browser tests share: the system Chromium launched headless for WebGPU and WebRTC on a
// GPU-less Linux box. (Pages are bundled and served by cli/static-site.ts.)
import { networkInterfaces } from 'node:os';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const ARGS = [
  // WebGPU is off on Linux by default; this alone yields the SwiftShader adapter here.
  '--enable-unsafe-webgpu',
  '--disable-gpu-sandbox',
  '--no-sandbox', // Chromium refuses to start as root with its sandbox, and CI containers run as root
  // No background traffic to Google's services: there is no internet here, and it would only add noise.
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/**
 * WebRTC needs nothing more when the machine has a network interface besides loopback: the tab
 * offers an mDNS-hidden host candidate that Node cannot resolve, but its checks reach Node's
 * plain candidates and Node learns the tab's address from them. With loopback alone the tab
 * gathers no candidate at all unless loopback is allowed and camera/microphone are granted
 * (without that permission Chromium only gathers on the default route's interface).
 */
export const loopbackOnly = !Object.values(networkInterfaces()).some((list) => list?.some((i) => !i.internal));
export const LOOPBACK_ONLY_PERMISSIONS = ['camera', 'microphone'];

/** `executablePath`: another launcher of CHROMIUM (a wrapper that runs it in a network namespace: bench/net/internet-swarm.ts); `args`: more flags. */
export function launchChromium(o: { executablePath?: string; args?: string[] } = {}): Promise<Browser> {
  const args = [...ARGS, ...(loopbackOnly ? ['--allow-loopback-in-peer-connection'] : []), ...(o.args ?? [])];
  return chromium.launch({ executablePath: o.executablePath ?? CHROMIUM, headless: true, args });
}
