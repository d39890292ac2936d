// The pre-send hook against a real HTTP receiver on 127.0.0.1: every socket send and edit is
// POSTed there signed with Standard Webhooks headers, and its answer (allow, modify, reject, none
// in time, a bad one) decides what is stored, on ws and socket.io alike. HTTP sends skip it, and a
// hook slow for one room does not hold up another room's sends.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { connect, type Kind, type TestClient } from './support/clients.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { apiCall } from './support/http-api.js';
import { clusterEnv, redisPrefix, startInstance, UNLIMITED_RATES, type Instance } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

const SECRET = 'presend-e2e-secret-0123456789';
const API_KEY = 'presend-e2e-key-0123456789';
const TIMEOUT_MS = 400;
const standard = new Webhook(Buffer.from(SECRET).toString('base64'));

interface Asked {
  body: any;
  headers: IncomingHttpHeaders;
  verified: boolean;
}

/**
 * Answers by the message body's first word: `modify:` (the rest, upper-cased), `reject` (with a
 * reason), `slow` (after 4 × the hook timeout), `garbage` (not JSON), `hang` (never); else allow.
 */
class Hook {
  readonly asked: Asked[] = [];
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let verified = true;
      try {
        standard.verify(raw, {
          'webhook-id': String(req.headers['webhook-id'] ?? ''),
          'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
          'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
        });
      } catch {
        verified = false;
      }
      const body = JSON.parse(raw);
      this.asked.push({ body, headers: req.headers, verified });
      const text: string = body.body;
      const answer = (a: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(a));
      if (text.startsWith('modify:')) answer({ action: 'modify', body: text.slice(7).toUpperCase() });
      else if (text.startsWith('reject')) answer({ action: 'reject', reason: 'no shouting' });
      else if (text.startsWith('slow')) setTimeout(() => answer({ action: 'allow' }), 4 * TIMEOUT_MS).unref();
      else if (text.startsWith('garbage')) res.writeHead(200, { 'content-type': 'application/json' }).end('{not json');
      else if (text.startsWith('hang')) return;
      else answer({ action: 'allow' });
    });
  });

  async start(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    const { port } = this.server.address() as { port: number };
    return `http://127.0.0.1:${port}/presend`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
  }
}

