// A typed viem client for the swarm's contracts: read runs, ownership and credentials; claim,
// list, buy and spend; watch events. Environment-agnostic (Node, browser, Electron): the caller
// hands in viem clients, so the same code runs with a local key, an injected wallet or none.
import {
  type Abi,
  type Account,
  type Address,
  BaseError,
  type Chain,
  ContractFunctionRevertedError,
  type Hash,
  type Hex,
  type Log,
  type PublicClient,
  type TransactionReceipt,
  type Transport,
  type WalletClient,
  isAddress,
  keccak256,
  toHex,
} from 'viem';
import { modelTokensAbi } from './generated/ModelTokens.js';
import { runRegistryAbi } from './generated/RunRegistry.js';

export interface SwarmAddresses {
  registry: Address;
  tokens: Address;
}

export const RUN_STATES = ['none', 'open', 'training', 'trained', 'abandoned'] as const;
export type RunState = (typeof RUN_STATES)[number];

export interface RunInfo {
  runId: bigint;
  designer: Address;
  state: RunState;
  designerBps: number;
  challengeWindow: bigint;
  stake: bigint;
  computeTarget: bigint;
  credentialSupply: bigint;
  providers: bigint;
  epochs: bigint;
  settledEpoch: bigint;
  designerPaid: boolean;
  modelHash: Hex;
  stakePaid: bigint;
}

/** Where an abandoned run's stake goes (RunRegistry.stakeOutcome). */
export const STAKE_TO = ['undecided', 'designer', 'contributors'] as const;
export interface StakeOutcome {
  /** 'undecided': not abandoned, or a root posted before is still in its window (until `decidedAt`). */
  to: (typeof STAKE_TO)[number];
  /** The root the contributors are paid from ('contributors'), or whose window is awaited ('undecided'). */
  epoch: bigint;
  /** When an undecided outcome is decided (the awaited root's window ends; chain time, seconds). */
  decidedAt?: bigint;
}

/** How many open listings `openListings` reads unless told: one bounded call, whatever the history. */
export const OPEN_LISTINGS_LIMIT = 100;

export interface EpochInfo {
  root: Hex;
  total: bigint;
  claimableAt: bigint;
  vetoed: boolean;
}

export interface ListingInfo {
  listingId: bigint;
  seller: Address;
  runId: bigint;
  amount: bigint;
  price: bigint;
}

export interface SpendInfo {
  spendId: bigint;
  buyer: Address;
  runId: bigint;
  amount: bigint;
  promptHash: Hex;
  served: boolean;
}

export interface Sent<T> {
  hash: Hash;
  receipt: TransactionReceipt;
  result: T;
}

/** A transaction the contract refused, with the contract's own error name and arguments. */
export class ChainRevert extends Error {
  constructor(
    readonly call: string,
    readonly errorName: string,
    readonly args: readonly unknown[],
  ) {
    super(`${call} reverted: ${errorName}(${args.map(String).join(', ')})`);
    this.name = 'ChainRevert';
  }
}

