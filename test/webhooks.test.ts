import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { verifyWebhook } from '../src/events/webhook-signature.js';
import { sleep } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { EventsStreamReader, relayLeader, uniqueStreamName } from './support/events-stream.js';
import { startInstance, type Instance } from './support/instance.js';
import { apiCall } from './support/http-api.js';

const API_KEY = 'webhooks-e2e-key-0123456789';
const SECRET = 'webhooks-e2e-secret-0123456789';
const MAX_ATTEMPTS = 5;
const RETRY_BASE_MS = 200;
const TIMEOUT_MS = 300;
/** /flaky fails this many times for each event before it accepts it. */
const FLAKY_FAILURES = 3;

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
  valid: boolean;
  /** Whether the Standard Webhooks headers verify with that project's own library. */
  validStandard: boolean;
}

/**
 * Webhook receivers on 127.0.0.1: /ok answers 202, /flaky 503 for the first attempts of each
 * event, /down always 500, /hang never answers. Every request is recorded with whether its
 * signature verified.
 */
const standard = new Webhook(Buffer.from(SECRET).toString('base64'));

function verifiesAsStandard(headers: IncomingHttpHeaders, body: string): boolean {
  try {
    standard.verify(body, {
      'webhook-id': str(headers['webhook-id']) ?? '',
      'webhook-timestamp': str(headers['webhook-timestamp']) ?? '',
      'webhook-signature': str(headers['webhook-signature']) ?? '',
    });
    return true;
  } catch {
    return false;
  }
}

