import { setTimer } from './host.js';

/** A minimal typed event emitter; `on` returns the function that removes the listener. */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<(payload: never) => void>>();

  on<K extends keyof Events>(event: K, fn: (payload: Events[K]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    for (const fn of [...(this.listeners.get(event) ?? [])]) {
      try {
        (fn as (p: Events[K]) => void)(payload);
      } catch (err) {
        // A throwing listener must not break the client's bookkeeping; rethrow outside it so the
        // bug still shows up as an uncaught error.
        setTimer(() => {
          throw err;
        }, 0);
      }
    }
  }
}
