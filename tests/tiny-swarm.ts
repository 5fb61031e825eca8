// The model shape the swarm tests train (with their own layers, stages and steps): small enough
// that every peer compiles and trains it in seconds on a CPU adapter.
import type { SwarmOptions } from '../cli/swarm.js';

export const TINY_MODEL = { dModel: 32, heads: 2, seq: 16, batch: 4 } as const satisfies Partial<SwarmOptions>;
