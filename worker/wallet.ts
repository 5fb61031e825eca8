// `npm run wallet -- status | claim | list AMOUNT PRICE_ETH | withdraw`: an owner's view of the run
// in the environment's chain settings (SWARM_* with SWARM_KEY = the owner's key): ownership,
// credentials, re-issued credentials waiting; pull them, list some for sale, withdraw proceeds.
import { formatEther, parseEther } from 'viem';
import { ownershipId } from '../shared/chain/client.js';
import { chainConfigFromEnv } from '../shared/chain/config.js';
import { connectChain } from '../shared/chain/connect.js';

async function main(): Promise<void> {
  const [command = 'status', ...rest] = process.argv.slice(2);
  const cfg = chainConfigFromEnv(process.env);
  if (!cfg?.key) throw new Error('set the chain in the environment: SWARM_RPC_URL, SWARM_CHAIN_ID, SWARM_REGISTRY, SWARM_TOKENS, SWARM_RUN_ID and SWARM_KEY (your key)');
  const chain = await connectChain(cfg);
  const me = chain.account!;
  const runId = cfg.runId;
  if (command === 'claim') {
    const { result } = await chain.claimCredentials(runId);
    console.log(`pulled ${result} re-issued credential(s)`);
  } else if (command === 'list') {
    const [amount, price] = rest;
    if (!/^[1-9]\d*$/.test(amount ?? '') || !price) throw new Error('usage: list AMOUNT PRICE_ETH (price per credential)');
    const { result } = await chain.list(runId, BigInt(amount), parseEther(price));
    console.log(`listing ${result}: ${amount} credential(s) at ${price} ETH each`);
  } else if (command === 'withdraw') {
    const owed = await chain.proceeds(me);
    await chain.withdrawProceeds();
    console.log(`withdrew ${formatEther(owed)} ETH of sales`);
  } else if (command !== 'status') {
    throw new Error(`unknown command ${command}: use status, claim, list AMOUNT PRICE_ETH or withdraw`);
  }
  const [own, total, creds, pending, proceeds] = await Promise.all([chain.ownershipOf(runId, me), chain.supply(ownershipId(runId)), chain.credentialsOf(runId, me), chain.pendingCredentials(runId, me), chain.proceeds(me)]);
  const share = total > 0n ? (Number(own) / Number(total)) * 100 : 0;
  console.log(`${me} in run ${runId}: ownership ${own} of ${total} units (${share.toFixed(2)} %), ${creds} credential(s) held, ${pending} waiting to be pulled, ${formatEther(proceeds)} ETH of sales to withdraw`);
}

main().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
