import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { IoTestClient, sleep, type Kind } from './support/clients.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { eventsStreamOf, PROJECT_ROOT, redisPrefix, SHARED_REDIS_URL, UNLIMITED_RATES } from './support/instance.js';
import { TEST_JWT_SECRET, tokenFor } from './support/tokens.js';

interface LocalCluster {
  url: string;
  instances: { name: string; port: number; proc: ChildProcess }[];
  stop(): Promise<void>;
}

const ROOM = 'lb-room';

interface Message {
  id: string;
  seq: number;
  body: string;
}

/**
 * A client as the contract asks for, through the load balancer: it keeps every message it has by
 * seq, and after each `session` (first connect or reconnect) rejoins with `sinceSeq` and pages
 * the history until nothing is missing. socket.io clients reconnect by themselves; the raw ws
 * client reconnects by hand, as a browser page would.
 */
class ResumingClient {
  readonly seen = new Map<number, Message[]>();
  connectionIds: string[] = [];
  sessions = 0;
  private io: IoTestClient | null = null;
  private ws: WebSocket | null = null;
  private frameId = 0;
  private replies = new Map<string, (r: { ok: boolean; data?: any }) => void>();
  private closed = false;

  constructor(
    readonly kind: Kind,
    readonly user: string,
    private readonly url: string,
  ) {}

  async start(): Promise<void> {
    const token = await tokenFor(this.user);
    if (this.kind === 'ws') return this.openWs(token);
    this.io = new IoTestClient(this.url, token, this.kind === 'io-polling', {
      reconnection: true,
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
      // Keeps the load balancer's cookie, which pins a polling session to its replica.
      withCredentials: true,
    });
    this.io.socket.on('session', (s: { connectionId: string }) => void this.onSession(s.connectionId));
    this.io.socket.on('message.new', (m: Message) => this.keep([m]));
  }

  private openWs(token: string): void {
    const ws = new WebSocket(`${this.url.replace('http', 'ws')}/ws?access_token=${token}`);
    this.ws = ws;
    ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString());
      if (typeof frame.id === 'string') this.replies.get(frame.id)?.(frame);
      else if (frame.event === 'session') void this.onSession(frame.data.connectionId);
      else if (frame.event === 'message.new') this.keep([frame.data]);
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      if (!this.closed) setTimeout(() => this.openWs(token), 100);
    });
  }

  request(event: string, data: unknown): Promise<{ ok: boolean; data?: any; error?: any }> {
    if (this.io) return this.io.socket.timeout(5000).emitWithAck(event, data);
    const id = `r${++this.frameId}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.kind}: no reply to ${event}`)), 5000);
      this.replies.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.ws?.send(JSON.stringify({ event, data, id }));
    });
  }

  /** The highest seq up to which nothing is missing. */
  get upTo(): number {
    let n = 0;
    while (this.seen.has(n + 1)) n++;
    return n;
  }

  private keep(messages: Message[]): void {
    for (const m of messages) this.seen.set(m.seq, [...(this.seen.get(m.seq) ?? []), m]);
  }

  private async onSession(connectionId: string): Promise<void> {
    this.connectionIds.push(connectionId);
    const join = await this.request('room.join', { roomId: ROOM, sinceSeq: this.upTo });
    assert.equal(join.ok, true, `${this.kind} rejoin: ${JSON.stringify(join)}`);
    this.keep(join.data.missed);
    let more = join.data.hasMore;
    while (more) {
      const page = await this.request('message.history', { roomId: ROOM, afterSeq: this.upTo, limit: 100 });
      this.keep(page.data.messages);
      more = page.data.hasMore;
    }
    this.sessions++;
  }

  /** Resolves once this client has every seq up to `n`. */
  async waitUpTo(n: number, timeoutMs = 15_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (this.upTo < n) {
      if (Date.now() > end) throw new Error(`${this.kind} ${this.user}: has up to ${this.upTo} of ${n}`);
      await sleep(50);
    }
  }

  close(): void {
    this.closed = true;
    this.io?.close();
    this.ws?.terminate();
  }
}

