// A run's model spec as the chain commits to it: the run registry keeps only `modelHash`, the
// keccak256 of one canonical JSON text of the run config, and the run's coordinator serves that
// text at RUN_SPEC_PATH. Anyone can then read the spec from a coordinator it does not trust: the
// text either hashes to what the designer staked on, or it is refused.
import { type Hex, keccak256, toHex } from 'viem';
import { formatIssues } from '../base/issues.js';
import { type RunConfig, RunConfigSchema } from './config.js';

/** Where a coordinator serves its run's spec, beside its WebSocket (same host and port). */
export const RUN_SPEC_PATH = '/run.json';

/**
 * The one JSON text of a run config: parsed by its schema first, so the keys come in the schema's
 * order whatever order the caller built them in, and the designer's hash and the coordinator's
 * text agree byte for byte.
 */
export function runSpecJson(run: RunConfig): string {
  return JSON.stringify(RunConfigSchema.parse(run));
}

/** The `modelHash` a designer opens the run with on chain. */
export function runSpecHash(run: RunConfig): Hex {
  return keccak256(toHex(runSpecJson(run)));
}

/** The run config in `text`, as served by a coordinator; throws a sentence unless it is one and hashes to `modelHash`. */
export function parseRunSpec(text: string, modelHash: Hex): RunConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`the coordinator's model spec is not JSON (${(e as Error).message})`);
  }
  const run = RunConfigSchema.safeParse(json);
  if (!run.success) throw new Error(`the coordinator's model spec is not a run config: ${formatIssues('run', run.error)}`);
  // The exact text, not a re-serialization: the hash binds the bytes the designer committed to.
  if (keccak256(toHex(text)) !== modelHash.toLowerCase()) throw new Error("the coordinator's model spec does not match the hash its run lists on chain");
  return run.data;
}
