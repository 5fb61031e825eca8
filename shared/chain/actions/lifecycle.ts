// A run's life on RunRegistry: a designer opens it with a stake, providers join, the coordinator
// starts training and posts one root per epoch (the veto account may strike one inside its window),
// and training finishes on a settled root or the run is abandoned.
import type { Hex } from 'viem';
import { type ChainContext, registry } from './context.js';
import { send } from './send.js';

export interface OpenRunParams {
  /** Wei the designer stakes (the call's value). */
  stake: bigint;
  computeTarget: bigint;
  designerBps: number;
  credentialSupply: bigint;
  challengeWindow: bigint;
  modelHash: Hex;
}

export function openRun(ctx: ChainContext, p: OpenRunParams) {
  return send(ctx, registry(ctx), { functionName: 'openRun', args: [p.computeTarget, p.designerBps, p.credentialSupply, p.challengeWindow, p.modelHash], value: p.stake });
}

/** The designer names the run's training text (once, while open): its URL and SHA-256. */
export const listCorpus = (ctx: ChainContext, runId: bigint, corpusUrl: string, corpusHash: Hex) =>
  send(ctx, registry(ctx), { functionName: 'listCorpus', args: [runId, corpusUrl, corpusHash] });
/** The coordinator says where it listens (a wss:// URL), again whenever it moves. */
export const announceCoordinator = (ctx: ChainContext, runId: bigint, url: string) => send(ctx, registry(ctx), { functionName: 'announce', args: [runId, url] });
export const join = (ctx: ChainContext, runId: bigint) => send(ctx, registry(ctx), { functionName: 'join', args: [runId] });
export const startTraining = (ctx: ChainContext, runId: bigint) => send(ctx, registry(ctx), { functionName: 'startTraining', args: [runId] });
export const postEpoch = (ctx: ChainContext, runId: bigint, root: Hex, total: bigint) => send(ctx, registry(ctx), { functionName: 'postEpoch', args: [runId, root, total] });
export const veto = (ctx: ChainContext, runId: bigint, epoch: bigint) => send(ctx, registry(ctx), { functionName: 'veto', args: [runId, epoch] });
export const finishTraining = (ctx: ChainContext, runId: bigint) => send(ctx, registry(ctx), { functionName: 'finishTraining', args: [runId] });
export const abandon = (ctx: ChainContext, runId: bigint) => send(ctx, registry(ctx), { functionName: 'abandon', args: [runId] });
