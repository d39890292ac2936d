import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { entities } from '../src/persistence/entities/index.js';
import { migrations } from '../src/persistence/migrations/index.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { connect } from './support/clients.js';
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
  it('refuses REDIS_URL together with REDIS_CLUSTER_NODES, naming both (issue 16)', () =>
    refusal(
      { REDIS_URL: 'redis://127.0.0.1:6379', REDIS_CLUSTER_NODES: 'redis://127.0.0.1:7000' },
      'REDIS_CLUSTER_NODES: set either REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both',
    ));

  // Issue 13: production fails closed.
  it('refuses production without DATABASE_URL (no silent embedded database), naming it and EMBEDDED_DATABASE', async () => {
    await refusal({ NODE_ENV: 'production', DATABASE_URL: undefined }, 'DATABASE_URL: required when NODE_ENV=production');
    await refusal({ NODE_ENV: 'production', DATABASE_URL: undefined }, 'EMBEDDED_DATABASE=true');
  });
  it('refuses an http: JWKS_URL in production, naming it', () =>
    refusal({ NODE_ENV: 'production', JWT_SECRET: undefined, JWKS_URL: 'http://127.0.0.1:9/jwks.json' }, 'JWKS_URL: must be https://'));
  it('refuses DEV_SIGN_IN in production and with a real JWT_SECRET, naming it', async () => {
    await refusal({ NODE_ENV: 'production', DEV_SIGN_IN: 'true' }, 'DEV_SIGN_IN: refused when NODE_ENV=production');
    await refusal({ NODE_ENV: 'development', DEV_SIGN_IN: 'true' }, 'DEV_SIGN_IN: signs with the published development secret only');
  });

  it('POST /dev/token exists only with DEV_SIGN_IN=true, signs with the development secret and says so at start', async () => {
    const devToken = (url: string) =>
      fetch(`${url}/dev/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'newcomer' }),
      });
    const dev = { DATABASE_URL: db.url, NODE_ENV: 'development', JWT_SECRET: undefined, LOG_LEVEL: 'info' };
    const closed = await startInstance('no-sign-in', dev);
    try {
      assert.equal((await devToken(closed.url)).status, 404);
      assert.doesNotMatch(closed.output(), /DEV_SIGN_IN/);
    } finally {
      await closed.stop();
    }
    const open = await startInstance('sign-in', { ...dev, DEV_SIGN_IN: 'true' });
    try {
      const res = await devToken(open.url);
      assert.equal(res.status, 200);
      const { token } = (await res.json()) as { token: string };
      const client = await connect('ws', open.url, token);
      assert.equal((await client.waitFor('session')).userId, 'newcomer');
      client.close();
      const warning = open
        .output()
        .split('\n')
        .find((l) => l.includes('DEV_SIGN_IN=true'));
      assert.ok(warning, open.output());
      assert.match(warning, /"level":40|WARN/i);
      assert.match(warning, /POST \/dev\/token .*published development secret/);
    } finally {
      await open.stop();
    }
  });
});
