import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BadRequestException, Logger, NotFoundException, PayloadTooLargeException, type ArgumentsHost } from '@nestjs/common';
import { ChatError, StorageUnavailableError } from '../chat/chat.errors.js';
import { HttpErrorFilter } from './http-error.filter.js';

Logger.overrideLogger(false);

/** The status and JSON body the filter answers an exception with. */
function answerTo(exception: unknown): { status: number; body: unknown } {
  const answer = { status: 0, body: undefined as unknown };
  const res = {
    status(code: number) {
      answer.status = code;
      return res;
    },
    json(body: unknown) {
      answer.body = body;
    },
  };
  const host = { switchToHttp: () => ({ getResponse: () => res }) } as unknown as ArgumentsHost;
  new HttpErrorFilter().catch(exception, host);
  return answer;
}

describe('HttpErrorFilter', () => {
  it('answers a ChatError with the status of its code and the same body as the sockets', () => {
    assert.deepEqual(answerTo(new ChatError('VALIDATION_FAILED', 'roomId: bad', { fields: ['roomId'] })), {
      status: 400,
      body: { ok: false, error: { code: 'VALIDATION_FAILED', message: 'roomId: bad', details: { fields: ['roomId'] } } },
    });
    assert.deepEqual(answerTo(new ChatError('FORBIDDEN', 'banned')), {
      status: 403,
      body: { ok: false, error: { code: 'FORBIDDEN', message: 'banned' } },
    });
    assert.equal(answerTo(new ChatError('LIMIT_EXCEEDED', 'too many')).status, 429);
  });

  it('answers a storage failure with 503 UNAVAILABLE and hides the database error', () => {
    assert.deepEqual(answerTo(new StorageUnavailableError(new Error('connect ECONNREFUSED 10.0.0.5:5432'))), {
      status: 503,
      body: { ok: false, error: { code: 'UNAVAILABLE', message: 'storage is unavailable, try again' } },
    });
  });

  it("answers Nest's own HTTP errors in the protocol's codes", () => {
    assert.deepEqual(answerTo(new NotFoundException('Cannot GET /v1/nothing')), {
      status: 404,
      body: { ok: false, error: { code: 'NOT_FOUND', message: 'Cannot GET /v1/nothing' } },
    });
    assert.equal((answerTo(new PayloadTooLargeException()).body as { error: { code: string } }).error.code, 'PAYLOAD_TOO_LARGE');
    assert.equal(answerTo(new BadRequestException('Unexpected token')).status, 400);
  });

  it('answers anything else with 500 INTERNAL and no stack trace', () => {
    const { status, body } = answerTo(new TypeError("Cannot read properties of undefined (reading 'x')"));
    assert.equal(status, 500);
    assert.deepEqual(body, { ok: false, error: { code: 'INTERNAL', message: 'internal error' } });
  });
});
