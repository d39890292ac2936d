import { Catch, Logger, type ArgumentsHost, type WsExceptionFilter } from '@nestjs/common';
import { ChatError, StorageUnavailableError, type ErrorBody } from '../chat/chat.errors.js';
import type { Responder } from './chat-connection.js';

/**
 * Answers a failed request through its responder (the ack argument the adapter passes), so the
 * client gets `{ ok: false, error }` on both transports instead of Nest's `exception` event.
 */
@Catch()
export class ReplyExceptionFilter implements WsExceptionFilter {
  private readonly logger = new Logger('ChatGateway');

  catch(exception: unknown, host: ArgumentsHost): void {
    const respond = host.getArgByIndex<Responder | undefined>(2);
    const error = this.toBody(exception);
    respond?.({ ok: false, error });
  }

  private toBody(exception: unknown): ErrorBody {
    if (exception instanceof StorageUnavailableError) {
      this.logger.warn(`storage unavailable: ${describe(exception.cause)}`);
      return exception.toBody();
    }
    if (exception instanceof ChatError) return exception.toBody();
    this.logger.error(`unexpected failure: ${describe(exception)}`);
    return { code: 'INTERNAL', message: 'internal error' };
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}
