// `npm run wallet -- status | claim | list AMOUNT PRICE_ETH | withdraw | claim-ownership FILE |
// claim-stake FILE`: an owner's view of the run in the environment's chain settings (SWARM_* with
// SWARM_KEY = the owner's key): ownership, credentials, re-issued credentials waiting; pull them,
// list some for sale, withdraw proceeds; claim ownership, or a share of an abandoned run's stake,
// from the proofs a worker saved (so nothing earned depends on the coordinator staying up).
import { readFileSync } from 'node:fs';
import { type Address, type Hex, formatEther, parseEther } from 'viem';
import { z } from 'zod';
import { ownershipId } from '../shared/chain/client.js';
import { chainConfigFromEnv } from '../shared/chain/config.js';
import { connectChain } from '../shared/chain/connect.js';
import { ServerMessageSchemas, formatIssues } from '../shared/swarm/protocol.js';

const ProofFileSchema = z.object({
  chainId: z.int(),
  registry: z.string(),
  tokens: z.string(),
  runId: z.string(),
  epochs: z.array(ServerMessageSchemas.settled.omit({ type: true })).min(1),
});

function readProofs(file: string | undefined) {
  if (!file) throw new Error('name the proofs file a worker kept (STATE_DIR/proofs/ACCOUNT-runID.json, by default runs/peers/NAME/proofs/…)');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  const r = ProofFileSchema.safeParse(json);
  if (!r.success) throw new Error(`${file} is not a proofs file: ${formatIssues('proofs', r.error)}`);
  return r.data;
}

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
  } else if (command === 'claim-ownership' || command === 'claim-stake') {
    const proofs = readProofs(rest[0]);
    if (proofs.chainId !== cfg.chainId || proofs.registry.toLowerCase() !== cfg.registry.toLowerCase() || BigInt(proofs.runId) !== runId) {
      throw new Error(
        `${rest[0]} holds proofs for run ${proofs.runId} on chain ${proofs.chainId} (${proofs.registry}), not for the configured run ${runId} on chain ${cfg.chainId}`,
      );
    }
    const run = await chain.run(runId);
    // Cumulative units: the latest usable root pays everything earlier ones did not.
    const usable = proofs.epochs
      .filter((p) => (command === 'claim-stake' ? BigInt(p.epoch) === run.settledEpoch : BigInt(p.epoch) <= run.settledEpoch))
      .sort((a, b) => b.epoch - a.epoch)[0];
    if (!usable) throw new Error(`none of the saved proofs is for the run's settled epoch ${run.settledEpoch} (run ${run.state})`);
    const account = usable.account as Address;
    const proof = usable.proof as Hex[];
    if (command === 'claim-ownership') {
      if (run.state !== 'trained') throw new Error(`run ${runId} is ${run.state}: ownership is claimable once it is trained`);
      await chain.claim(runId, BigInt(usable.epoch), account, BigInt(usable.cumulative), proof);
      console.log(`claimed ownership for ${account} from epoch ${usable.epoch} (${usable.cumulative} units)`);
    } else {
      if (run.state !== 'abandoned') throw new Error(`run ${runId} is ${run.state}: the stake is shared out only when a run is abandoned`);
      await chain.claimStakeShare(runId, account, BigInt(usable.cumulative), proof);
      console.log(`credited ${account} its share of the stake; it withdraws with \`npm run wallet -- withdraw-stake\``);
    }
  } else if (command === 'withdraw-stake') {
    const owed = await chain.withdrawable(me);
    await chain.withdraw();
    console.log(`withdrew ${formatEther(owed)} ETH`);
  } else if (command !== 'status') {
    throw new Error(`unknown command ${command}: use status, claim, list AMOUNT PRICE_ETH, withdraw, claim-ownership FILE, claim-stake FILE or withdraw-stake`);
  }
  const [own, total, creds, pending, proceeds, stake] = await Promise.all([
    chain.ownershipOf(runId, me),
    chain.supply(ownershipId(runId)),
    chain.credentialsOf(runId, me),
    chain.pendingCredentials(runId, me),
    chain.proceeds(me),
    chain.withdrawable(me),
  ]);
  const share = total > 0n ? (Number(own) / Number(total)) * 100 : 0;
  console.log(
    `${me} in run ${runId}: ownership ${own} of ${total} units (${share.toFixed(2)} %), ${creds} credential(s) held, ${pending} waiting to be pulled, ${formatEther(proceeds)} ETH of sales and ${formatEther(stake)} ETH of stake to withdraw`,
  );
}

main().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
