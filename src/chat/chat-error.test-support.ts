import assert from 'node:assert/strict';
import { ChatError } from './chat.errors.js';

/** The ChatError `work` is refused with; fails the test when it succeeds or fails otherwise. */
export async function refusal(work: Promise<unknown>): Promise<ChatError> {
  const err = await work.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ChatError);
  return err;
}
