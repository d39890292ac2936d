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
