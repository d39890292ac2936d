import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { integerParam } from './request-body.js';

describe('integerParam', () => {
  it('turns plain decimal integers into numbers', () => {
    assert.deepEqual(['0', '7', '01', '999999999999999'].map(integerParam), [0, 7, 1, 999999999999999]);
  });

  it('passes anything else on unchanged, for validation to refuse', () => {
    for (const text of ['abc', '-1', '1.5', '1e3', ' 1', '', '0x10', '1234567890123456']) assert.equal(integerParam(text), text, text);
    assert.equal(integerParam(undefined), undefined);
    assert.deepEqual(integerParam(['5']), ['5'], 'a repeated query parameter');
    assert.deepEqual(integerParam({ a: '5' }), { a: '5' }, 'a bracketed query parameter');
  });
});