describe('pre-send hook', () => {
  let db: TestDatabase;
  let hook: Hook;
  let closed: Instance;
  let open: Instance;
  const clients: TestClient[] = [];

  before(async () => {
    db = await createTestDatabase();
    hook = new Hook();
    const url = await hook.start();
    const env = {
      ...clusterEnv(db.url, redisPrefix()),
      ...UNLIMITED_RATES,
      API_KEYS: API_KEY,
      WEBHOOK_SECRET: SECRET,
      PRESEND_HOOK_URL: url,
      PRESEND_HOOK_TIMEOUT_MS: String(TIMEOUT_MS),
    };
    [closed, open] = await Promise.all([
      startInstance('fail-closed', env),
      startInstance('fail-open', { ...env, PRESEND_HOOK_FAIL_OPEN: 'true' }),
    ]);
  });

  after(async () => {
    for (const c of clients) c.close();
    await Promise.all([closed?.stop(), open?.stop()]);
    await hook?.stop();
    await db?.drop();
  });

  async function client(kind: Kind, inst: Instance, user: string): Promise<TestClient> {
    const c = await connect(kind, inst.url, await tokenFor(user));
    clients.push(c);
    return c;
  }

  const bodies = async (c: TestClient, roomId: string) =>
    ((await c.ok('message.history', { roomId, afterSeq: 0, limit: 100 })).messages as { body: string }[]).map((m) => m.body);

  for (const kind of ['ws', 'io'] as const) {
    it(`${kind}: allows, modifies and rejects as the hook answers, signed, and stores only what it let through`, async () => {
      const roomId = `hooked-${kind}`;
      const c = await client(kind, closed, `hooked-${kind}`);
      await c.ok('room.join', { roomId });
      const from = hook.asked.length;

      const allowed = await c.ok('message.send', { roomId, body: 'hello there', mentions: ['someone'] });
      assert.equal(allowed.body, 'hello there');
      const modified = await c.ok('message.send', { roomId, body: 'modify:quiet words' });
      assert.equal(modified.body, 'QUIET WORDS', 'the stored body is the hook’s');
      const rejected = await c.request('message.send', { roomId, body: 'reject this' });
      assert.equal(rejected.ok, false);
      assert.equal(rejected.error?.code, 'FORBIDDEN');
      assert.deepEqual(rejected.error?.details, { reason: 'rejected', message: 'no shouting' });
      assert.deepEqual(await bodies(c, roomId), ['hello there', 'QUIET WORDS'], 'a rejected message is not stored');

      const asked = hook.asked.slice(from);
      assert.equal(asked.length, 3, 'one hook call per message');
      assert.ok(
        asked.every((a) => a.verified),
        'every call verifies as Standard Webhooks',
      );
      assert.deepEqual(asked[0].body, {
        type: 'message.send',
        roomId,
        senderId: `hooked-${kind}`,
        body: 'hello there',
        mentions: ['someone'],
        parentSeq: null,
      });

      const edited = await c.ok('message.edit', { roomId, seq: allowed.seq, body: 'modify:edited' });
      assert.equal(edited.body, 'EDITED');
      const editAsked = hook.asked.at(-1)!.body;
      assert.equal(editAsked.type, 'message.edit');
      assert.equal(editAsked.seq, allowed.seq);
      const refused = await c.request('message.edit', { roomId, seq: allowed.seq, body: 'reject edit' });
      assert.equal(refused.error?.code, 'FORBIDDEN');
      assert.deepEqual(await bodies(c, roomId), ['EDITED', 'QUIET WORDS'], 'the refused edit changed nothing');
    });

    it(`${kind}: no valid answer in time is UNAVAILABLE and stores nothing; with PRESEND_HOOK_FAIL_OPEN it is stored as sent`, async () => {
      const roomId = `unanswered-${kind}`;
      const c = await client(kind, closed, `unanswered-${kind}`);
      const o = await client(kind, open, `unanswered-open-${kind}`);
      for (const body of ['hang here', 'garbage answer']) {
        const started = Date.now();
        const r = await c.request('message.send', { roomId, body });
        assert.equal(r.error?.code, 'UNAVAILABLE', body);
        assert.ok(Date.now() - started < TIMEOUT_MS + 2000, `${body}: answered within the hook timeout`);
      }
      assert.deepEqual(await bodies(c, roomId), [], 'nothing stored when failing closed');
      for (const body of ['hang open', 'garbage open']) assert.equal((await o.ok('message.send', { roomId, body })).body, body);
      assert.deepEqual(await bodies(c, roomId), ['hang open', 'garbage open']);
    });
  }

  it('skips the hook for messages from the HTTP API', async () => {
    const from = hook.asked.length;
    const res = await apiCall(closed, 'POST', '/v1/rooms/hook-http/messages', {
      key: API_KEY,
      body: { senderId: 'backend', body: 'reject me not' },
    });
    assert.equal(res.status, 201);
    assert.equal(res.body.body, 'reject me not');
    assert.equal(hook.asked.length, from, 'no hook call');
  });

  it('a hook slow for one room does not hold up sends to another', async () => {
    const slow = await client('ws', closed, 'slow-sender');
    const fast = await client('io', closed, 'fast-sender');
    const pending = Array.from({ length: 8 }, (_, i) => slow.request('message.send', { roomId: 'hook-slow', body: `slow ${i}` }));
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = Date.now();
      await fast.ok('message.send', { roomId: 'hook-fast', body: `fast ${i}` });
      times.push(Date.now() - started);
    }
    const slowReplies = await Promise.all(pending);
    assert.ok(
      slowReplies.every((r) => r.error?.code === 'UNAVAILABLE'),
      'the slow room’s sends timed out',
    );
    console.log(`# fast-room sends while 8 slow-room hook calls were pending: ${times.join(', ')} ms`);
    assert.ok(Math.max(...times) < TIMEOUT_MS, `fast room sends took ${times.join(', ')} ms`);
  });
});
