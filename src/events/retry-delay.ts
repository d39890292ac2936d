/**
 * Exponential backoff with jitter: about baseMs after the first failure, doubling with each
 * further one, never above capMs. The ±10% jitter spreads retries that failed together, and is
 * narrow enough that each delay clearly exceeds the one before (by at least 1.6 times).
 */
export function retryDelayMs(failures: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  const exponential = baseMs * 2 ** Math.max(0, Math.min(failures - 1, 40));
  return Math.round(Math.min(exponential, capMs) * (0.9 + 0.2 * random()));
}

/** Resolves after `ms`, or at once when `signal` aborts; never rejects. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
