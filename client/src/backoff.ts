/**
 * Exponential backoff with jitter: attempt 1 waits about minMs, each further attempt doubles it up
 * to maxMs, and the actual delay is drawn from the upper half of that so that clients cut off
 * together do not come back together.
 */
export function backoffDelay(attempt: number, minMs: number, maxMs: number): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(base / 2 + (Math.random() * base) / 2);
}
