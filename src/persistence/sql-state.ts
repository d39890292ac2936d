/** The SQLSTATE of a failed statement (node-pg's error, or TypeORM's QueryFailedError, which copies it). */
function sqlState(err: unknown): string | undefined {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * Postgres refused the data itself (class 22 data exception, class 23 integrity constraint
 * violation): the same statement would fail again, so a retry cannot help. Connection failures,
 * timeouts and cancellations are other classes.
 */
export function isDataError(err: unknown): boolean {
  const state = sqlState(err);
  return state !== undefined && (state.startsWith('22') || state.startsWith('23'));
}

/** lock_not_available: a lock was not granted within lock_timeout. */
export function isLockTimeout(err: unknown): boolean {
  return sqlState(err) === '55P03';
}
