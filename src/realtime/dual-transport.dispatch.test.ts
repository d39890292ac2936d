// DualTransportAdapter.bindMessageHandlers: which handler a request reaches and what it is answered, through a RecordingConnection.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { finalize, of, throwError } from 'rxjs';
import type { Reply } from '../chat/chat.events.js';
import type { Responder } from './chat-connection.js';
import type { DualTransportAdapter } from './dual-transport.adapter.js';
import {
  adapterOn,
  adapterOptions,
  forbidden,
  handlersOf,
  nested,
  nestTransform,
  RecordingConnection,
  within,
  type Handler,
  type WireError,
} from './dual-transport.test-support.js';

/** The dispatcher answers after the (asynchronous) rate-limit check; this lets that check settle. */
const afterLimits = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Dispatch {
  conn: RecordingConnection;
  replies: Reply[];
  ack: Responder | undefined;
  firstReply: () => Promise<Reply>;
  /** Resolves once the handler's result stream has completed or failed and the adapter reacted. */
  settled: () => Promise<void>;
}

function dispatch(adapter: DualTransportAdapter, table: Record<string, Handler>, event: string, data: unknown, withAck = true): Dispatch {
  const conn = new RecordingConnection();
  let markSettled!: () => void;
  const settledP = new Promise<void>((resolve) => (markSettled = resolve));
  // finalize runs after the adapter's subscriber has seen next/error/complete.
  adapter.bindMessageHandlers(conn, handlersOf(table), (r) => nestTransform(r).pipe(finalize(markSettled)));
  const { replies, ack, firstReply } = conn.request(event, data, withAck);
  return {
    conn,
    replies,
    ack,
    firstReply: () => within(firstReply, `a reply to ${event}`),
    settled: () => within(settledP, `the handler of ${event} to settle`),
  };
}

