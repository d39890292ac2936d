/**
 * Issue 13 item 8: handshakes before authentication are bounded. Spoken as raw engine.io v4
 * polling (test/support/engine-polling.ts) and raw WebSocket upgrades, the way a hostile client
 * would, counting answers, sessions and the instance's log lines.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { connect, sleep } from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { PollingSession, type PollAnswer } from './support/engine-polling.js';
import type { Instance } from './support/instance.js';
import { tokenFor } from './support/tokens.js';

const CONNECT_TIMEOUT_MS = 1000;

const refusalLines = (inst: Instance) => inst.output().split('handshake refused').length - 1;
const openedLines = (inst: Instance) => inst.output().split('connection opened').length - 1;

/** Polls until the session answers with its close packet or is gone (400); the packets seen on the way. */
async function pollUntilClosed(session: PollingSession, deadlineMs = 10_000): Promise<{ packets: string[]; gone: number }> {
  const packets: string[] = [];
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    let answer: PollAnswer;
    try {
      answer = await session.poll(AbortSignal.timeout(deadlineMs));
    } catch {
      continue;
    }
    if (answer.status !== 200) return { packets, gone: answer.status };
    packets.push(...answer.packets);
    if (answer.packets.includes('1')) return { packets, gone: 0 };
  }
  throw new Error(`session still open after ${deadlineMs} ms: ${packets.join(' | ')}`);
}

/** Posts, tolerating the server ending the POST's connection when the packets close the session. */
async function postIgnoringHangup(session: PollingSession, packets: string[]): Promise<void> {
  await session.post(packets).catch(() => undefined);
}

function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<'open' | number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    ws.on('error', () => undefined);
    ws.on('open', () => {
      resolve('open');
      ws.terminate();
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
  });
}

describe('socket.io CONNECTs per engine.io session', () => {
  let cluster: Cluster;
  let A: Instance;
  before(async () => {
    cluster = await startCluster(1, { HANDSHAKE_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS) });
    A = cluster.instances[0];
  });
  after(() => cluster.stop());

  it('a refused CONNECT gets its CONNECT_ERROR, then the session is closed: the next CONNECT finds no session', async () => {
    const session = await PollingSession.open(A.url);
    const logged = refusalLines(A);
    await session.post(['40{"token":"not-a-token"}']);
    const { packets } = await pollUntilClosed(session);
    assert.equal(packets.filter((p) => p.startsWith('44')).length, 1, `one CONNECT_ERROR: ${packets.join(' | ')}`);
    assert.match(packets.find((p) => p.startsWith('44')) ?? '', /UNAUTHORIZED/);
    const again = await session.post([`40${JSON.stringify({ token: await tokenFor('late') })}`]);
    assert.equal(again.status, 400, 'the session is gone');
    assert.equal(refusalLines(A) - logged, 1, 'one log line');
  });

  it('1000 refused CONNECTs in one POST: one token check, one log line, no answers, the session closed', async () => {
    const session = await PollingSession.open(A.url);
    const logged = refusalLines(A);
    await postIgnoringHangup(session, Array(1000).fill('40{"token":"not-a-token"}'));
    const { packets } = await pollUntilClosed(session);
    assert.deepEqual(
      packets.filter((p) => p.startsWith('4')),
      [],
      'no CONNECT_ERROR or CONNECT answers',
    );
    await sleep(300);
    assert.ok(refusalLines(A) - logged <= 1, `at most one log line, got ${refusalLines(A) - logged}`);
  });

  it('30 CONNECTs with a valid token in one POST open no connection and close the session', async () => {
    const session = await PollingSession.open(A.url);
    const opened = openedLines(A);
    const token = await tokenFor('thirty');
    await postIgnoringHangup(session, Array(30).fill(`40${JSON.stringify({ token })}`));
    const { packets } = await pollUntilClosed(session);
    assert.deepEqual(
      packets.filter((p) => p.startsWith('40')),
      [],
      'no CONNECT acknowledged',
    );
    await sleep(300);
    assert.equal(openedLines(A) - opened, 0, 'no connection opened');
  });

  it(`a session that never sends CONNECT is closed after HANDSHAKE_CONNECT_TIMEOUT_MS (${CONNECT_TIMEOUT_MS} ms)`, async () => {
    const session = await PollingSession.open(A.url);
    const started = Date.now();
    await pollUntilClosed(session);
    const took = Date.now() - started;
    assert.ok(took >= CONNECT_TIMEOUT_MS - 100 && took < CONNECT_TIMEOUT_MS + 2000, `closed after ${took} ms`);
  });

  it('a normal socket.io client over polling and websocket still connects and is served', async () => {
    for (const kind of ['io-polling', 'io'] as const) {
      const c = cluster.track(await connect(kind, A.url, await tokenFor(`normal-${kind}`)));
      assert.ok((await c.request('message.history', { roomId: 'normal' })).ok, kind);
    }
  });
});

