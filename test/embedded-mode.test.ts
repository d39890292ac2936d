import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect } from './support/clients.js';
import { startInstance, type Instance } from './support/instance.js';
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
