import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect } from './support/clients.js';
import { startInstance, type Instance } from './support/instance.js';
import { apiCall } from './support/http-api.js';
import { tokenFor } from './support/tokens.js';

describe('embedded mode: no DATABASE_URL, no REDIS_URL', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-embedded-'));
  let inst: Instance | undefined;
  const env = {
    DATABASE_URL: undefined,
    REDIS_URL: undefined,
    JWT_SECRET: undefined,
    NODE_ENV: 'development',
    LOG_LEVEL: 'info',
    DATA_DIR: dataDir,
  };

  after(async () => {
    await inst?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves a send/receive round trip across both transports and says which mode it runs in', async () => {
    inst = await startInstance('embedded', env);
    const token = await tokenFor('dev-user', { secret: 'dev-only-insecure-jwt-secret-change-me' });
    const [ioClient, wsClient] = [await connect('io', inst.url, token), await connect('ws', inst.url, token)];
    await wsClient.ok('room.join', { roomId: 'lobby' });
    const sent = await ioClient.ok('message.send', { roomId: 'lobby', body: 'hello embedded' });
    assert.deepEqual(await wsClient.waitFor('message.new', (m) => m.id === sent.id), sent);
    ioClient.close();
    wsClient.close();
    const log = inst.output();
    assert.match(log, /embedded Postgres/);
    assert.match(log, /in-process fan-out/);
    assert.match(log, /JWT_SECRET is not set/);
  });

  it('keeps messages in DATA_DIR across a restart', async () => {
    await inst?.stop();
    inst = await startInstance('embedded-again', env);
    const token = await tokenFor('dev-user', { secret: 'dev-only-insecure-jwt-secret-change-me' });
    const c = await connect('ws', inst.url, token);
    const page = await c.ok('message.history', { roomId: 'lobby' });
    assert.deepEqual(
      page.messages.map((m: { body: string }) => m.body),
      ['hello embedded'],
    );
    const next = await c.ok('message.send', { roomId: 'lobby', body: 'second' });
    assert.equal(next.seq, 2);
    c.close();
  });
});

describe("npm start's launcher (scripts/start-dev.mjs): .env and the name sign-in", () => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-dev-launcher-'));
  const API_KEY = 'launcher-env-key-0123456789';
  let inst: Instance | undefined;
  /** Nothing of the test environment that .env should provide; the instance runs in `dir` (its ./data, its ./.env). */
  const env = { DATABASE_URL: undefined, REDIS_URL: undefined, JWT_SECRET: undefined, API_KEYS: undefined, NODE_ENV: 'development' };
  const launch = (name: string) => startInstance(name, env, { entry: 'scripts/start-dev.mjs', cwd: dir });
  const devToken = async () =>
    (await fetch(`${inst!.url}/dev/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"devon"}' }))
      .status;

  after(async () => {
    await inst?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads ./.env (set variables win) and turns the name sign-in on without a real key', async () => {
    writeFileSync(join(dir, '.env'), `API_KEYS=${API_KEY}\nPORT=1\n`);
    inst = await launch('launcher');
    assert.equal(await devToken(), 200, 'name sign-in on by default');
    assert.equal((await apiCall(inst, 'GET', '/v1/rooms/none', { key: API_KEY })).status, 404, 'the API key from .env is accepted');
    assert.equal((await apiCall(inst, 'GET', '/v1/rooms/none', { key: 'some-other-key-0123456789' })).status, 401);
  });

  it('leaves the name sign-in off when .env has a real JWT_SECRET, and uses that secret', async () => {
    await inst?.stop();
    const secret = 'launcher-real-secret-0123456789';
    writeFileSync(join(dir, '.env'), `JWT_SECRET=${secret}\n`);
    inst = await launch('launcher-secret');
    assert.equal(await devToken(), 404, 'no name sign-in beside a real key');
    const c = await connect('ws', inst.url, await tokenFor('devon', { secret }));
    assert.equal((await c.ok('room.join', { roomId: 'lobby' })).roomId, 'lobby');
    c.close();
  });
});