describe('engine.io sessions that have not authenticated, and handshakes per address', () => {
  const CAP = 20;
  const BURST = 40;
  const HELD_MS = 3000;
  let cluster: Cluster;
  let A: Instance;
  before(async () => {
    cluster = await startCluster(1, {
      HANDSHAKE_CONNECT_TIMEOUT_MS: String(HELD_MS),
      MAX_UNAUTHENTICATED_SESSIONS: String(CAP),
      HANDSHAKE_BURST: String(BURST),
      HANDSHAKE_RATE_PER_SECOND: '1',
    });
    A = cluster.instances[0];
  });
  after(() => cluster.stop());

  it(`past ${CAP} unauthenticated sessions new ones get 503 UNAVAILABLE, on polling and websocket, until they time out`, async () => {
    const held = await Promise.all(Array.from({ length: CAP }, () => PollingSession.open(A.url)));
    assert.equal(held.length, CAP);
    const logged = refusalLines(A);
    const refused = await PollingSession.openRaw(A.url);
    assert.equal(refused.status, 503);
    assert.match(refused.packets.join(''), /"code":"UNAVAILABLE"/);
    assert.equal(await upgradeStatus(`${A.url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`), 503);
    for (let i = 0; i < 5; i++) assert.equal((await PollingSession.openRaw(A.url)).status, 503);
    assert.equal(refusalLines(A) - logged, 1, 'one warning for the cap per interval');
    // Raw ws clients are not engine.io sessions; the cap does not refuse them.
    assert.equal(
      await upgradeStatus(`${A.url.replace(/^http/, 'ws')}/ws`, { Authorization: `Bearer ${await tokenFor('raw-ws')}` }),
      'open',
    );
    await sleep(HELD_MS + 500);
    assert.equal((await PollingSession.openRaw(A.url)).status, 200, 'admitted again once the held sessions timed out');
  });

  it(`past a burst of ${BURST} handshakes one address gets 429 RATE_LIMITED on every transport, with one log line`, async () => {
    const logged = refusalLines(A);
    const statuses: number[] = [];
    for (let i = 0; i < BURST + 10; i++) statuses.push((await PollingSession.openRaw(A.url)).status);
    assert.equal(statuses.at(-1), 429);
    const limited = await PollingSession.openRaw(A.url);
    assert.match(limited.packets.join(''), /"code":"RATE_LIMITED"/);
    assert.equal(await upgradeStatus(`${A.url.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`), 429);
    assert.equal(await upgradeStatus(`${A.url.replace(/^http/, 'ws')}/ws`, { Authorization: `Bearer ${await tokenFor('limited')}` }), 429);
    assert.ok(refusalLines(A) - logged <= 2, `one warning per address per interval (plus the cap's): ${refusalLines(A) - logged}`);
  });
});

describe('handshakes per address behind a trusted load balancer (TRUSTED_PROXIES)', () => {
  const BURST = 5;
  let cluster: Cluster;
  let A: Instance;
  before(async () => {
    // The test's clients connect from 127.0.0.1, which plays the load balancer here.
    cluster = await startCluster(1, { HANDSHAKE_BURST: String(BURST), HANDSHAKE_RATE_PER_SECOND: '1', TRUSTED_PROXIES: '127.0.0.0/8' });
    A = cluster.instances[0];
  });
  after(() => cluster.stop());

  const ws = () => `${A.url.replace(/^http/, 'ws')}/ws`;

  it('gives each client the balancer names its own bucket, and still limits one client', async () => {
    const token = await tokenFor('behind-balancer');
    const many: ('open' | number)[] = [];
    for (let i = 0; i < BURST * 3; i++)
      many.push(await upgradeStatus(ws(), { Authorization: `Bearer ${token}`, 'X-Forwarded-For': `203.0.113.${i + 1}` }));
    assert.deepEqual(new Set(many), new Set(['open']), 'clients behind one balancer do not share its bucket');
    const one: ('open' | number)[] = [];
    for (let i = 0; i < BURST + 1; i++)
      one.push(await upgradeStatus(ws(), { Authorization: `Bearer ${token}`, 'X-Forwarded-For': 'spoofed, 198.51.100.7' }));
    assert.equal(one.at(-1), 429, 'one client is limited by the right-most hop, whatever it put further left');
  });
});
