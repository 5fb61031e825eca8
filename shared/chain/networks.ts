// The networks the app ships with. `local` is the chain `npm run chain` serves on its default port,
// with the contracts at the addresses its first deployment gets (the deployer's first two nonces);
// `npm start` writes its own network file, since it picks a free port.
import type { Network } from './network.js';

export const LOCAL_NETWORK: Network = {
  name: 'local',
  chainId: 31337,
  rpcUrls: ['http://127.0.0.1:8545'],
  registry: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
  tokens: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
  stun: [],
};

export const SHIPPED_NETWORKS: readonly Network[] = [LOCAL_NETWORK];

/** A shipped network by name, or undefined. */
export const shippedNetwork = (name: string): Network | undefined => SHIPPED_NETWORKS.find((n) => n.name === name);
