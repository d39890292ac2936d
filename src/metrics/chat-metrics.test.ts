import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import { ChatMetrics } from './chat-metrics.js';

describe('ChatMetrics', () => {
  it('answers 300 concurrent scrapes with one database read of the outbox backlog', async () => {
    const metrics = new ChatMetrics({ driver: {} } as unknown as DataSource);
    let reads = 0;
    metrics.watchEventsWith({
      leading: () => true,
      backlog: async () => {
        reads += 1;
        await new Promise((resolve) => setTimeout(resolve, 20));
        return 42;
      },
    });
    const pages = await Promise.all(Array.from({ length: 300 }, () => metrics.registry.metrics()));
    assert.equal(reads, 1);
    for (const page of pages) assert.match(page, /^chat_events_outbox_backlog 42$/m);
    await metrics.registry.metrics();
    assert.equal(reads, 1, 'a scrape right after reads no more');
  });

  it('splits the database pool into idle and in-use connections that add up to the open ones, and waiting requests apart', async () => {
    const pool = { totalCount: 7, idleCount: 3, waitingCount: 2, options: { max: 10 } };
    const page = await new ChatMetrics({ driver: { master: pool } } as unknown as DataSource).registry.metrics();
    const value = (series: string) => {
      const line = page.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    assert.equal(value('chat_db_pool_open_connections{state="idle"}'), 3);
    assert.equal(value('chat_db_pool_open_connections{state="in_use"}'), 4);
    assert.equal(page.match(/^chat_db_pool_open_connections\{/gm)?.length, 2, 'no other state');
    assert.equal(value('chat_db_pool_waiting_requests'), 2);
    assert.equal(value('chat_db_pool_max_connections'), 10);
    // The deprecated gauge, kept one release for dashboards written against it.
    assert.equal(value('chat_db_pool_connections{state="total"}'), 7);
    assert.equal(value('chat_db_pool_connections{state="waiting"}'), 2);
  });
});
