// The chain actions are typed from the contracts' `as const` ABIs: a wrong function name, a wrong
// argument or a read sent as a write fails `tsc --noEmit` (run by `npm test`), and results are the
// ABI's types, not casts. The calls below only type-check; none is ever sent. An `@ts-expect-error`
// whose call type-checks is itself an error, so losing the ABI types fails the build.
import type { Address, Hex } from 'viem';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { type ChainContext, registry, registryAbiWithTokenErrors, tokens } from '../shared/chain/actions/context.js';
import type { RunInfo } from '../shared/chain/actions/runs.js';
import { send } from '../shared/chain/actions/send.js';
import type { ListingInfo, Sent, SwarmChain } from '../shared/chain/client.js';
import { modelTokensAbi } from '../shared/chain/generated/ModelTokens.js';

const account: Address = '0x0000000000000000000000000000000000000001';

// Never called: what matters is whether tsc accepts each line.
function wrongCalls(ctx: ChainContext, chain: SwarmChain) {
  // @ts-expect-error no such function on the registry
  send(ctx, registry(ctx), { functionName: 'noSuchFunction', args: [] });
  // @ts-expect-error a registry function sent to the tokens contract
  send(ctx, tokens(ctx), { functionName: 'openRun', args: [1n, 1000, 100n, 3600n, '0x'], value: 1n });
  // @ts-expect-error a view (the `runs` getter) is read, not sent
  send(ctx, registry(ctx), { functionName: 'runs', args: [1n] });
  // @ts-expect-error join takes a uint256 run id, not a string
  send(ctx, registry(ctx), { functionName: 'join', args: ['1'] });
  // @ts-expect-error list takes three arguments
  send(ctx, tokens(ctx), { functionName: 'list', args: [1n, 2n] });
  // @ts-expect-error no such view on the tokens contract
  ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'balanceOfAll', args: [account] });
  // @ts-expect-error balanceOf takes (account, id)
  ctx.publicClient.readContract({ ...tokens(ctx), functionName: 'balanceOf', args: [1n, account] });
  // @ts-expect-error the facade keeps the actions' parameter types
  chain.join('1');
  // @ts-expect-error claim's proof is a list of 32-byte hashes
  chain.claim(1n, 0n, account, 1n, [1n]);
}

function inferredResults(ctx: ChainContext, chain: SwarmChain) {
  expectTypeOf(send(ctx, registry(ctx), { functionName: 'openRun', args: [1n, 1000, 100n, 3600n, '0x'], value: 1n })).resolves.toEqualTypeOf<Sent<bigint>>();
  expectTypeOf(send(ctx, registry(ctx), { functionName: 'join', args: [1n] })).resolves.toEqualTypeOf<Sent<void>>();
  expectTypeOf(ctx.publicClient.readContract({ ...registry(ctx), functionName: 'epochs', args: [1n, 0n] })).resolves.toEqualTypeOf<readonly [Hex, bigint, bigint, boolean]>();
  expectTypeOf(chain.openRun).returns.resolves.toEqualTypeOf<Sent<bigint>>();
  expectTypeOf(chain.postEpoch).returns.resolves.toEqualTypeOf<Sent<bigint>>();
  expectTypeOf(chain.claimCredentials).returns.resolves.toEqualTypeOf<Sent<bigint>>();
  expectTypeOf(chain.relaySpend).returns.resolves.toEqualTypeOf<Sent<bigint>>();
  expectTypeOf(chain.withdraw).returns.resolves.toEqualTypeOf<Sent<void>>();
  expectTypeOf(chain.buy).parameters.toEqualTypeOf<[listing: ListingInfo, amount: bigint]>();
  expectTypeOf(chain.run).returns.resolves.toEqualTypeOf<RunInfo>();
  expectTypeOf(chain.openListings).parameters.toEqualTypeOf<[runId: bigint, limit?: number]>();
}

describe('chain action types', () => {
  it('are checked by tsc (these functions exist only to be type-checked)', () => {
    expect([wrongCalls, inferredResults].every((f) => typeof f === 'function')).toBe(true);
  });

  it("the registry's ABI decodes every error of the tokens contract, which its calls bubble up", () => {
    const names = (abi: readonly { type: string; name?: string }[]) => new Set(abi.filter((x) => x.type === 'error').map((x) => x.name));
    const registryErrors = names(registryAbiWithTokenErrors);
    expect([...names(modelTokensAbi)].filter((n) => !registryErrors.has(n))).toEqual([]);
  });
});
