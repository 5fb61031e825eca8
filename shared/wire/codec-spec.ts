// What a run sends across a stage boundary, as the run config names it (codec.ts implements each).
import { z } from 'zod';

const posInt = z.int().positive();

/**
 * How subspace coefficients are sent: a float type, int8/int4 with a column's absmax as its scale,
 * or e<b>: int8 with a step of a column's RMS chosen for about b bits a value once entropy-coded.
 */
export const SUBSPACE_COEFFS = ['fp32', 'fp16', 'int8', 'int4', 'e1.5', 'e2', 'e2.5', 'e3', 'e3.5', 'e4', 'e5', 'e6'] as const;

export const CodecSpecSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('fp32') }),
  z.strictObject({ kind: z.literal('bf16') }),
  z.strictObject({ kind: z.literal('int8') }),
  z.strictObject({ kind: z.literal('subspace'), k: posInt, coeff: z.enum(SUBSPACE_COEFFS) }),
]);
export type CodecSpec = z.infer<typeof CodecSpecSchema>;
