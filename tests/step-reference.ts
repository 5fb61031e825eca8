// The quantizer step of the e<b> codecs, computed independently of codec.ts (float64, per column).
import { expect } from 'vitest';

/** Each column's step: `step` times its RMS, or its absmax/127 where that is larger (nothing clips). */
export function columnSteps(x: Float32Array, rows: number, cols: number, step: number): number[] {
  return Array.from({ length: cols }, (_, c) => {
    let ss = 0;
    let max = 0;
    for (let r = 0; r < rows; r++) {
      ss += x[r * cols + c] ** 2;
      max = Math.max(max, Math.abs(x[r * cols + c]));
    }
    return Math.max(step * Math.sqrt(ss / rows), max / 127);
  });
}

/** Every value of `got` is within half its column's step of `sent` (and f32 rounding). */
export function expectWithinHalfStep(sent: Float32Array, got: Float32Array, cols: number, step: number, label = ''): void {
  expect(got.length, label).toBe(sent.length);
  const rows = sent.length / cols;
  const steps = columnSteps(sent, rows, cols, step);
  for (let i = 0; i < sent.length; i++) {
    const half = steps[i % cols] / 2;
    expect(Math.abs(got[i] - sent[i]), `${label} row ${Math.floor(i / cols)} col ${i % cols}`).toBeLessThanOrEqual(half * (1 + 1e-5));
  }
}
