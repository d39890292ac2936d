/**
 * A request that failed. `code` is a protocol error code (VALIDATION_FAILED, FORBIDDEN, …) or one
 * of the client's own: TIMEOUT (no reply in time), DISCONNECTED (the connection dropped before the
 * reply), CLOSED (the client is closed or gave up reconnecting).
 */
export class ChatRequestError extends Error {
  override name = 'ChatRequestError';

  constructor(
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}
