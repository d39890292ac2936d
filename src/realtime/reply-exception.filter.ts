import { Catch, Logger, type ArgumentsHost, type WsExceptionFilter } from '@nestjs/common';
import { errorBodyOf } from '../chat/chat.errors.js';
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
    const error = errorBodyOf(exception, this.logger);
    respond?.({ ok: false, error });
  }
}
