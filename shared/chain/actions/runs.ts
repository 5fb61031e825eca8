// Reads of a run as RunRegistry stores it (the `runs` struct) and of the deployment's run settings.
import type { Address, Hex } from 'viem';
import { type ChainContext, registry } from './context.js';

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

export async function run(ctx: ChainContext, runId: bigint): Promise<RunInfo> {
  const [designer, state, designerBps, challengeWindow, stake, computeTarget, credentialSupply, providers, epochs, settledEpoch, designerPaid, modelHash, stakePaid] =
    await ctx.publicClient.readContract({ ...registry(ctx), functionName: 'runs', args: [runId] });
  const fields = { designerBps, challengeWindow, stake, computeTarget, credentialSupply, providers, epochs, settledEpoch, designerPaid, modelHash, stakePaid };
  return { runId, designer, state: RUN_STATES[state], ...fields };
}

/** Where a volunteer finds a run: its coordinator's URL and its training text ('' and a zero hash until set). */
export interface RunListing {
  coordinator: string;
  corpusUrl: string;
  corpusHash: Hex;
}

export async function runListing(ctx: ChainContext, runId: bigint): Promise<RunListing> {
  const [coordinator, corpusUrl, corpusHash] = await ctx.publicClient.readContract({ ...registry(ctx), functionName: 'listings', args: [runId] });
  return { coordinator, corpusUrl, corpusHash };
}

export function runCount(ctx: ChainContext): Promise<bigint> {
  return ctx.publicClient.readContract({ ...registry(ctx), functionName: 'runCount' });
}

/** The shortest challenge window a run may open with on this deployment (seconds). */
export function minChallengeWindow(ctx: ChainContext): Promise<bigint> {
  return ctx.publicClient.readContract({ ...registry(ctx), functionName: 'minChallengeWindow' });
}