describe('DualTransportAdapter.bindMessageHandlers (dispatch)', () => {
  const adapter = adapterOn(createServer(), adapterOptions());

  it('calls the matching handler once with (data, respond) and replies its sync value as {ok:true,data}', async () => {
    const calls: unknown[][] = [];
    const payload = { text: 'hi' };
    const d = dispatch(
      adapter,
      {
        echo: (...args) => {
          calls.push(args);
          return { echoed: args[0] };
        },
        other: () => assert.fail('wrong handler called'),
      },
      'echo',
      payload,
    );
    assert.deepEqual(await d.firstReply(), { ok: true, data: { echoed: payload } });
    await d.settled();
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.length, 2);
    assert.equal(calls[0]?.[0], payload);
    assert.equal(calls[0]?.[1], d.ack, 'the second argument is the request responder (the ack)');
    assert.equal(d.replies.length, 1);
  });

  it('replies the resolved value of a Promise-returning handler', async () => {
    const d = dispatch(adapter, { later: async (data) => ({ later: data }) }, 'later', 7);
    assert.deepEqual(await d.firstReply(), { ok: true, data: { later: 7 } });
    await d.settled();
    assert.equal(d.replies.length, 1);
  });

  it('replies the value emitted by an Observable-returning handler', async () => {
    const d = dispatch(adapter, { stream: (data) => of({ streamed: data }) }, 'stream', 'x');
    assert.deepEqual(await d.firstReply(), { ok: true, data: { streamed: 'x' } });
    await d.settled();
    assert.equal(d.replies.length, 1);
  });

  for (const name of ['nope', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '']) {
    it(`answers UNKNOWN_EVENT for the undefined event name ${JSON.stringify(name)} without calling any handler`, async () => {
      let called = false;
      const d = dispatch(
        adapter,
        {
          echo: () => {
            called = true;
            return 'should not run';
          },
        },
        name,
        {},
      );
      await d.firstReply();
      assert.equal(d.replies.length, 1);
      const reply = d.replies[0];
      assert.equal(reply?.ok, false);
      assert.equal(reply.ok === false && reply.error.code, 'UNKNOWN_EVENT');
      assert.equal(typeof (reply.ok === false && reply.error.message), 'string');
      assert.equal(called, false);
    });
  }

  it('pushes UNKNOWN_EVENT as an `error` carrying the event name when the request has no ack', async () => {
    const d = dispatch(adapter, { echo: (x) => x }, 'no.such.event', {}, false);
    await afterLimits();
    assert.equal(d.conn.pushes.length, 1);
    const push = d.conn.pushes[0];
    assert.equal(push?.event, 'error');
    const body = push.data as WireError;
    assert.equal(body.code, 'UNKNOWN_EVENT');
    assert.equal(body.event, 'no.such.event');
  });

  it('sends no success reply when the handler returns undefined', async () => {
    let ran = false;
    const d = dispatch(
      adapter,
      {
        quiet: () => {
          ran = true;
          return undefined;
        },
      },
      'quiet',
      {},
    );
    await d.settled();
    assert.equal(ran, true);
    assert.deepEqual(d.replies, []);
  });

  it('sends exactly the reply a handler gave through respond (as the exception filter does) and no success reply', async () => {
    const d = dispatch(
      adapter,
      {
        guarded: (_data, respond) => {
          (respond as Responder)(forbidden);
          return undefined;
        },
      },
      'guarded',
      {},
    );
    await d.settled();
    assert.deepEqual(d.replies, [forbidden]);
  });

  it('answers INTERNAL when the handler returns an Observable that errors', async () => {
    const d = dispatch(adapter, { explode: () => throwError(() => new Error('boom')) }, 'explode', {});
    const reply = await d.firstReply();
    assert.equal(reply.ok, false);
    assert.equal(reply.ok === false && reply.error.code, 'INTERNAL');
    assert.doesNotMatch(JSON.stringify(reply), /boom/, 'no internal detail leaks to the client');
    await d.settled();
    assert.equal(d.replies.length, 1);
  });

  it('answers INTERNAL when the handler returns a rejected Promise', async () => {
    const d = dispatch(adapter, { reject: () => Promise.reject(new Error('boom')) }, 'reject', {});
    const reply = await d.firstReply();
    assert.equal(reply.ok === false && reply.error.code, 'INTERNAL');
  });

  it('pushes a failure of a request without ack as an `error` carrying the event name', async () => {
    const d = dispatch(adapter, { explode: () => throwError(() => new Error('boom')) }, 'explode', {}, false);
    await d.settled();
    assert.deepEqual(
      d.conn.pushes.map((p) => p.event),
      ['error'],
    );
    const body = d.conn.pushes[0]?.data as WireError;
    assert.equal(body.code, 'INTERNAL');
    assert.equal(body.event, 'explode');
  });

  it('pushes nothing for a successful request without ack', async () => {
    const d = dispatch(adapter, { echo: (x) => ({ echoed: x }) }, 'echo', 1, false);
    await d.settled();
    assert.deepEqual(d.conn.pushes, []);
  });

  it('answers VALIDATION_FAILED for data nested deeper than 32 levels, without calling the handler', async () => {
    let calls = 0;
    const table = { echo: () => ({ n: ++calls }) };
    const ok = dispatch(adapter, table, 'echo', nested(32));
    assert.deepEqual(await ok.firstReply(), { ok: true, data: { n: 1 } }, '32 levels are fine');

    const deep = dispatch(adapter, table, 'echo', nested(33));
    const reply = await deep.firstReply();
    assert.equal(reply.ok === false && reply.error.code, 'VALIDATION_FAILED');
    assert.deepEqual(reply.ok === false && reply.error.details, { fields: ['child'] });
    assert.equal(calls, 1, 'the handler did not run for 33 levels');

    const noAck = dispatch(adapter, table, 'echo', nested(40), false);
    await afterLimits();
    assert.equal((noAck.conn.pushes[0]?.data as WireError | undefined)?.code, 'VALIDATION_FAILED');
    assert.equal((noAck.conn.pushes[0]?.data as WireError | undefined)?.event, 'echo');
  });

  it('answers UNKNOWN_EVENT before looking at the data', async () => {
    const d = dispatch(adapter, { echo: (x) => x }, 'nope', nested(100));
    const reply = await d.firstReply();
    assert.equal(reply.ok === false && reply.error.code, 'UNKNOWN_EVENT');
  });
});
