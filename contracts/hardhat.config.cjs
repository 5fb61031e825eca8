// Config of the local EVM only (`hardhat node`); contracts are compiled by scripts/build-contracts.ts.
const os = require('node:os');
const path = require('node:path');
module.exports = {
  paths: { sources: path.join(__dirname, 'none'), cache: path.join(os.tmpdir(), 'swarm-hardhat-cache'), artifacts: path.join(os.tmpdir(), 'swarm-hardhat-artifacts') },
  networks: {
    hardhat: {
      chainId: Number(process.env.SWARM_CHAIN_ID || 31337),
      hardfork: 'cancun',
      accounts: { count: Number(process.env.SWARM_CHAIN_ACCOUNTS || 20) },
      // A block every second even when idle, as on a real chain: challenge windows end by the clock.
      mining: { auto: true, interval: 1000 },
    },
  },
};
