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
});
