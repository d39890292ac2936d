import type { ClientErrorCode, ProtocolErrorCode } from './types.js';

/**
 * A request that failed. `code` is a protocol error code (VALIDATION_FAILED, FORBIDDEN, CONFLICT, …)
 * or one of the client's own: TIMEOUT (no reply in time), DISCONNECTED (the connection dropped
 * before the reply), CLOSED (the client is closed or gave up reconnecting). A newer service may
 * answer codes this version does not list.
 */
export class ChatRequestError extends Error {
  override name = 'ChatRequestError';

  constructor(
    readonly code: ProtocolErrorCode | ClientErrorCode | (string & {}),
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}
