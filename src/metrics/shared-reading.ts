/**
 * Wraps a costly reading (a database query behind a gauge) so that scrapes share it: callers
 * while a read is in flight get that read, and callers within `maxAgeMs` of its end get its
 * result. A flood of scrapes (or many Prometheus servers) then costs the database at most one
 * query per `maxAgeMs`, instead of one per scrape, and never competes with chat traffic for the
 * pool. A failed read is shared too: hammering a database that is down helps no one.
 */
export function sharedReading<T>(read: () => Promise<T>, maxAgeMs: number, now: () => number = Date.now): () => Promise<T> {
  let last: { result: Promise<T>; settledAt: number | null } | null = null;
  return () => {
    if (last && (last.settledAt === null || now() - last.settledAt < maxAgeMs)) return last.result;
    const entry: { result: Promise<T>; settledAt: number | null } = { result: read(), settledAt: null };
    const settle = () => {
      entry.settledAt = now();
    };
    entry.result.then(settle, settle);
    last = entry;
    return entry.result;
  };
}
