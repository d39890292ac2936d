import type { Logger } from '@nestjs/common';
import type { Assert, ListsAll } from '../common/assert-type.js';
import type { ErrorBody, ErrorCode } from './wire.js';

export type { ErrorBody, ErrorCode } from './wire.js';

/** Every ErrorCode, for the API documents and their tests. */
export const ERROR_CODES = [
  'BAD_REQUEST',
  'UNKNOWN_EVENT',
  'VALIDATION_FAILED',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'RATE_LIMITED',
  'LIMIT_EXCEEDED',
  'PAYLOAD_TOO_LARGE',
  'UNAVAILABLE',
  'INTERNAL',
] as const satisfies readonly ErrorCode[];
/** Fails to compile when an ErrorCode is missing from ERROR_CODES. */
export type ErrorCodesListed = Assert<ListsAll<ErrorCode, (typeof ERROR_CODES)[number]>>;

export class ChatError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ChatError';
  }

  toBody(): ErrorBody {
    return this.details ? { code: this.code, message: this.message, details: this.details } : { code: this.code, message: this.message };
  }
}

/** Storage could not confirm the outcome; for a send, retrying with the same clientMsgId is safe. */
export class StorageUnavailableError extends ChatError {
  constructor(cause?: unknown) {
    super('UNAVAILABLE', 'storage is unavailable, try again');
    this.cause = cause;
  }
}

/**
 * The protocol error body for a failure in any handler (socket, HTTP, command): a ChatError's own
 * code, UNAVAILABLE for storage outages (a warning: the client retries), INTERNAL with the stack
 * only in the log for anything unexpected.
 */
export function errorBodyOf(exception: unknown, logger: Logger): ErrorBody {
  if (exception instanceof StorageUnavailableError) {
    logger.warn(`storage unavailable: ${describe(exception.cause)}`);
    return exception.toBody();
  }
  if (exception instanceof ChatError) return exception.toBody();
  logger.error(`unexpected failure: ${describe(exception)}`);
  return { code: 'INTERNAL', message: 'internal error' };
}

function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