class Receiver {
  readonly received: Received[] = [];
  private readonly hanging = new Set<ServerResponse>();
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = req.url ?? '';
      const headers = req.headers;
      const valid = verifyWebhook(
        SECRET,
        { timestamp: str(headers['x-chat-timestamp']), signature: str(headers['x-chat-signature']) },
        body,
      );
      this.received.push({ path, headers, body, at: Date.now(), valid, validStandard: verifiesAsStandard(headers, body) });
      if (path === '/hang') return void this.hanging.add(res);
      const attemptsSoFar = this.from(path).filter((r) => r.headers['x-chat-event-id'] === headers['x-chat-event-id']).length;
      const status = path === '/ok' ? 202 : path === '/flaky' ? (attemptsSoFar > FLAKY_FAILURES ? 200 : 503) : 500;
      res.writeHead(valid ? status : 401).end();
    });
  });
  url = '';

  async start(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  from(path: string, eventId?: string): Received[] {
    return this.received.filter((r) => r.path === path && (eventId === undefined || r.headers['x-chat-event-id'] === eventId));
  }

  async until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`receiver: ${what} not within ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    this.server.close();
  }
}

const str = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

const api = (inst: Instance, method: 'PUT' | 'POST', path: string, body?: unknown) => apiCall(inst, method, path, { body, key: API_KEY });

describe('webhooks', () => {
  const receiver = new Receiver();
  let cluster: Cluster;
  let stream: EventsStreamReader;
  let message: any;
  let room: any;
  /** The three events of the run, by type. */
  const ids = new Map<string, string>();

  before(async () => {
    await receiver.start();
    const name = uniqueStreamName();
    stream = new EventsStreamReader(name);
    cluster = await startCluster(2, {
      API_KEYS: API_KEY,
      EVENTS_STREAM: name,
      WEBHOOK_URLS: ['/ok', '/flaky', '/down', '/hang'].map((p) => receiver.url + p).join(','),
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
      WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
      WEBHOOK_RETRY_BASE_MS: String(RETRY_BASE_MS),
      // These cases are about retries and dead letters; test/webhook-isolation.test.ts covers the circuits.
      WEBHOOK_CIRCUIT_FAILURES: '1000',
    });
    const [A, B] = cluster.instances;
    message = (await api(A, 'POST', '/v1/rooms/wh-room/messages', { body: 'hello hooks', senderId: 'wh-service' })).body;
    room = (await api(B, 'PUT', '/v1/rooms/wh-private', { visibility: 'private', title: 'Hooks' })).body;
    assert.equal((await api(A, 'PUT', '/v1/rooms/wh-private/members/wh-dave')).status, 204);
    const events = await stream.waitUntil('three events', (all) => all.length >= 3);
    for (const e of events) ids.set(e.type, e.id);
  });
  after(async () => {
    await cluster.stop();
    await stream.close();
    await receiver.stop();
  });

  it('POSTs every event once to a receiver that accepts it, signed, with the stream’s event id', async () => {
    await receiver.until('three deliveries to /ok', () => receiver.from('/ok').length >= 3);
    await sleep(500);
    const ok = receiver.from('/ok');
    assert.equal(ok.length, 3, 'once each, from the one leader, though two instances run');
    const bodies = ok.map((r) => JSON.parse(r.body));
    assert.deepEqual(
      new Map(bodies.map((b) => [b.type, b])),
      new Map([
        ['message.created', { id: ids.get('message.created'), type: 'message.created', roomId: 'wh-room', data: message }],
        ['room.upserted', { id: ids.get('room.upserted'), type: 'room.upserted', roomId: 'wh-private', data: room }],
        [
          'member.added',
          { id: ids.get('member.added'), type: 'member.added', roomId: 'wh-private', data: { roomId: 'wh-private', userId: 'wh-dave' } },
        ],
      ]),
    );
    for (const r of ok) {
      assert.equal(r.valid, true, 'the signature verifies');
      assert.equal(r.validStandard, true, 'the Standard Webhooks signature verifies with the standardwebhooks library');
      assert.equal(r.headers['webhook-id'], JSON.parse(r.body).id);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.equal(r.headers['x-chat-event-id'], JSON.parse(r.body).id);
      assert.match(str(r.headers['x-chat-signature'])!, /^sha256=[0-9a-f]{64}$/);
      assert.ok(Math.abs(Number(r.headers['x-chat-timestamp']) - Date.now() / 1000) < 60, 'timestamp in seconds, current');
      assert.equal(r.headers['x-chat-attempt'], '1');
    }
  });

  it('retries a failing receiver with growing intervals, the same body each time, until it accepts', async () => {
    const eventId = ids.get('message.created')!;
    await receiver.until('the accepted attempt at /flaky', () => receiver.from('/flaky', eventId).length >= FLAKY_FAILURES + 1);
    await sleep(RETRY_BASE_MS * 2 ** FLAKY_FAILURES * 1.5);
    const attempts = receiver.from('/flaky', eventId);
    assert.equal(attempts.length, FLAKY_FAILURES + 1, 'no attempt after the accepted one');
    assert.deepEqual(
      attempts.map((r) => r.headers['x-chat-attempt']),
      attempts.map((_, i) => String(i + 1)),
    );
    assert.ok(
      attempts.every((r) => r.valid && r.body === attempts[0].body),
      'each attempt signed, same bytes',
    );
    const intervals = attempts.slice(1).map((r, i) => r.at - attempts[i].at);
    console.log(`retry intervals at /flaky: ${intervals.join(', ')} ms (base ${RETRY_BASE_MS} ms)`);
    assert.ok(intervals[0] >= RETRY_BASE_MS * 0.9 - 20, `first retry after about the base: ${intervals}`);
    for (let i = 1; i < intervals.length; i++) assert.ok(intervals[i] > intervals[i - 1], `growing intervals: ${intervals}`);
    assert.ok(intervals.at(-1)! > intervals[0] * 2, `exponential: ${intervals}`);
    const left = await cluster.db.query('SELECT 1 FROM webhook_deliveries WHERE event_id = $1 AND url LIKE $2', [eventId, '%/flaky']);
    assert.equal(left.length, 0, 'the delivered one is gone from the queue');
  });

  it('dead-letters a delivery after WEBHOOK_MAX_ATTEMPTS failures (error status or no answer in time) and warns', async () => {
    const dead = async () =>
      cluster.db.query<{ event_id: string; url: string; attempts: number; last_error: string; type: string; data: any }>(
        'SELECT event_id, url, attempts, last_error, type, data FROM webhook_dead_letters ORDER BY id',
      );
    const deadline = Date.now() + 30_000;
    while ((await dead()).length < 6 && Date.now() < deadline) await sleep(200);
    const rows = await dead();
    assert.equal(rows.length, 6, 'three events to each of /down and /hang');
    for (const path of ['/down', '/hang']) {
      for (const [type, id] of ids) {
        const row = rows.find((r) => r.event_id === id && r.url === receiver.url + path);
        assert.ok(row, `${type} to ${path} dead-lettered`);
        assert.equal(row.attempts, MAX_ATTEMPTS);
        assert.equal(row.type, type);
        assert.equal(row.last_error, path === '/down' ? 'HTTP 500' : `no answer within ${TIMEOUT_MS} ms`);
        assert.equal(receiver.from(path, id).length, MAX_ATTEMPTS, `${type}: ${MAX_ATTEMPTS} attempts at ${path}`);
      }
    }
    assert.deepEqual(await cluster.db.query('SELECT count(*)::int AS n FROM webhook_deliveries'), [{ n: 0 }], 'nothing left to deliver');
    const leader = await relayLeader(cluster.instances);
    assert.match(leader.output(), /moved to webhook_dead_letters/, 'a warning in the log');
    const text = await (await fetch(`${leader.url}/metrics`)).text();
    assert.match(text, /^chat_webhook_dead_letters_total 6$/m);
    assert.match(text, /^chat_webhook_deliveries_total 6$/m, 'each event to /ok and, at last, to /flaky');
    const failures = FLAKY_FAILURES * 3 + MAX_ATTEMPTS * 6;
    assert.match(text, new RegExp(`^chat_webhook_failures_total ${failures}$`, 'm'), 'every failed attempt counted');
  });

  it('the relaying instance exits promptly on SIGTERM with a webhook request in flight, and the other takes over', async () => {
    const leader = await relayLeader(cluster.instances);
    const other = cluster.instances.find((i) => i !== leader)!;
    const posted = (await api(other, 'POST', '/v1/rooms/wh-room/messages', { body: 'during a shutdown', senderId: 'wh-service' })).body;
    const [event] = (await stream.waitUntil('its event', (all) => all.some((e) => e.data.id === posted.id))).filter(
      (e) => e.data.id === posted.id,
    );
    await receiver.until('a request hanging at /hang', () => receiver.from('/hang', event.id).length >= 1);
    const started = Date.now();
    leader.proc.kill('SIGTERM');
    const exit = await leader.exited;
    const exitMs = Date.now() - started;
    assert.equal(exit.code, 0);
    assert.ok(exitMs < 4000, `exited ${exitMs} ms after SIGTERM`);
    assert.equal(await relayLeader([other]), other, 'the other instance relays now');
    await receiver.until('the event at /ok', () => receiver.from('/ok', event.id).length >= 1);
    console.log(`SIGTERM with a webhook request in flight: exited in ${exitMs} ms`);
  });
});

describe('webhooks without Redis', () => {
  const receiver = new Receiver();
  let db: TestDatabase;
  let inst: Instance;

  before(async () => {
    await receiver.start();
    db = await createTestDatabase();
    inst = await startInstance('solo', {
      DATABASE_URL: db.url,
      REDIS_URL: undefined,
      API_KEYS: API_KEY,
      WEBHOOK_URLS: `${receiver.url}/ok`,
      WEBHOOK_SECRET: SECRET,
    });
  });
  after(async () => {
    await inst.stop();
    await db.drop();
    await receiver.stop();
  });

  it('still delivers every event (the relay runs for webhooks alone)', async () => {
    const posted = await api(inst, 'POST', '/v1/rooms/solo-room/messages', { body: 'no Redis here', senderId: 'solo' });
    assert.equal(posted.status, 201);
    await receiver.until('the delivery', () => receiver.from('/ok').length >= 1);
    const [delivery] = receiver.from('/ok');
    assert.equal(delivery.valid, true);
    assert.deepEqual(JSON.parse(delivery.body).data, posted.body);
  });
});
