import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { handshakeRefusal, IoTestClient, sleep, WsTestClient, type Kind, type TestClient } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { tokenFor } from './support/tokens.js';

/** Short, so that a killed instance's connections stop counting soon (the configuration's minimum is 1000). */
const LEASE_MS = 1500;
const MAX = 2;

/** What a third handshake gets when the user's two connections are on other instances. */
const REFUSED: Record<Kind, string> = { io: 'LIMIT_EXCEEDED', 'io-polling': 'LIMIT_EXCEEDED', ws: 'HTTP 429' };

/** One handshake: the client once its session arrived, or null when it was refused. */
async function tryConnect(kind: Kind, url: string, token: string): Promise<TestClient | null> {
  const client = kind === 'ws' ? new WsTestClient(url, token) : new IoTestClient(url, token, kind === 'io-polling');
  if (client instanceof WsTestClient) client.ws.on('error', () => undefined);
  const admitted = await Promise.race([
    client
      .waitFor('session', () => true, 10_000)
      .then(
        () => true,
        () => false,
      ),
    client.whenClosed().then(() => false),
  ]);
  if (admitted) return client;
  client.close();
  return null;
}

/** Tries to connect until one is admitted; resolves the client and how long that took. */
async function admittedWithin(kind: Kind, url: string, token: string, ms: number): Promise<{ client: TestClient; afterMs: number }> {
  const started = Date.now();
  for (;;) {
    const client = await tryConnect(kind, url, token);
    if (client) return { client, afterMs: Date.now() - started };
    if (Date.now() - started > ms) throw new Error(`${kind} not admitted within ${ms} ms`);
    await sleep(100);
  }
}

describe(`MAX_CONNECTIONS_PER_USER=${MAX} over two instances on one Redis`, () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster(2, { MAX_CONNECTIONS_PER_USER: String(MAX), PRESENCE_LEASE_MS: String(LEASE_MS) });
  });
  after(() => cluster?.stop());

  const open = async (kind: Kind, at: number, token: string) =>
    cluster.track((await admittedWithin(kind, cluster.instances[at].url, token, 0)).client);

  for (const [first, second] of [
    ['ws', 'io'],
    ['io', 'ws'],
  ] as [Kind, Kind][]) {
    it(`counts a ${first} connection on A and a ${second} one on B: a third is refused on either, and a close frees a slot`, async () => {
      const token = await tokenFor(`spread-${first}`);
      const [A, B] = cluster.instances;
      const onA = await open(first, 0, token);
      await open(second, 1, token);
      for (const inst of [A, B])
        for (const kind of ['ws', 'io', 'io-polling'] as Kind[])
          assert.equal(await handshakeRefusal(kind, inst.url, token), REFUSED[kind], `${kind} on ${inst.name}`);

      onA.close();
      const { client } = await admittedWithin(second, B.url, token, 5000);
      cluster.track(client);
      assert.equal(await handshakeRefusal(first, A.url, token), REFUSED[first], 'the freed slot is taken again');
    });
  }

  it('stops counting a SIGKILLed instance’s connections within about the presence lease', async (t) => {
    const token = await tokenFor('survivor');
    const [A, B] = cluster.instances;
    await open('io', 0, token);
    await open('ws', 1, token);
    assert.equal(await handshakeRefusal('ws', A.url, token), 'HTTP 429', 'both connections count before the kill');
    B.proc.kill('SIGKILL');
    await B.exited;
    const { client, afterMs } = await admittedWithin('ws', A.url, token, LEASE_MS + 2000);
    cluster.track(client);
    t.diagnostic(`admitted on A ${afterMs} ms after B was killed (lease ${LEASE_MS} ms)`);
    assert.equal(await handshakeRefusal('io', A.url, token), 'LIMIT_EXCEEDED', 'the cap holds again with two on A');
  });
});
