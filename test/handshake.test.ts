import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { connect, handshakeRefusal, KINDS } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { algNoneToken, tokenFor } from './support/tokens.js';

describe('handshake', () => {
  let cluster: Cluster;
  let url: string;

  before(async () => {
    // trace: the most verbose log, so the token-leak check below reads everything the service writes
    cluster = await startCluster(1, { LOG_LEVEL: 'trace' });
    url = cluster.instances[0].url;
  });
  after(() => cluster.stop());

  it('pushes session { userId, connectionId } on every transport, with distinct connection ids', async () => {
    const ids = new Set<string>();
    for (const kind of KINDS) {
      const c = cluster.track(await connect(kind, url, await tokenFor('alice')));
      assert.equal(c.session?.userId, 'alice');
      ids.add(c.session!.connectionId);
    }
    const viaQuery = cluster.track(await connect('ws', url, await tokenFor('alice'), { queryToken: true }));
    ids.add(viaQuery.session!.connectionId);
    assert.equal(ids.size, 4);
  });

  it('refuses missing, forged, expired, unsigned and malformed tokens on every transport', async () => {
    const bad: [string, string | undefined][] = [
      ['missing', undefined],
      ['wrong secret', await tokenFor('mallory', { secret: 'another-secret-0123456789abcdef' })],
      ['expired', await tokenFor('mallory', { expiresInSec: -60 })],
      ['alg none', algNoneToken('mallory')],
      ['garbage', 'not-a-jwt'],
    ];
    for (const [label, token] of bad) {
      for (const kind of KINDS) {
        const expected = kind === 'ws' ? 'HTTP 401' : 'UNAUTHORIZED';
        assert.equal(await handshakeRefusal(kind, url, token), expected, `${label} over ${kind}`);
      }
      if (token) assert.equal(await handshakeRefusal('ws', url, token, { queryToken: true }), 'HTTP 401', `${label} in query`);
    }
  });

  it('answers a WebSocket upgrade on an unknown path with 404', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${url.replace('http', 'ws')}/elsewhere`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('opened')));
      ws.on('error', () => undefined);
    });
    assert.equal(status, 404);
  });

  it('never writes a query-string token to the log', async () => {
    const token = await tokenFor('quiet');
    const c = await connect('ws', url, token, { queryToken: true });
    c.close();
    await handshakeRefusal('ws', url, `${token}x`, { queryToken: true });
    assert.equal(cluster.instances[0].output().includes(token.split('.')[2]), false);
  });
});
