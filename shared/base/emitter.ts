// A typed event emitter: one listener set per event name, payload types from a map. The peer
// session, the coordinator and the coordinator client all report through one of these, so a UI, a
// launcher or a test subscribes to the same typed events everywhere.

export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<(payload: never) => void>>();

  /** Listen to one event; returns the function that stops listening. */
  on<K extends keyof Events>(event: K, cb: (payload: Events[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const fn = cb as (payload: never) => void;
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Whether anyone listens to `event`. */
  has(event: keyof Events): boolean {
    return (this.listeners.get(event)?.size ?? 0) > 0;
  }

  /**
   * Call every listener of `event`. A listener that throws is reported to `onError` and does not
   * stop the others: one bad subscriber must not take the swarm down.
   */
  emit<K extends keyof Events>(event: K, payload: Events[K], onError?: (e: Error) => void): void {
    for (const cb of [...(this.listeners.get(event) ?? [])]) {
      try {
        (cb as (p: Events[K]) => void)(payload);
      } catch (e) {
        onError?.(e instanceof Error ? e : new Error(String(e)));
      }
    }
  }
}
