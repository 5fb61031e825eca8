// `npm run buy -- --coordinator ws://HOST:PORT --prompt TEXT [--tokens 100] [--max-price-eth 0.01]`:
// an inference buyer from the command line. Uses the chain in the environment (SWARM_RPC_URL,
// SWARM_CHAIN_ID, SWARM_REGISTRY, SWARM_TOKENS, SWARM_RUN_ID, SWARM_KEY = the buyer's key): buys a
// credential from the cheapest listing if it holds none, spends it on the prompt, and prints the
// swarm's answer as it is generated, then the receipt and the time to the first token.
import { parseArgs } from 'node:util';
import { formatEther, parseEther } from 'viem';
import WebSocket from 'ws';
import { chainConfigFromEnv } from '../shared/chain/config.js';
import { connectChain } from '../shared/chain/connect.js';
import { ensureCredential, spendAndAsk } from '../shared/buyer/market.js';
import type { WebSocketConstructor } from '../shared/swarm/coordinator-client.js';
import { MAX_GENERATED_TOKENS, MAX_PROMPT_CHARS } from '../shared/swarm/protocol.js';
import { readFlags } from '../node/flags.js';

const USAGE = 'npm run buy -- --coordinator ws://HOST:PORT --prompt TEXT [--tokens 100 --max-price-eth 0.01]';

/** The flags, checked before the chain is touched. */
function buyFlags() {
  const { values } = parseArgs({
    options: { coordinator: { type: 'string' }, prompt: { type: 'string' }, tokens: { type: 'string', default: '100' }, 'max-price-eth': { type: 'string', default: '0.01' } },
    strict: true,
  });
  if (!values.coordinator) throw new Error('--coordinator ws://HOST:PORT is required');
  const prompt = values.prompt ?? '';
  if (!prompt || prompt.length > MAX_PROMPT_CHARS) throw new Error(`--prompt must be 1..${MAX_PROMPT_CHARS} characters`);
  const tokens = Number(values.tokens);
  if (!Number.isInteger(tokens) || tokens < 1 || tokens > MAX_GENERATED_TOKENS) throw new Error(`--tokens must be an integer in 1..${MAX_GENERATED_TOKENS}`);
  const price = values['max-price-eth']!;
  if (!/^\d+(\.\d+)?$/.test(price)) throw new Error(`--max-price-eth must be an amount of ETH like 0.01, got ${price}`);
  return { coordinator: values.coordinator, prompt, tokens, maxPrice: parseEther(price) };
}

async function main(): Promise<void> {
  const { coordinator, prompt, tokens, maxPrice } = readFlags('npm run buy', USAGE, buyFlags);
  const cfg = chainConfigFromEnv(process.env);
  if (!cfg?.key) throw new Error('set the chain in the environment: SWARM_RPC_URL, SWARM_CHAIN_ID, SWARM_REGISTRY, SWARM_TOKENS, SWARM_RUN_ID and SWARM_KEY (your key)');
  const chain = await connectChain(cfg);
  const paid = await ensureCredential(chain, cfg.runId, chain.account!, maxPrice);
  if (paid > 0n) console.log(`bought 1 credential for ${formatEther(paid)} ETH`);
  console.log("spending 1 credential and waiting for the swarm's answer…");
  const t0 = performance.now();
  let firstMs: number | undefined;
  let shown = 0;
  process.stdout.write(prompt);
  const onText = (text: string) => {
    firstMs ??= performance.now() - t0;
    process.stdout.write(text.slice(shown));
    shown = Math.max(shown, text.length);
  };
  const a = await spendAndAsk(chain, cfg.runId, coordinator, WebSocket as unknown as WebSocketConstructor, { prompt, maxTokens: tokens }, { onText });
  process.stdout.write(`${a.text.slice(shown)}\n`);
  const first = firstMs === undefined ? '' : `, first token after ${(firstMs / 1000).toFixed(2)} s`;
  console.log(`(spend ${a.spendId}, receipt ${a.answerHash} recorded on chain; ${a.text.length} characters in ${((performance.now() - t0) / 1000).toFixed(1)} s${first})`);
}

main().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
