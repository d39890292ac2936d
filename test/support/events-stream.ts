import { randomBytes } from 'node:crypto';
import { Redis, type Cluster } from 'ioredis';
import { sleep } from './clients.js';
import { SHARED_REDIS_URL, type Instance } from './instance.js';

/** One entry of the events stream, its fields decoded. */
export interface StreamEvent {
  /** The stream entry id (`<ms>-<n>`), in append order. */
  entryId: string;
  /** When Redis appended it (epoch ms, from the entry id). */
  at: number;
  /** The field names of the entry, in order. */
  fields: string[];
  id: string;
  type: string;
  roomId: string;
  data: any;
}

/** A stream name no other test run shares. */
export function uniqueStreamName(): string {
  return `chat-test-events-${randomBytes(4).toString('hex')}`;
}

/** Reads a test's events stream (on the shared Redis unless given another client), and deletes it at the end. */
export class EventsStreamReader {
  constructor(
    readonly stream: string,
    private readonly redis: Redis | Cluster = new Redis(SHARED_REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 2 }),
  ) {}

  async read(): Promise<StreamEvent[]> {
    const entries = (await this.redis.xrange(this.stream, '-', '+')) as [string, string[]][];
    return entries.map(([entryId, list]) => {
      const f: Record<string, string> = {};
      for (let i = 0; i < list.length; i += 2) f[list[i]] = list[i + 1];
      return {
        entryId,
        at: Number(entryId.split('-')[0]),
        fields: list.filter((_, i) => i % 2 === 0),
        id: f.id,
        type: f.type,
        roomId: f.roomId,
        data: JSON.parse(f.data),
      };
    });
  }

  /** Polls the stream until `done(events)` holds; throws with `what` after `timeoutMs`. */
  async waitUntil(what: string, done: (events: StreamEvent[]) => boolean, timeoutMs = 10_000): Promise<StreamEvent[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const events = await this.read();
      if (done(events)) return events;
      if (Date.now() > deadline) throw new Error(`stream ${this.stream}: ${what} not within ${timeoutMs} ms (${events.length} entries)`);
      await sleep(100);
    }
  }

  async close(): Promise<void> {
    await this.redis.del(this.stream).catch(() => undefined);
    this.redis.disconnect();
  }
}

/** Each event id once, at its first appearance in the stream. */
export function firstAppearances(events: StreamEvent[]): StreamEvent[] {
  const seen = new Set<string>();
  return events.filter((e) => !seen.has(e.id) && seen.add(e.id));
}

/** Whether the instance's /metrics says it relays events now. */
export async function relays(inst: Instance): Promise<boolean> {
  try {
    const text = await (await fetch(`${inst.url}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    return /^chat_events_relay_leader 1$/m.test(text);
  } catch {
    return false;
  }
}

/** The one instance among `instances` that relays, once exactly one does (bounded). */
export async function relayLeader(instances: Instance[], timeoutMs = 10_000): Promise<Instance> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const leading = [];
    for (const inst of instances) if (await relays(inst)) leading.push(inst);
    if (leading.length === 1) return leading[0];
    if (Date.now() > deadline) throw new Error(`${leading.length} instances relay events, expected exactly one`);
    await sleep(100);
  }
}
