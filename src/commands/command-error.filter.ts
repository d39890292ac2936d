import { Catch, Injectable, Logger, Optional, type RpcExceptionFilter } from '@nestjs/common';
import { throwError, type Observable } from 'rxjs';
import { errorBodyOf } from '../chat/chat.errors.js';
import { ChatMetrics } from '../metrics/chat-metrics.js';

/**
 * Every failed command as the protocol's error body. Nest's Redis transport replies with what this
 * observable throws, as `{ id, err: { code, message, details? }, isDisposed: true }`, and the
 * caller's `client.send()` errors with `{ code, message, details? }`.
 */
@Injectable()
@Catch()
export class CommandErrorFilter implements RpcExceptionFilter<unknown> {
  private readonly logger = new Logger('Commands');

  constructor(@Optional() private readonly metrics?: ChatMetrics) {}

  catch(exception: unknown): Observable<never> {
    const error = errorBodyOf(exception, this.logger);
    this.metrics?.errors.inc({ code: error.code });
    return throwError(() => error);
  }
}
