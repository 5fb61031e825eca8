// `npm run wallet -- status | claim | list AMOUNT PRICE_ETH | withdraw | claim-ownership FILE |
// claim-stake FILE | withdraw-stake | refund-stake`: an owner's view of the run in the
// environment's chain settings (SWARM_* with SWARM_KEY = the owner's key): ownership,
// credentials, re-issued credentials waiting; pull them, list some for sale, withdraw proceeds;
// claim ownership, or a share of an abandoned run's stake, from the proofs a worker saved (so
// nothing earned depends on the coordinator staying up), and withdraw it; a designer takes back
// the stake of an abandoned run none of whose roots survived.
import { readFileSync } from 'node:fs';
import { readFlags } from '../node/flags.js';
import { formatEther, parseEther } from 'viem';
import { chainConfigFromEnv } from '../shared/chain/config.js';
import { connectChain } from '../shared/chain/connect.js';
import { claimOwnership, claimStakeShare, holdings } from '../shared/chain/owner.js';
import { type ProofFile, checkProofsFor, readProofFile } from '../shared/ledger/proof-file.js';

function readProofs(file: string | undefined): ProofFile {
  if (!file) throw new Error('name the proofs file a worker kept (STATE_DIR/proofs/ACCOUNT-runID.json, by default runs/peers/NAME/proofs/…)');
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  return readProofFile(bytes, file);
}

const COMMANDS = ['status', 'claim', 'list', 'withdraw', 'claim-ownership', 'claim-stake', 'withdraw-stake', 'refund-stake'];
const USAGE = 'npm run wallet -- status | claim | list AMOUNT PRICE_ETH | withdraw | claim-ownership FILE | claim-stake FILE | withdraw-stake | refund-stake';

async function main(): Promise<void> {
  const [command = 'status', ...rest] = process.argv.slice(2);
  readFlags('npm run wallet', USAGE, () => {
    if (!COMMANDS.includes(command)) throw new Error(`unknown command ${command}`);
    if (command === 'list' && !(/^[1-9]\d*$/.test(rest[0] ?? '') && /^\d+(\.\d+)?$/.test(rest[1] ?? '')))
      throw new Error('list takes AMOUNT (a whole number) and PRICE_ETH (per credential, like 0.01)');
  });
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
    const { result } = await chain.list(runId, BigInt(amount), parseEther(price));
    console.log(`listing ${result}: ${amount} credential(s) at ${price} ETH each`);
  } else if (command === 'withdraw') {
    const owed = await chain.proceeds(me);
    await chain.withdrawProceeds();
    console.log(`withdrew ${formatEther(owed)} ETH of sales`);
  } else if (command === 'claim-ownership' || command === 'claim-stake') {
    const proofs = readProofs(rest[0]);
    checkProofsFor(proofs, rest[0], { chainId: cfg.chainId, registry: cfg.registry, runId });
    if (command === 'claim-ownership') {
      const e = await claimOwnership(chain, runId, proofs);
      console.log(`claimed ownership for ${e.account} from epoch ${e.epoch} (${e.cumulative} units)`);
    } else {
      const e = await claimStakeShare(chain, runId, proofs);
      console.log(`credited ${e.account} its share of the stake (epoch ${e.epoch}); it withdraws with \`npm run wallet -- withdraw-stake\``);
    }
  } else if (command === 'refund-stake') {
    await chain.refundStake(runId);
    console.log(`run ${runId}'s stake is credited back to its designer; it withdraws with \`npm run wallet -- withdraw-stake\``);
  } else if (command === 'withdraw-stake') {
    const owed = await chain.withdrawable(me);
    await chain.withdraw();
    console.log(`withdrew ${formatEther(owed)} ETH`);
  }
  const h = await holdings(chain, runId, me);
  console.log(
    `${me} in run ${runId}: ownership ${h.ownership} of ${h.totalOwnership} units (${h.share.toFixed(2)} %), ${h.credentials} credential(s) held, ${h.pending} waiting to be pulled, ${formatEther(h.proceeds)} ETH of sales and ${formatEther(h.stake)} ETH of stake to withdraw`,
  );
}

main().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
