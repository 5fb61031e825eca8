// Pipeline schedules: the order in which one stage runs the forward (F) and backward (B) passes
// of a step's microbatches. Pure, so the bubble can be computed and tested without a GPU.

export interface Op {
  kind: 'F' | 'B';
  mb: number;
}

/**
 * 1F1B (PipeDream-flush): stage s of S first runs min(S − s − 1, M) warm-up forwards, then
 * alternates one forward and one backward, then drains the remaining backwards. At most S − s
 * microbatches are in flight at stage s, so it needs that many activation slots, not M.
 * `extraWarmup` more forwards before the first backward (and as many more slots) let a stage keep
 * computing while a gradient makes its round trip over a real network.
 */
export function oneFOneB(stage: number, stages: number, microbatches: number, extraWarmup = 0): Op[] {
  check(stage, stages, microbatches);
  const extra = stage < stages - 1 ? extraWarmup : 0;
  const warmup = Math.min(stages - stage - 1 + extra, microbatches);
  const ops: Op[] = [];
  let f = 0;
  let b = 0;
  for (; f < warmup; f++) ops.push({ kind: 'F', mb: f });
  while (b < microbatches) {
    if (f < microbatches) ops.push({ kind: 'F', mb: f++ });
    ops.push({ kind: 'B', mb: b++ });
  }
  return ops;
}

/** GPipe: all forwards, then all backwards (in reverse order); M microbatches in flight. */
export function gpipe(stage: number, stages: number, microbatches: number): Op[] {
  check(stage, stages, microbatches);
  const ops: Op[] = [];
  for (let m = 0; m < microbatches; m++) ops.push({ kind: 'F', mb: m });
  for (let m = microbatches - 1; m >= 0; m--) ops.push({ kind: 'B', mb: m });
  return ops;
}

export type Schedule = typeof oneFOneB;

/** The most microbatches a stage holds activations for at once under a schedule. */
export function slotsNeeded(ops: Op[]): number {
  let live = 0;
  let max = 0;
  for (const op of ops) {
    live += op.kind === 'F' ? 1 : -1;
    max = Math.max(max, live);
  }
  return max;
}

function check(stage: number, stages: number, microbatches: number): void {
  if (!(Number.isInteger(stages) && stages >= 1)) throw new Error(`stages must be a positive integer, got ${stages}`);
  if (!(Number.isInteger(stage) && stage >= 0 && stage < stages)) throw new Error(`stage ${stage} is not in [0, ${stages})`);
  if (!(Number.isInteger(microbatches) && microbatches >= 1)) throw new Error(`microbatches must be a positive integer, got ${microbatches}`);
}

/**
 * Event simulation of one step: every stage runs its ops in order, an op starts when the stage is
 * free and its input has arrived (F needs F of the previous stage, B needs B of the next stage,
 * the last stage's B needs its own F). Returns the makespan and each stage's busy fraction; a
 * schedule that deadlocks throws.
 */
export function simulate(schedule: Schedule, stages: number, microbatches: number, cost: { fwd: number; bwd: number; link?: number }): { makespan: number; busy: number[]; bubble: number } {
  const plans = Array.from({ length: stages }, (_, s) => schedule(s, stages, microbatches));
  const done = new Map<string, number>();
  const key = (k: string, s: number, m: number) => `${k}${s}:${m}`;
  const free = new Array(stages).fill(0);
  const next = new Array(stages).fill(0);
  const link = cost.link ?? 0;
  let progress = true;
  while (progress) {
    progress = false;
    for (let s = 0; s < stages; s++) {
      const op = plans[s][next[s]];
      if (!op) continue;
      let ready: number | undefined;
      if (op.kind === 'F') ready = s === 0 ? 0 : add(done.get(key('F', s - 1, op.mb)), link);
      else ready = s === stages - 1 ? done.get(key('F', s, op.mb)) : add(done.get(key('B', s + 1, op.mb)), link);
      if (ready === undefined) continue;
      const end = Math.max(free[s], ready) + (op.kind === 'F' ? cost.fwd : cost.bwd);
      done.set(key(op.kind, s, op.mb), end);
      free[s] = end;
      next[s]++;
      progress = true;
    }
  }
  if (next.some((n, s) => n < plans[s].length)) throw new Error('schedule deadlocks');
  const makespan = Math.max(...free);
  const work = microbatches * (cost.fwd + cost.bwd);
  const busy = free.map(() => work / makespan);
  return { makespan, busy, bubble: 1 - work / makespan };
}

const add = (a: number | undefined, b: number) => (a === undefined ? undefined : a + b);
