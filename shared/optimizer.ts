// Optimizer settings shared by the GPU runtime, the float64 reference and the tfjs peer.
import type { AdamW } from '../kernels/reference.js';

export type { AdamW };

export const DEFAULT_ADAMW: AdamW = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1.0 };
