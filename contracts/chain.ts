// `npm run chain [-- --port 8545 --workers 4]`: a local EVM with the contracts deployed and one run
// opened, left running; prints the environment each role needs (coordinator, workers, buyer), so
// the coordinator, workers and `npm run buy` can be started by hand against it. Ctrl-C stops it.
import { parseArgs } from 'node:util';
import { createPublicClient, createWalletClient, http, parseEther, zeroHash } from 'viem';
import { swarmChain } from '../shared/chain/client.js';
import { chainOf, exportBlock } from '../shared/chain/config.js';
import { deploySwarmContracts } from '../shared/chain/deploy.js';
import { startLocalEvm } from './local-evm.js';
import { intFlag, listenError, readFlags } from '../node/flags.js';

const USAGE = 'npm run chain [-- --port 8545 --workers 4 --target 1 --window 3]';

async function main(): Promise<void> {
  const { values, workers, port } = readFlags('npm run chain', USAGE, () => {
    const { values } = parseArgs({
      options: {
        port: { type: 'string', default: '8545' },
        workers: { type: 'string', default: '4' },
        target: { type: 'string', default: '1' },
        window: { type: 'string', default: '3' },
      },
      strict: true,
    });
    intFlag('target', values.target, 1);
    intFlag('window', values.window, 1);
    return { values, workers: intFlag('workers', values.workers), port: intFlag('port', values.port) };
  });
  const evm = await startLocalEvm({ port, accounts: 5 + workers }).catch((e: unknown) => {
    throw listenError(e, 'port');
  });
  const chain = chainOf(evm);
  const transport = http(evm.rpcUrl);
  const publicClient = createPublicClient({ chain, transport });
  const wallet = (i: number) => createWalletClient({ account: evm.accounts[i], chain, transport });
  const addresses = await deploySwarmContracts(publicClient, wallet(0), { coordinator: evm.accounts[1].address, veto: evm.accounts[2].address });
  const { result: runId } = await swarmChain(publicClient, addresses, wallet(3)).openRun({
    stake: parseEther('1'),
    computeTarget: BigInt(values.target!),
    designerBps: 1000,
    credentialSupply: 1000n,
    challengeWindow: BigInt(values.window!),
    modelHash: zeroHash,
  });
  const base = { rpcUrl: evm.rpcUrl, chainId: evm.chainId, ...addresses, runId };
  const line = (who: string, i: number) => exportBlock(who, { ...base, key: evm.keys[i] }).trimEnd();
  console.log(`local EVM on ${evm.rpcUrl} (chain ${evm.chainId}); run ${runId} opened by the designer ${evm.accounts[3].address}\n`);
  console.log(line('coordinator (npm run coordinator)', 1));
  for (let w = 0; w < workers; w++) console.log(line(`worker ${w} (npm run worker; only SWARM_RPC_URL and SWARM_KEY are read)`, 5 + w));
  console.log(line('buyer (npm run buy)', 4));
  console.log('\nthese keys are the public Hardhat test keys: use them on this local chain only. Ctrl-C stops the chain.');
  process.on('SIGINT', () => void evm.stop().then(() => process.exit(0)));
}

main().catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
