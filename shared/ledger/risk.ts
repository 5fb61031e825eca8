// Risk weighting (ARCHITECTURE §7): early work is riskier (the run may never finish, the loss is
// still high), so it earns more per FLOP. Every weighting sits behind one interface so a run can
// pick one by name and alternatives can be compared without touching the ledger.

export interface RiskWeighting {
  /** Canonical spec, parseable by `parseRisk`, so a run's choice can be stored and reproduced. */
  readonly name: string;
  /** Weight of work done at run progress p ∈ [0, 1]; w(1) = 1 for every built-in weighting. */
  weight(progress: number): number;
}

function checkR(kind: string, R: number): void {
  if (typeof R !== 'number' || !Number.isFinite(R) || R < 1) {
    throw new Error(`${kind} risk: R must be a finite number ≥ 1 (early work never weighs less than late work), got ${String(R)}`);
  }
}

// Clamping would hide a caller's bug (e.g. step > totalSteps) and silently change ownership.
function checkProgress(progress: number): void {
  if (typeof progress !== 'number' || !Number.isFinite(progress) || progress < 0 || progress > 1) {
    throw new RangeError(`risk weighting: progress must be a finite number in [0, 1], got ${String(progress)}`);
  }
}

/** A weighting named `prefix:R`, checking R and every progress it is asked about. */
function weighting(kind: string, prefix: string, R: number, w: (p: number) => number): RiskWeighting {
  checkR(kind, R);
  return {
    name: `${prefix}:${R}`,
    weight(p) {
      checkProgress(p);
      return w(p);
    },
  };
}

/** w(p) = R^(1−p): work at p = 0 weighs R times work at p = 1. */
export function exponentialRisk(R: number): RiskWeighting {
  return weighting('exponential', 'exp', R, (p) => R ** (1 - p));
}

/** w(p) = 1 + (R−1)(1−p): the same ends as the exponential, but a constant premium per unit of progress. */
export function linearRisk(R: number): RiskWeighting {
  return weighting('linear', 'linear', R, (p) => 1 + (R - 1) * (1 - p));
}

// A plain decimal only: Number() would also accept '', '0x10', ' 4 ' and 'Infinity'.
const DECIMAL = /^\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/** "exp:4", "linear:2" or "flat" (= exp:1, every FLOP weighs the same). */
export function parseRisk(spec: string): RiskWeighting {
  if (spec === 'flat') return exponentialRisk(1);
  const m = typeof spec === 'string' ? /^(exp|linear):(.*)$/.exec(spec) : null;
  if (!m || !DECIMAL.test(m[2])) {
    throw new Error(`risk spec: expected "exp:<R>", "linear:<R>" or "flat" with R a decimal number ≥ 1, got ${JSON.stringify(spec)}`);
  }
  const R = Number(m[2]);
  return m[1] === 'exp' ? exponentialRisk(R) : linearRisk(R);
}
