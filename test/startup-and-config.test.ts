import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { entities } from '../src/persistence/entities/index.js';
import { migrations } from '../src/persistence/migrations/index.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { clusterEnv, redisPrefix, startInstance } from './support/instance.js';

describe('start-up', () => {
  let db: TestDatabase;

  before(async () => {
    db = await createTestDatabase();
  });
  after(() => db.drop());

  it('three replicas starting together on an empty database migrate it once and all become ready', async () => {
    const env = clusterEnv(db.url, redisPrefix());
    const instances = await Promise.all(['A', 'B', 'C'].map((n) => startInstance(n, env)));
    try {
      const rows = await db.query<{ name: string }>('SELECT name FROM migrations ORDER BY id');
      assert.deepEqual(
        rows.map((r) => r.name),
        migrations.map((m) => m.name),
        'each migration applied exactly once',
      );
    } finally {
      await Promise.all(instances.map((i) => i.stop()));
    }
  });

  it('the migrated schema is exactly what the entities describe', async () => {
    const ds = new DataSource({ type: 'postgres', url: db.url, entities });
    await ds.initialize();
    try {
      const pending = await ds.driver.createSchemaBuilder().log();
      assert.deepEqual(
        pending.upQueries.map((q) => q.query),
        [],
      );
    } finally {
      await ds.destroy();
    }
  });

  const refusal = async (env: Record<string, string | undefined>, variable: string) => {
    const inst = await startInstance('misconfigured', { DATABASE_URL: db.url, ...env }, { waitReady: false });
    const timer = setTimeout(() => inst.proc.kill('SIGKILL'), 20_000);
    const exit = await inst.exited;
    clearTimeout(timer);
    assert.notEqual(exit.code, 0, 'must not start');
    assert.ok(inst.output().includes(variable), `output names ${variable}: ${inst.output()}`);
  };

  it('refuses to start in production without JWT_SECRET', () => refusal({ NODE_ENV: 'production', JWT_SECRET: undefined }, 'JWT_SECRET'));
  it('refuses a bad PORT, naming it', () => refusal({ PORT: 'not-a-port' }, 'PORT'));
  it('refuses a malformed REDIS_URL, naming it', () => refusal({ REDIS_URL: 'http://127.0.0.1:6379' }, 'REDIS_URL'));
});