describe('three replicas behind HAProxy (npm run cluster)', () => {
  let db: TestDatabase;
  let cluster: LocalCluster;
  const logs = new Map<string, string[]>();
  const clients: ResumingClient[] = [];

  before(async () => {
    db = await createTestDatabase();
    const prefix = redisPrefix();
    const { startLocalCluster } = (await import(`${PROJECT_ROOT}scripts/cluster.mjs`)) as {
      startLocalCluster: (o: object) => Promise<LocalCluster>;
    };
    cluster = await startLocalCluster({
      replicas: 3,
      databaseUrl: db.url,
      redisUrl: SHARED_REDIS_URL,
      env: {
        NODE_ENV: 'test',
        JWT_SECRET: TEST_JWT_SECRET,
        LOG_LEVEL: 'info',
        REDIS_PREFIX: prefix,
        EVENTS_STREAM: eventsStreamOf(prefix),
        ...UNLIMITED_RATES,
      },
      output: (name: string, line: string) => logs.set(name, [...(logs.get(name) ?? []), line]),
    });
    const kinds: Kind[] = ['io-polling', 'io', 'ws'];
    for (let i = 0; i < 12; i++) {
      const client = new ResumingClient(kinds[i % 3], `lb-user-${i}`, cluster.url);
      clients.push(client);
      await client.start();
    }
    const deadline = Date.now() + 15_000;
    while (clients.some((c) => c.sessions === 0) && Date.now() < deadline) await sleep(50);
  });

  after(async () => {
    for (const c of clients) c.close();
    await cluster?.stop();
    await db?.drop();
  });

  /** Which replica holds a connection, from the replicas' own connection logs. */
  const replicaOf = (connectionId: string) =>
    [...logs].find(([name, lines]) => name !== 'haproxy' && lines.some((l) => l.includes(connectionId)))?.[0];

  it('spreads polling, websocket and raw ws clients over the three replicas', () => {
    assert.ok(
      clients.every((c) => c.sessions === 1),
      'every client joined',
    );
    const replicas = new Set(clients.map((c) => replicaOf(c.connectionIds[0])));
    assert.deepEqual([...replicas].sort(), ['chat1', 'chat2', 'chat3']);
  });

  it('delivers every message to every client exactly once', async () => {
    const acks = await Promise.all(clients.map((c, i) => c.request('message.send', { roomId: ROOM, body: `hello ${i}` })));
    assert.ok(acks.every((a) => a.ok));
    await Promise.all(clients.map((c) => c.waitUpTo(clients.length)));
    await sleep(500);
    for (const c of clients) {
      for (let seq = 1; seq <= clients.length; seq++) assert.equal(c.seen.get(seq)?.length, 1, `${c.kind} ${c.user}: seq ${seq} seen once`);
    }
  });

  it('after a replica is killed, its clients reconnect through the balancer and recover what they missed', async () => {
    const victim = cluster.instances[1];
    const affected = clients.filter((c) => replicaOf(c.connectionIds[0]) === victim.name);
    assert.ok(affected.length > 0, 'the killed replica had clients');
    victim.proc.kill('SIGKILL');
    const survivors = clients.filter((c) => !affected.includes(c));
    // Messages sent while the affected clients are away.
    for (let i = 0; i < 10; i++) {
      const r = await survivors[i % survivors.length].request('message.send', { roomId: ROOM, body: `while away ${i}` });
      assert.equal(r.ok, true);
    }
    const total = clients.length + 10;
    await Promise.all(clients.map((c) => c.waitUpTo(total, 20_000)));
    for (const c of affected) {
      assert.ok(c.connectionIds.length >= 2, `${c.kind} ${c.user} reconnected`);
      assert.notEqual(replicaOf(c.connectionIds.at(-1)!), victim.name, 'to a live replica');
    }
    const rows = await db.query<{ n: string }>('SELECT count(*) AS n FROM messages WHERE room_id = $1', [ROOM]);
    assert.equal(Number(rows[0].n), total);
  });
});
