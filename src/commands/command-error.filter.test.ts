import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import { firstValueFrom } from 'rxjs';
import { ChatError, StorageUnavailableError } from '../chat/chat.errors.js';
import { CommandErrorFilter } from './command-error.filter.js';

Logger.overrideLogger(false);

/** What the filter's observable throws: the `err` of the reply. */
async function errOf(exception: unknown): Promise<unknown> {
  try {
    await firstValueFrom(new CommandErrorFilter().catch(exception));
  } catch (err) {
    return err;
  }
  assert.fail('the filter did not throw');
}

describe('CommandErrorFilter', () => {
  it('answers a ChatError with its code, message and details', async () => {
    assert.deepEqual(await errOf(new ChatError('VALIDATION_FAILED', 'roomId: bad', { fields: ['roomId'] })), {
      code: 'VALIDATION_FAILED',
      message: 'roomId: bad',
      details: { fields: ['roomId'] },
    });
    assert.deepEqual(await errOf(new ChatError('NOT_FOUND', 'room r does not exist')), {
      code: 'NOT_FOUND',
      message: 'room r does not exist',
    });
  });

  it('answers a storage failure with UNAVAILABLE and hides the database error', async () => {
    assert.deepEqual(await errOf(new StorageUnavailableError(new Error('connect ECONNREFUSED'))), {
      code: 'UNAVAILABLE',
      message: 'storage is unavailable, try again',
    });
  });

  it('answers anything else with INTERNAL and no stack trace', async () => {
    for (const thrown of [new TypeError('x is undefined'), 'a string', null]) {
      assert.deepEqual(await errOf(thrown), { code: 'INTERNAL', message: 'internal error' });
    }
  });
});
