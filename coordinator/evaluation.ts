// Validation losses are a claim of the last stage, taken only from the last peer of that step's
// evaluation path; the run's training ends once the final evaluation is in (or given up on).
export class Evaluations {
  /** Who must report the validation loss after a step (the last hop of its evaluation path). */
  private readonly evaluators = new Map<number, string>();
  /** The step of the final evaluation, while it is awaited. */
  private finalStep?: number;

  /** The peers of `path` evaluate after `step`; `last`: the run's last step. */
  planned(step: number, path: string[], last: boolean, evalEvery: number): void {
    if (last) this.finalStep = step;
    this.evaluators.set(step, path.at(-1)!);
    for (const old of this.evaluators.keys()) if (old < step - 4 * Math.max(1, evalEvery)) this.evaluators.delete(old);
  }

  /** Whether `peerId` may report the validation loss after `step` (once). */
  take(peerId: string, step: number): boolean {
    if (this.evaluators.get(step) !== peerId) return false;
    this.evaluators.delete(step);
    return true;
  }

  get awaitingFinal(): boolean {
    return this.finalStep !== undefined;
  }
  isFinal(step: number): boolean {
    return this.finalStep === step;
  }
  /** The final evaluation is in or given up on. */
  endFinal(): void {
    this.finalStep = undefined;
  }
}