/** EIP-712 type of a signed spend (ModelTokens.SPEND_TYPEHASH). */
export const SPEND_TYPES = {
  Spend: [
    { name: 'buyer', type: 'address' },
    { name: 'runId', type: 'uint256' },
    { name: 'amount', type: 'uint256' },
    { name: 'promptHash', type: 'bytes32' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
} as const;

export const ownershipId = (runId: bigint) => runId * 2n;
export const credentialId = (runId: bigint) => runId * 2n + 1n;
/** What a spend commits to on chain: the prompt's hash, never the prompt. */
export const promptHash = (prompt: string): Hex => keccak256(toHex(prompt));

// The registry calls into the tokens contract, whose reverts bubble up: decode those errors too.
const registryAbiWithTokenErrors: Abi = [
  ...runRegistryAbi,
  ...modelTokensAbi.filter((x) => x.type === 'error' && !runRegistryAbi.some((y) => y.type === 'error' && y.name === x.name)),
];

function checkAddress(a: string, what: string): Address {
  if (!isAddress(a)) throw new Error(`${what} is not an address: ${a}`);
  return a;
}

export type SwarmChain = ReturnType<typeof swarmChain>;

export function swarmChain(publicClient: PublicClient<Transport, Chain | undefined>, addresses: SwarmAddresses, wallet?: WalletClient<Transport, Chain | undefined, Account>) {
  const registry = checkAddress(addresses.registry, 'registry');
  const tokens = checkAddress(addresses.tokens, 'tokens');

  async function send<T>(address: Address, abi: Abi, functionName: string, args: readonly unknown[], value?: bigint): Promise<Sent<T>> {
    if (!wallet) throw new Error(`${functionName}: no wallet connected, this client can only read`);
    const call = `${address === registry ? 'RunRegistry' : 'ModelTokens'}.${functionName}`;
    try {
      const { request, result } = await publicClient.simulateContract({ address, abi, functionName, args, value, account: wallet.account, chain: wallet.chain });
      const hash = await wallet.writeContract(request);
      const receipt = await publicClient.waitForTransactionReceipt({ hash });
      if (receipt.status !== 'success') throw new Error(`${call}: transaction ${hash} reverted`);
      return { hash, receipt, result: result as T };
    } catch (e) {
      const reverted = e instanceof BaseError ? e.walk((x) => x instanceof ContractFunctionRevertedError) : undefined;
      if (reverted instanceof ContractFunctionRevertedError && reverted.data?.errorName) {
        throw new ChainRevert(call, reverted.data.errorName, reverted.data.args ?? []);
      }
      throw e;
    }
  }
  const reg = <T = void>(fn: string, args: readonly unknown[], value?: bigint) => send<T>(registry, registryAbiWithTokenErrors, fn, args, value);
  const tok = <T = void>(fn: string, args: readonly unknown[], value?: bigint) => send<T>(tokens, modelTokensAbi, fn, args, value);
  const readReg = (functionName: string, args: readonly unknown[]) => publicClient.readContract({ address: registry, abi: runRegistryAbi as Abi, functionName, args });
  const readTok = (functionName: string, args: readonly unknown[]) => publicClient.readContract({ address: tokens, abi: modelTokensAbi as Abi, functionName, args });

  return {
    addresses: { registry, tokens },
    account: wallet?.account.address,
    /** EIP-191 signature by this chain's account (a peer proves to the coordinator it holds the account it is paid at). */
    async signMessage(message: string): Promise<Hex> {
      if (!wallet) throw new Error('this chain client has no account to sign with');
      return wallet.signMessage({ account: wallet.account, message });
    },

    // ---- reads ----
    async run(runId: bigint): Promise<RunInfo> {
      const r = (await readReg('runs', [runId])) as readonly [Address, number, number, bigint, bigint, bigint, bigint, bigint, bigint, bigint, boolean, Hex, bigint];
      const [designer, state, designerBps, challengeWindow, stake, computeTarget, credentialSupply, providers, epochs, settledEpoch, designerPaid, modelHash, stakePaid] = r;
      return {
        runId,
        designer,
        state: RUN_STATES[state],
        designerBps,
        challengeWindow,
        stake,
        computeTarget,
        credentialSupply,
        providers,
        epochs,
        settledEpoch,
        designerPaid,
        modelHash,
        stakePaid,
      };
    },
    async runCount(): Promise<bigint> {
      return (await readReg('runCount', [])) as bigint;
    },
    async epoch(runId: bigint, epoch: bigint): Promise<EpochInfo> {
      const [root, total, claimableAt, vetoed] = (await readReg('epochs', [runId, epoch])) as readonly [Hex, bigint, bigint, boolean];
      return { root, total, claimableAt, vetoed };
    },
    async settled(runId: bigint, epoch: bigint): Promise<boolean> {
      return (await readReg('settled', [runId, epoch])) as boolean;
    },
    async joined(runId: bigint, account: Address): Promise<boolean> {
      return (await readReg('joined', [runId, account])) as boolean;
    },
    async claimed(runId: bigint, account: Address): Promise<bigint> {
      return (await readReg('claimed', [runId, account])) as bigint;
    },
    async withdrawable(account: Address): Promise<bigint> {
      return (await readReg('withdrawable', [account])) as bigint;
    },
    async ownershipOf(runId: bigint, account: Address): Promise<bigint> {
      return (await readTok('balanceOf', [account, ownershipId(runId)])) as bigint;
    },
    async credentialsOf(runId: bigint, account: Address): Promise<bigint> {
      return (await readTok('balanceOf', [account, credentialId(runId)])) as bigint;
    },
    async supply(id: bigint): Promise<bigint> {
      return (await readTok('totalSupply', [id])) as bigint;
    },
    async pendingCredentials(runId: bigint, account: Address): Promise<bigint> {
      return (await readTok('pendingCredentials', [runId, account])) as bigint;
    },
    /** Re-issued and not yet pulled, fraction included, in 1e18ths of a credential. */
    async accruedCredentials(runId: bigint, account: Address): Promise<bigint> {
      return (await readTok('accruedCredentials', [runId, account])) as bigint;
    },
    async pool(runId: bigint) {
      const [ownershipTotal, ownershipMinted, accPerUnit, remainder, reissued, paidOut] = (await readTok('pools', [runId])) as readonly bigint[];
      return { ownershipTotal, ownershipMinted, accPerUnit, remainder, reissued, paidOut };
    },
    async listing(listingId: bigint): Promise<ListingInfo> {
      const [seller, runId, amount, price] = (await readTok('listings', [listingId])) as readonly [Address, bigint, bigint, bigint];
      return { listingId, seller, runId, amount, price };
    },
    /**
     * Listings of a run with credentials still for sale, cheapest first: one read of at most `limit`
     * of them (the contract keeps only open listings in that set, so sold-out and cancelled ones,
     * however many, cost nothing to skip). Beyond `limit`, which ones are read is the contract's order.
     */
    async openListings(runId: bigint, limit = OPEN_LISTINGS_LIMIT): Promise<ListingInfo[]> {
      const [ids, page] = await publicClient.readContract({ address: tokens, abi: modelTokensAbi, functionName: 'openListings', args: [runId, 0n, BigInt(limit)] });
      return page.map((l, i) => ({ listingId: ids[i], ...l })).sort((a, b) => (a.price < b.price ? -1 : a.price > b.price ? 1 : 0));
    },
    async openListingCount(runId: bigint): Promise<bigint> {
      return publicClient.readContract({ address: tokens, abi: modelTokensAbi, functionName: 'openListingCount', args: [runId] });
    },
    /** The nonce `buyer`'s next signed spend must carry. */
    async nonce(buyer: Address): Promise<bigint> {
      return publicClient.readContract({ address: tokens, abi: modelTokensAbi, functionName: 'nonces', args: [buyer] });
    },
    async stakeOutcome(runId: bigint): Promise<StakeOutcome> {
      const [to, epoch] = await publicClient.readContract({ address: registry, abi: runRegistryAbi, functionName: 'stakeOutcome', args: [runId] });
      const outcome: StakeOutcome = { to: STAKE_TO[to], epoch };
      if (outcome.to === 'undecided' && (await this.run(runId)).state === 'abandoned') outcome.decidedAt = (await this.epoch(runId, epoch)).claimableAt;
      return outcome;
    },
    /** The shortest challenge window a run may open with on this deployment (seconds). */
    async minChallengeWindow(): Promise<bigint> {
      return publicClient.readContract({ address: registry, abi: runRegistryAbi, functionName: 'minChallengeWindow' });
    },
    async spend(spendId: bigint): Promise<SpendInfo> {
      const [buyer, runId, amount, hash, served] = (await readTok('spends', [spendId])) as readonly [Address, bigint, bigint, Hex, boolean];
      return { spendId, buyer, runId, amount, promptHash: hash, served };
    },
    async proceeds(account: Address): Promise<bigint> {
      return (await readTok('proceeds', [account])) as bigint;
    },

    // ---- run lifecycle ----
    openRun(p: { stake: bigint; computeTarget: bigint; designerBps: number; credentialSupply: bigint; challengeWindow: bigint; modelHash: Hex }) {
      return reg<bigint>('openRun', [p.computeTarget, p.designerBps, p.credentialSupply, p.challengeWindow, p.modelHash], p.stake);
    },
    join: (runId: bigint) => reg('join', [runId]),
    startTraining: (runId: bigint) => reg('startTraining', [runId]),
    postEpoch: (runId: bigint, root: Hex, total: bigint) => reg<bigint>('postEpoch', [runId, root, total]),
    veto: (runId: bigint, epoch: bigint) => reg('veto', [runId, epoch]),
    finishTraining: (runId: bigint) => reg('finishTraining', [runId]),
    abandon: (runId: bigint) => reg('abandon', [runId]),

    // ---- claims ----
    claim: (runId: bigint, epoch: bigint, account: Address, cumulative: bigint, proof: readonly Hex[]) => reg('claim', [runId, epoch, account, cumulative, proof]),
    claimDesignerShare: (runId: bigint) => reg('claimDesignerShare', [runId]),
    claimStakeShare: (runId: bigint, account: Address, cumulative: bigint, proof: readonly Hex[]) => reg('claimStakeShare', [runId, account, cumulative, proof]),
    /** An abandoned run's stake back to its designer, when no root of it survived (anyone may send it). */
    refundStake: (runId: bigint) => reg('refundStake', [runId]),
    withdraw: () => reg('withdraw', []),
    claimCredentials: (runId: bigint) => tok<bigint>('claimCredentials', [runId]),

    // ---- market and inference ----
    list: (runId: bigint, amount: bigint, pricePerCredential: bigint) => tok<bigint>('list', [runId, amount, pricePerCredential]),
    buy: (listing: ListingInfo, amount: bigint) => tok('buy', [listing.listingId, amount], amount * listing.price),
    cancelListing: (listingId: bigint) => tok('cancelListing', [listingId]),
    withdrawProceeds: () => tok('withdrawProceeds', []),
    spendCredentials: (runId: bigint, amount: bigint, prompt: string) => tok<bigint>('spend', [runId, amount, promptHash(prompt)]),
    /** Sign a spend (EIP-712) for someone else to relay; binds this chain, this contract and the buyer's next nonce. */
    async signSpend(runId: bigint, amount: bigint, prompt: string, deadline: bigint) {
      if (!wallet) throw new Error('signSpend: no wallet connected');
      const buyer = wallet.account.address;
      const nonce = (await readTok('nonces', [buyer])) as bigint;
      const chainId = await publicClient.getChainId();
      const message = { buyer, runId, amount, promptHash: promptHash(prompt), nonce, deadline };
      const signature = await wallet.signTypedData({
        account: wallet.account,
        domain: { name: 'SwarmModelTokens', version: '1', chainId, verifyingContract: tokens },
        types: SPEND_TYPES,
        primaryType: 'Spend',
        message,
      });
      return { ...message, signature };
    },
    /** Revoke every signed spend not yet relayed (burns this account's next nonce). */
    invalidateNonce: () => tok<bigint>('invalidateNonce', []),
    relaySpend: (s: { buyer: Address; runId: bigint; amount: bigint; promptHash: Hex; deadline: bigint; signature: Hex }) =>
      tok<bigint>('spendWithSig', [s.buyer, s.runId, s.amount, s.promptHash, s.deadline, s.signature]),
    markServed: (spendId: bigint, answerHash: Hex) => tok('markServed', [spendId, answerHash]),

    // ---- events ----
    /** Every event of both contracts from `fromBlock` on, oldest first (a dashboard's history). */
    async events(fromBlock = 0n) {
      const [a, b] = await Promise.all([
        publicClient.getContractEvents({ address: registry, abi: runRegistryAbi, fromBlock }),
        publicClient.getContractEvents({ address: tokens, abi: modelTokensAbi, fromBlock }),
      ]);
      return [...a, ...b].sort((x, y) => Number(x.blockNumber! - y.blockNumber!) || (x.logIndex ?? 0) - (y.logIndex ?? 0));
    },
    /** New events of both contracts as they are mined; returns the unsubscribe function. */
    watch(onLogs: (logs: Log[]) => void, pollingInterval = 500): () => void {
      const stopA = publicClient.watchContractEvent({ address: registry, abi: runRegistryAbi, onLogs, pollingInterval });
      const stopB = publicClient.watchContractEvent({ address: tokens, abi: modelTokensAbi, onLogs, pollingInterval });
      return () => {
        stopA();
        stopB();
      };
    },
  };
}
