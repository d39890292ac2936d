import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fieldsNestedTooDeep, MAX_DATA_DEPTH, nestsDeeperThan } from './payload-shape.js';

/** `levels` nested objects ({} is one level), built without recursion. */
function nestedObjects(levels: number): unknown {
  let value: unknown = {};
  for (let i = 1; i < levels; i++) value = { child: value };
  return value;
}

function nestedArrays(levels: number): unknown {
  let value: unknown = [];
  for (let i = 1; i < levels; i++) value = [value];
  return value;
}

/** Alternates arrays and objects, with a scalar at the bottom that adds no level. */
function nestedMixed(levels: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < levels; i++) value = i % 2 === 0 ? { k: value } : [1, value];
  return value;
}

describe('nestsDeeperThan', () => {
  it('bounds request data at 32 levels', () => {
    assert.equal(MAX_DATA_DEPTH, 32);
  });

  for (const [label, build] of [
    ['objects', nestedObjects],
    ['arrays', nestedArrays],
    ['arrays and objects', nestedMixed],
  ] as const) {
    it(`accepts ${label} nested exactly 32 levels and refuses 33`, () => {
      assert.equal(nestsDeeperThan(build(31), MAX_DATA_DEPTH), false);
      assert.equal(nestsDeeperThan(build(32), MAX_DATA_DEPTH), false);
      assert.equal(nestsDeeperThan(build(33), MAX_DATA_DEPTH), true);
      assert.equal(nestsDeeperThan(build(40), MAX_DATA_DEPTH), true);
    });
  }

  it('counts the top-level object as one level', () => {
    assert.equal(nestsDeeperThan({}, 1), false);
    assert.equal(nestsDeeperThan({ a: {} }, 1), true);
    assert.equal(nestsDeeperThan({ a: 1, b: 'x', c: null }, 1), false, 'scalars add no level');
  });

  it('treats scalars, null and undefined as no nesting', () => {
    for (const value of [null, undefined, 0, 'text', true, 12n]) assert.equal(nestsDeeperThan(value, 0), false, String(value));
  });

  it('finds a deep branch next to shallow ones, in any position', () => {
    const deep = nestedObjects(33);
    assert.equal(nestsDeeperThan({ a: 1, b: { c: 2 }, z: deep }, MAX_DATA_DEPTH), true);
    assert.equal(nestsDeeperThan({ z: deep, a: 1 }, MAX_DATA_DEPTH), true);
    assert.equal(nestsDeeperThan([1, 2, [3], deep, 4], MAX_DATA_DEPTH), true);
  });

  it('accepts wide but shallow data', () => {
    const wide = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, { v: [i, { w: i }] }]));
    assert.equal(nestsDeeperThan(wide, MAX_DATA_DEPTH), false);
  });

  it('walks 100000 levels without overflowing the stack', () => {
    for (const build of [nestedObjects, nestedArrays]) {
      const hostile = build(100_000);
      let result: boolean | undefined;
      assert.doesNotThrow(() => (result = nestsDeeperThan(hostile, MAX_DATA_DEPTH)));
      assert.equal(result, true);
    }
  });

  it('walks 100000 levels of parsed JSON too', () => {
    const json = '['.repeat(100_000) + ']'.repeat(100_000);
    assert.equal(nestsDeeperThan(JSON.parse(json) as unknown, MAX_DATA_DEPTH), true);
  });
});

describe('fieldsNestedTooDeep', () => {
  it('is null within the bound and names the top-level fields past it', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    assert.equal(fieldsNestedTooDeep({ roomId: 'r', body: 'b' }), null);
    assert.deepEqual(fieldsNestedTooDeep({ roomId: 'r', x: deep, y: { z: deep }, ok: [1] }), ['x', 'y']);
    assert.deepEqual(fieldsNestedTooDeep(deep), ['0'], 'an array names its index');
  });
});
