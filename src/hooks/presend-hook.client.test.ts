import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import type { PresendRequest } from '../chat/chat.ports.js';
import { HttpPresendHook, type PresendOutcome } from './presend-hook.client.js';

const SECRET = 'presend-secret-0123456789';
const REQUEST: PresendRequest = { type: 'message.send', roomId: 'r1', senderId: 'u1', body: 'hello', mentions: [], parentSeq: null };
const anyBody = () => true;

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

describe('HttpPresendHook against a real HTTP receiver', () => {
  let server: Server;
  let url: string;
  let handler: Handler = (_req, _body, res) => res.end('{"action":"allow"}');

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => handler(req, Buffer.concat(chunks).toString('utf8'), res));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/presend`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  function hook(options: { timeoutMs?: number; concurrency?: number; queue?: number; maxAnswerBytes?: number } = {}) {
    const outcomes: PresendOutcome[] = [];
    const client = new HttpPresendHook(
      {
        url,
        secret: SECRET,
        timeoutMs: options.timeoutMs ?? 1000,
        failOpen: false,
        concurrency: options.concurrency ?? 8,
        queue: options.queue ?? 8,
      },
      options.maxAnswerBytes ?? 64 * 1024,
      (outcome) => outcomes.push(outcome),
    );
    return { client, outcomes };
  }

  it('POSTs the request as JSON, signed so that the standardwebhooks library verifies it', async () => {
    let verified: unknown = null;
    handler = (req, body, res) => {
      const wh = new Webhook(`whsec_${Buffer.from(SECRET).toString('base64')}`);
      verified = wh.verify(body, req.headers as Record<string, string>);
      res.end('{"action":"allow"}');
    };
    const { client, outcomes } = hook();
    assert.deepEqual(await client.ask(REQUEST, anyBody), { action: 'allow' });
    assert.deepEqual(verified, REQUEST);
    assert.deepEqual(outcomes, ['allow']);
  });

  it('reads modify and reject answers; a modified body the validator refuses is no valid answer', async () => {
    const { client, outcomes } = hook();
    handler = (_req, _body, res) => res.end('{"action":"modify","body":"***"}');
    assert.deepEqual(await client.ask(REQUEST, anyBody), { action: 'modify', body: '***' });
    assert.equal(await client.ask(REQUEST, () => false), null);
    handler = (_req, _body, res) => res.end('{"action":"reject","reason":"spam"}');
    assert.deepEqual(await client.ask(REQUEST, anyBody), { action: 'reject', reason: 'spam' });
    handler = (_req, _body, res) => res.end('{"action":"reject"}');
    assert.deepEqual(await client.ask(REQUEST, anyBody), { action: 'reject', reason: null });
    assert.deepEqual(outcomes, ['modify', 'bad_answer', 'reject', 'reject']);
  });

  for (const [name, respond] of [
    ['a 500', (res: ServerResponse) => res.writeHead(500).end('{"action":"allow"}')],
    ['a redirect', (res: ServerResponse) => res.writeHead(302, { location: '/elsewhere' }).end()],
    ['not JSON', (res: ServerResponse) => res.end('allow')],
    ['an unknown action', (res: ServerResponse) => res.end('{"action":"maybe"}')],
    ['a reason that is not a string', (res: ServerResponse) => res.end('{"action":"reject","reason":42}')],
    ['an oversized answer', (res: ServerResponse) => res.end(JSON.stringify({ action: 'allow', pad: 'x'.repeat(2000) }))],
  ] as const) {
    it(`counts ${name} as no valid answer`, async () => {
      handler = (_req, _body, res) => respond(res);
      const { client, outcomes } = hook({ maxAnswerBytes: 1024 });
      assert.equal(await client.ask(REQUEST, anyBody), null);
      assert.deepEqual(outcomes, ['bad_answer']);
    });
  }

  it('gives up at the timeout', async () => {
    handler = (_req, _body, res) => setTimeout(() => res.end('{"action":"allow"}'), 500);
    const { client, outcomes } = hook({ timeoutMs: 100 });
    const started = Date.now();
    assert.equal(await client.ask(REQUEST, anyBody), null);
    assert.ok(Date.now() - started < 400, `answered after ${Date.now() - started} ms`);
    assert.deepEqual(outcomes, ['timeout']);
  });

  it('keeps at most `concurrency` calls in flight, queues `queue` more and refuses beyond', async () => {
    let inFlight = 0;
    let most = 0;
    handler = (_req, _body, res) => {
      most = Math.max(most, ++inFlight);
      setTimeout(() => {
        inFlight--;
        res.end('{"action":"allow"}');
      }, 50);
    };
    const { client, outcomes } = hook({ concurrency: 2, queue: 2, timeoutMs: 2000 });
    const answers = await Promise.all(Array.from({ length: 6 }, () => client.ask(REQUEST, anyBody)));
    assert.equal(most, 2);
    assert.equal(answers.filter((a) => a?.action === 'allow').length, 4);
    assert.equal(outcomes.filter((o) => o === 'overloaded').length, 2);
  });

  it('answers calls concurrently: a slow answer does not hold up a quick one', async () => {
    handler = (_req, body, res) => {
      const slow = (JSON.parse(body) as PresendRequest).roomId === 'slow';
      setTimeout(() => res.end('{"action":"allow"}'), slow ? 800 : 0);
    };
    const { client } = hook({ timeoutMs: 2000 });
    const slow = client.ask({ ...REQUEST, roomId: 'slow' }, anyBody);
    const started = Date.now();
    await client.ask(REQUEST, anyBody);
    const quickMs = Date.now() - started;
    await slow;
    assert.ok(quickMs < 300, `the quick call took ${quickMs} ms`);
  });

  it('reports an unreachable hook as no valid answer', async () => {
    const client = new HttpPresendHook(
      { url: 'http://127.0.0.1:9/presend', secret: SECRET, timeoutMs: 1000, failOpen: false, concurrency: 1, queue: 0 },
      1024,
    );
    assert.equal(await client.ask(REQUEST, anyBody), null);
  });
});
