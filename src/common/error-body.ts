import type { Logger } from '@nestjs/common';
import { ChatError, StorageUnavailableError, type ErrorBody } from '../chat/chat.errors.js';

/**
 * The protocol error body for a failure in a socket or command handler: a ChatError's own code,
 * UNAVAILABLE for storage outages (a warning: the client retries), INTERNAL with the stack only
 * in the log for anything unexpected.
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
