import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ArgumentsHost } from '@nestjs/common';
import { ChatError, StorageUnavailableError } from '../chat/chat.errors.js';
import type { Reply } from '../chat/chat.events.js';
import { ReplyExceptionFilter } from './reply-exception.filter.js';

/** The filter finds the responder where Nest puts a handler's third argument: (client, data, ack). */
function hostWith(respond: (r: Reply) => void): ArgumentsHost {
  const args = [{}, {}, respond];
  return { getArgByIndex: (i: number) => args[i] } as unknown as ArgumentsHost;
}

function replyTo(exception: unknown): Reply {
  let reply: Reply | undefined;
  new ReplyExceptionFilter().catch(
    exception,
    hostWith((r) => (reply = r)),
  );
  assert.ok(reply, 'the filter answered');
  return reply;
}

describe('ReplyExceptionFilter', () => {
  it('answers a ChatError with its code, message and details', () => {
    const reply = replyTo(new ChatError('VALIDATION_FAILED', 'body: too long', { fields: ['body'] }));
    assert.deepEqual(reply, { ok: false, error: { code: 'VALIDATION_FAILED', message: 'body: too long', details: { fields: ['body'] } } });
  });

  it('answers a storage failure with UNAVAILABLE and hides the database error', () => {
    const reply = replyTo(new StorageUnavailableError(new Error('connect ECONNREFUSED 10.0.0.1:5432')));
    assert.deepEqual(reply, { ok: false, error: { code: 'UNAVAILABLE', message: 'storage is unavailable, try again' } });
  });

  it('answers anything else with INTERNAL and no stack trace', () => {
    for (const thrown of [new TypeError("Cannot read properties of undefined (reading 'x')"), 'a string', null]) {
      const reply = replyTo(thrown);
      assert.deepEqual(reply, { ok: false, error: { code: 'INTERNAL', message: 'internal error' } });
    }
  });
});
