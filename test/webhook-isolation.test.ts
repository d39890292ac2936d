import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { sleep } from './support/clients.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { apiCall } from './support/http-api.js';
import { startInstance, type Instance } from './support/instance.js';

const API_KEY = 'webhook-isolation-key-0123456789';
const SECRET = 'webhook-isolation-secret-0123456789';
const TIMEOUT_MS = 4000;
const COOLDOWN_MS = 1500;
const FAILURES = 3;
const EVENTS = 60;

/** A receiver on a port of its own (so on a host of its own for the metric): records arrivals, answers as told. */
class Receiver {
  readonly arrivals: { at: number; body: any }[] = [];
  /** Requests open at once, at most. */
  maxOpen = 0;
  private open = 0;
  /** 'hang' never answers; a number answers that status. */
  answer: 'hang' | number;
  url = '';
  private readonly hanging = new Set<ServerResponse>();
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    this.maxOpen = Math.max(this.maxOpen, ++this.open);
    res.on('close', () => this.open--);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      this.arrivals.push({ at: Date.now(), body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      if (this.answer === 'hang') this.hanging.add(res);
      else res.writeHead(this.answer).end();
    });
  });

  constructor(answer: 'hang' | number) {
    this.answer = answer;
  }

  get host(): string {
    return new URL(this.url).host;
  }

  async start(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}/hook`;
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    this.server.close();
  }
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Gaps between consecutive arrivals longer than `ms`, as [from, to] times. */
const gaps = (times: number[], ms: number) => times.slice(1).flatMap((t, i) => (t - times[i] >= ms ? [[times[i], t] as const] : []));

describe('webhooks: one bad URL does not slow the others', () => {
  const healthy = new Receiver(202);
  const hanging = new Receiver('hang');
  const failing = new Receiver(500);
  let db: TestDatabase;
  let inst: Instance;
  /** When each message's POST was answered (committed), by message id. */
  const committedAt = new Map<string, number>();
  const metricSamples: string[] = [];
  let sampling = true;
  let sampler: Promise<void>;

  before(async () => {
    await Promise.all([healthy.start(), hanging.start(), failing.start()]);
    db = await createTestDatabase();
    inst = await startInstance('webhook-isolation', {
      DATABASE_URL: db.url,
      API_KEYS: API_KEY,
      WEBHOOK_URLS: [healthy.url, hanging.url, failing.url].join(','),
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
      WEBHOOK_RETRY_BASE_MS: '100',
      WEBHOOK_MAX_ATTEMPTS: '50',
      WEBHOOK_CIRCUIT_FAILURES: String(FAILURES),
      WEBHOOK_CIRCUIT_COOLDOWN_MS: String(COOLDOWN_MS),
    });
    sampler = (async () => {
      while (sampling) {
        metricSamples.push(await (await fetch(`${inst.url}/metrics`)).text());
        await sleep(200);
      }
    })();
    // Events keep arriving for 3 s, so every URL has due deliveries all along.
    for (let i = 0; i < EVENTS; i++) {
      const res = await apiCall(inst, 'POST', '/v1/rooms/hooks/messages', { key: API_KEY, body: { body: `m${i}`, senderId: 'svc' } });
      assert.equal(res.status, 201);
      committedAt.set(res.body.id, Date.now());
      await sleep(50);
    }
  });
  after(async () => {
    sampling = false;
    await sampler;
    await inst.stop();
    await db.drop();
    await Promise.all([healthy.stop(), hanging.stop(), failing.stop()]);
  });

  it('delivers to the healthy URL promptly while another never answers', async () => {
    await until('every event at the healthy URL', () => healthy.arrivals.length >= EVENTS);
    const latencies = healthy.arrivals.map((a) => a.at - committedAt.get(a.body.data.id)!).sort((a, b) => a - b);
    const max = latencies.at(-1)!;
    console.log(`healthy URL with a hanging one beside it: p50 ${latencies[EVENTS >> 1]} ms, max ${max} ms (timeout ${TIMEOUT_MS} ms)`);
    // Unshared, the hanging URL's requests filled every slot and the healthy one waited for their timeouts.
    assert.ok(max < 1500, `the slowest healthy delivery took ${max} ms`);
    assert.equal(hanging.maxOpen, 8, 'the hanging URL holds its share of the requests (WEBHOOK_CONCURRENCY_PER_URL), no more');
  });

  it('opens the failing URL’s circuit: nothing but one probe per cool-down, attempts not spent, the metric by host', async () => {
    // Deliveries were due for it all along (an event every 50 ms); the open circuit holds them back.
    const times = () => failing.arrivals.map((a) => a.at);
    await until('two cool-downs at the failing URL', () => gaps(times(), COOLDOWN_MS * 0.9).length >= 2, 20_000);
    const [first, second] = gaps(times(), COOLDOWN_MS * 0.9);
    const between = times().filter((t) => t >= first[1] && t <= second[0]);
    assert.equal(between.length, 1, `one probe between the cool-downs: ${times().map((t) => t - times()[0])}`);
    assert.ok(
      metricSamples.some((m) => m.includes(`chat_webhook_circuits_open{host="${failing.host}"} 1`)),
      'the open circuit shows in /metrics, by host',
    );
    assert.ok(!metricSamples.some((m) => m.includes(`host="${healthy.host}"} 1`)), 'the healthy URL’s circuit never opened');
    const rows = await db.query<{ max: number }>('SELECT max(attempts)::int AS max FROM webhook_deliveries WHERE url = $1', [failing.url]);
    // Without the circuit, a 100 ms retry base spends about ten attempts in the same time.
    assert.ok(rows[0].max <= 4, `attempts spent while the circuit was open: at most ${rows[0].max}`);
  });

  it('closes the circuit when the probe succeeds and delivers the held-back events', async () => {
    failing.answer = 200;
    await until(
      'every held-back event delivered to the recovered URL',
      async () => {
        const [{ n }] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM webhook_deliveries WHERE url = $1', [failing.url]);
        return n === 0;
      },
      COOLDOWN_MS * 6,
    );
    assert.equal(new Set(failing.arrivals.map((a) => a.body.id)).size, EVENTS, 'every event reached it');
    const text = await (await fetch(`${inst.url}/metrics`)).text();
    assert.match(text, new RegExp(`chat_webhook_circuits_open\\{host="${failing.host.replace('.', '\\.')}"\\} 0`));
  });
});
