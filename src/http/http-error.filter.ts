import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { errorBodyOf, type ErrorBody, type ErrorCode } from '../chat/chat.errors.js';
import type { ChatMetrics } from '../metrics/chat-metrics.js';

const STATUS: Record<ErrorCode, number> = {
  BAD_REQUEST: 400,
  VALIDATION_FAILED: 400,
  UNKNOWN_EVENT: 404,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  LIMIT_EXCEEDED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

/** Nest's own HTTP errors (unknown route, unreadable or oversized body, …) in the protocol's codes. */
const FROM_HTTP_STATUS: Record<number, ErrorCode> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  429: 'RATE_LIMITED',
  503: 'UNAVAILABLE',
};

/** Every HTTP error as `{ ok: false, error: { code, message, details? } }` with the contract's status. */
@Catch()
export class HttpErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('HttpApi');

  constructor(private readonly metrics?: ChatMetrics) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const [status, error] = this.describe(exception);
    this.metrics?.errors.inc({ code: error.code });
    res.status(status).json({ ok: false, error });
  }

  private describe(exception: unknown): [number, ErrorBody] {
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const code = FROM_HTTP_STATUS[status] ?? (status >= 500 ? 'INTERNAL' : 'BAD_REQUEST');
      return [status, { code, message: exception.message }];
    }
    const body = errorBodyOf(exception, this.logger);
    return [STATUS[body.code], body];
  }
}
