// One transaction to a swarm contract, typed from the contract's `as const` ABI: simulate first (a
// revert costs no gas and the simulation yields the function's result), send, wait for the receipt.
// A revert surfaces as ChainRevert carrying the contract's own error name and arguments.
import {
  type Abi,
  type Address,
  BaseError,
  type ContractFunctionArgs,
  type ContractFunctionName,
  ContractFunctionRevertedError,
  type Hash,
  type SimulateContractReturnType,
  type TransactionReceipt,
} from 'viem';
import { type ChainContext, contractName } from './context.js';

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

type Mutating = 'nonpayable' | 'payable';

/** The result type is the ABI's: `send(ctx, registry(ctx), { functionName: 'openRun', ... })` resolves to Sent<bigint>. */
export async function send<
  const abi extends Abi,
  functionName extends ContractFunctionName<abi, Mutating>,
  const args extends ContractFunctionArgs<abi, Mutating, functionName> & readonly unknown[],
>(
  ctx: ChainContext,
  contract: { address: Address; abi: abi },
  call: { functionName: functionName; args: args; value?: bigint },
): Promise<Sent<SimulateContractReturnType<abi, functionName, args>['result']>> {
  const { wallet, publicClient } = ctx;
  if (!wallet) throw new Error(`${call.functionName}: no wallet connected, this client can only read`);
  const name = `${contractName(ctx, contract.address)}.${call.functionName}`;
  const tx = { address: contract.address, ...call, account: wallet.account, chain: wallet.chain };
  try {
    const { result } = await publicClient.simulateContract({ ...tx, abi: contract.abi });
    // viem cannot relate a generic simulation's request to writeContract's parameters (wagmi#4180);
    // the simulation above checked name and arguments against the typed ABI, so the same call is
    // sent through it as a plain Abi, which still decodes every error it declares.
    const abi: Abi = contract.abi;
    const hash = await wallet.writeContract({ ...tx, abi });
    const receipt = await publicClient.waitForTransactionReceipt({ hash });
    if (receipt.status !== 'success') throw new Error(`${name}: transaction ${hash} reverted`);
    return { hash, receipt, result };
  } catch (e) {
    const reverted = e instanceof BaseError ? e.walk((x) => x instanceof ContractFunctionRevertedError) : undefined;
    if (reverted instanceof ContractFunctionRevertedError && reverted.data?.errorName) {
      throw new ChainRevert(name, reverted.data.errorName, reverted.data.args ?? []);
    }
    throw e;
  }
}
