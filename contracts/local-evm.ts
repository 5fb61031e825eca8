// Starts a local EVM (Hardhat 2's node, EDR inside) as a child process on a loopback port, for
// `npm start` and the contract tests. Its accounts come from Hardhat's well-known test mnemonic:
// they hold test ether on this chain only and must never be used anywhere else.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Hex, toHex } from 'viem';
import { type HDAccount, mnemonicToAccount } from 'viem/accounts';

export const TEST_MNEMONIC = 'test test test test test test test test test test test junk';

export interface LocalEvm {
  rpcUrl: string;
  chainId: number;
  /** Funded dev accounts (index 0 deploys and administers). */
  accounts: HDAccount[];
  /** Their private keys, for child processes (SWARM_KEY). */
  keys: Hex[];
  stop(): Promise<void>;
}

/** `port` on `host` if nothing holds it (0: any free one). A port in use fails with Node's EADDRINUSE (code and port), before the EVM starts. */
async function freePort(host: string, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Whether an EVM answers JSON-RPC at `url`. */
export async function rpcReady(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      // Something else holding the port may never answer.
      signal: AbortSignal.timeout(2000),
    });
    return r.ok;
  } catch {
    return false;
  }
}

/** `host`: the address it listens on (default loopback; an emulated internet's address in bench/internet.ts). */
export async function startLocalEvm(opts: { port?: number; host?: string; chainId?: number; accounts?: number; timeoutMs?: number } = {}): Promise<LocalEvm> {
  const host = opts.host ?? '127.0.0.1';
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const port = await freePort(host, opts.port);
  const chainId = opts.chainId ?? 31337;
  const count = opts.accounts ?? 20;
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--require',
      join(root, 'contracts/evm-guard.cjs'),
      join(root, 'node_modules/hardhat/internal/cli/cli.js'),
      '--config',
      join(root, 'contracts/hardhat.config.cjs'),
      'node',
      '--hostname',
      host,
      '--port',
      String(port),
    ],
    {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, HARDHAT_DISABLE_TELEMETRY_PROMPT: 'true', SWARM_CHAIN_ID: String(chainId), SWARM_CHAIN_ACCOUNTS: String(count) },
    },
  );
  let log = '';
  child.stdout!.on('data', (b) => (log = (log + b).slice(-4000)));
  child.stderr!.on('data', (b) => (log = (log + b).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const rpcUrl = `http://${host}:${port}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`local EVM exited with code ${child.exitCode}:\n${log}`);
    if (await rpcReady(rpcUrl)) break;
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`local EVM did not answer on ${rpcUrl} within ${opts.timeoutMs ?? 60_000} ms:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const accounts = Array.from({ length: count }, (_, i) => mnemonicToAccount(TEST_MNEMONIC, { addressIndex: i }));
  return {
    rpcUrl,
    chainId,
    accounts,
    keys: accounts.map((a) => toHex(a.getHdKey().privateKey!)),
    async stop() {
      if (child.exitCode === null) {
        child.kill();
        await exited;
      }
    },
  };
}
