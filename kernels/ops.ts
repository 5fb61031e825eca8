// Every kernel of a GPT block except matmul (see matmul.ts), under one name so the runtime and the
// kernel tests can say `k.layerNormForward`. Each function validates sizes and returns a Dispatch
// bound to its buffers; nothing runs until encoded. Gradients of parameters are accumulated (+=)
// so microbatches can add up before a step.
export * from './adamw.js';
export * from './attention.js';
export * from './cross-entropy.js';
export * from './decode.js';
export * from './embedding.js';
export * from './layernorm.js';
export * from './pointwise.js';
export * from './reduce.js';
export * from './subspace.js';
