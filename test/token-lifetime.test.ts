import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { exportJWK, SignJWT } from 'jose';
import { io, type Socket } from 'socket.io-client';
import {
  connect,
  handshakeRefusal,
  KINDS,
  sleep,
  type IoTestClient,
  type Kind,
  type TestClient,
  type WsTestClient,
} from './support/clients.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { clusterEnv, redisPrefix, startInstance, type Instance } from './support/instance.js';
import { algNoneToken, TEST_JWT_SECRET } from './support/tokens.js';

/** The contract's bound: disconnected within 1 s after `exp`. */
const EXPIRY_BOUND_MS = 1000;
/** Slack for timer and event-loop jitter between the server's clock check and this process seeing the frame. */
const JITTER_MS = 150;

const hsKey = (secret: string) => new TextEncoder().encode(secret);
const nowSec = () => Math.floor(Date.now() / 1000);

interface TokenSpec {
  sub?: string;
  /** Seconds from now (whole seconds, as `exp` is); default one hour. */
  expiresInSec?: number;
  alg?: 'HS256' | 'RS256' | 'ES256';
  key?: KeyObject | Uint8Array;
  kid?: string;
  iss?: string;
  aud?: string | string[];
}

/** Signs a token and says when it expires (epoch seconds). */
async function sign(spec: TokenSpec = {}): Promise<{ token: string; exp: number }> {
  const { sub = 'alice', expiresInSec = 3600, alg = 'HS256', key = hsKey(TEST_JWT_SECRET), kid, iss, aud } = spec;
  const now = nowSec();
  const exp = now + expiresInSec;
  let jwt = new SignJWT({})
    .setProtectedHeader({ alg, typ: 'JWT', ...(kid ? { kid } : {}) })
    .setIssuedAt(now)
    .setExpirationTime(exp);
  if (sub) jwt = jwt.setSubject(sub);
  if (iss) jwt = jwt.setIssuer(iss);
  if (aud) jwt = jwt.setAudience(aud);
  return { token: await jwt.sign(key), exp };
}

const tokenOnly = async (spec: TokenSpec) => (await sign(spec)).token;

interface Ending {
  /** When the `error { token expired }` push arrived, if it did. */
  errorAt: number | null;
  error: any;
  closedAt: number;
  /** socket.io: the disconnect reason; ws: `<code> <reason>`. */
  how: string;
}

/** Watches a connection from now on: resolves when it closes, with when the expiry push and the close came. */
function watchEnding(client: TestClient): Promise<Ending> {
  let errorAt: number | null = null;
  const isExpiry = (e: any) => e?.message === 'token expired';
  client.waitFor('error', isExpiry, 5000).then(
    () => (errorAt = Date.now()),
    () => undefined,
  );
  const closed =
    client.kind === 'ws'
      ? (client as WsTestClient).closed.then(({ code, reason }) => `${code} ${reason}`)
      : new Promise<string>((resolve) => (client as IoTestClient).socket.once('disconnect', (reason) => resolve(reason)));
  // Frames are handled in arrival order, so a push that came before the close has set errorAt by now.
  return closed.then((how) => ({ errorAt, error: client.pushesOf('error').find(isExpiry) ?? null, closedAt: Date.now(), how }));
}

/** Bounded: rejects when `promise` has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function assertExpiredInTime(kind: Kind, ending: Ending, exp: number): void {
  const expMs = exp * 1000;
  assert.deepEqual(ending.error, { code: 'UNAUTHORIZED', message: 'token expired' }, `${kind}: the expiry push`);
  assert.ok(ending.errorAt !== null, `${kind}: error push before the disconnect`);
  assert.ok(ending.errorAt >= expMs - JITTER_MS, `${kind}: pushed ${expMs - ending.errorAt} ms before exp`);
  assert.ok(ending.closedAt <= expMs + EXPIRY_BOUND_MS + JITTER_MS, `${kind}: disconnected ${ending.closedAt - expMs} ms after exp`);
  assert.equal(ending.how, kind === 'ws' ? '4001 token expired' : 'io server disconnect', `${kind}: how it was closed`);
}

/** A socket.io client that would reconnect by itself, to show it does not after an expiry. */
function reconnectingSocket(url: string, token: string, polling: boolean): Socket {
  return io(url, {
    transports: polling ? ['polling'] : ['websocket'],
    upgrade: false,
    forceNew: true,
    reconnectionDelay: 50,
    reconnectionDelayMax: 100,
    auth: { token },
  });
}

/** A JWKS endpoint on 127.0.0.1, as an identity provider publishes one. */
async function startJwksServer(keys: object[]): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.url !== '/.well-known/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/.well-known/jwks.json`, server };
}

const refusedAs = (kind: Kind) => (kind === 'ws' ? 'HTTP 401' : 'UNAUTHORIZED');

async function assertAccepted(url: string, token: string, sub: string, label: string): Promise<void> {
  for (const kind of KINDS) {
    const c = await connect(kind, url, token);
    try {
      assert.equal(c.session?.userId, sub, `${label} over ${kind}`);
    } finally {
      c.close();
    }
  }
}

async function assertRefused(url: string, token: string, label: string): Promise<void> {
  for (const kind of KINDS) assert.equal(await handshakeRefusal(kind, url, token), refusedAs(kind), `${label} over ${kind}`);
}

describe('token lifetime', () => {
  let cluster: Cluster;
  let url: string;
  const extra: Instance[] = [];
  let jwks: Server | null = null;

  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const otherEc = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const ecPem = ec.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const ISSUER = 'https://issuer.example.test';
  const AUDIENCE = 'chat-service';
  let rsaUrl: string;
  let ecUrl: string;
  let jwksUrl: string;
  let claimsUrl: string;

  before(async () => {
    const served = await startJwksServer([
      { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
    ]);
    jwks = served.server;
    cluster = await startCluster(1);
    url = cluster.instances[0].url;
    const env = () => clusterEnv(cluster.db.url, redisPrefix());
    const started = await Promise.all([
      startInstance('rsa', { ...env(), JWT_SECRET: undefined, JWT_PUBLIC_KEY: rsaPem }),
      startInstance('ec', { ...env(), JWT_SECRET: undefined, JWT_PUBLIC_KEY: ecPem }),
      startInstance('jwks', { ...env(), JWT_SECRET: undefined, JWKS_URL: served.url }),
      startInstance('claims', { ...env(), JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE }),
    ]).catch(async (err) => {
      await cluster.stop();
      throw err;
    });
    extra.push(...started);
    [rsaUrl, ecUrl, jwksUrl, claimsUrl] = started.map((i) => i.url);
  });

  after(async () => {
    await Promise.all(extra.map((i) => i.stop()));
    await cluster?.stop();
    jwks?.closeAllConnections();
    jwks?.close();
  });

  describe('expiry and auth.refresh', { concurrency: true }, () => {
    for (const kind of KINDS) {
      it(`${kind}: pushes error { UNAUTHORIZED, token expired } and disconnects within 1 s after exp`, async () => {
        const { token, exp } = await sign({ sub: `expiring-${kind}`, expiresInSec: 2 });
        const c = cluster.track(await connect(kind, url, token));
        const ending = watchEnding(c);
        // A second socket.io client that would reconnect by itself if allowed to: it must not after an expiry.
        const reconnecting = kind === 'ws' ? null : reconnectingSocket(url, token, kind === 'io-polling');
        try {
          let connects = 0;
          const connected = new Promise<void>((resolve) =>
            reconnecting?.on('connect', () => {
              connects++;
              resolve();
            }),
          );
          const reconnectingEnded = new Promise<string>((resolve) => reconnecting?.once('disconnect', resolve));
          if (reconnecting) await within(connected, 5000, `${kind}: second socket connect`);
          assert.ok((await c.request('message.history', { roomId: `lobby-${kind}` })).ok, 'usable before exp');
          assertExpiredInTime(kind, await within(ending, 5000, `${kind} expiry`), exp);
          assert.equal(c.isOpen, false);
          if (reconnecting) {
            assert.equal(await within(reconnectingEnded, 2000, `${kind}: second socket disconnect`), 'io server disconnect');
            assert.equal(reconnecting.active, false, 'socket.io-client gives up after a server-side disconnect');
            await sleep(500); // a reconnection attempt would have happened by now (delay 50-100 ms)
            assert.deepEqual([reconnecting.connected, connects], [false, 1], 'no reconnect with the stale token');
          }
        } finally {
          reconnecting?.close();
        }
      });

      it(`${kind}: auth.refresh with a later token for the same sub keeps the connection past the old exp`, async () => {
        const sub = `refresher-${kind}`;
        const first = await sign({ sub, expiresInSec: 2 });
        const c = cluster.track(await connect(kind, url, first.token));
        const next = await sign({ sub, expiresInSec: 8 });
        const reply = await c.request('auth.refresh', { token: next.token });
        assert.equal(reply.ok, true, JSON.stringify(reply));
        assert.deepEqual(reply.data, { userId: sub, expiresAt: new Date(next.exp * 1000).toISOString() });
        // Past the old exp plus the whole 1 s bound: an expiry based on the old token would have struck.
        await sleep(first.exp * 1000 + EXPIRY_BOUND_MS + 300 - Date.now());
        assert.equal(c.isOpen, true, `${kind}: still connected after the old exp`);
        assert.equal(c.pushesOf('error').length, 0, JSON.stringify(c.pushesOf('error')));
        const sent = await c.request('message.send', { roomId: `refreshed-${kind}`, body: 'still here' });
        assert.equal(sent.ok, true, JSON.stringify(sent));
        assert.equal(sent.data.senderId, sub);
      });

      it(`${kind}: failed refreshes answer VALIDATION_FAILED / UNAUTHORIZED, keep the connection and its old expiry`, async () => {
        const sub = `failed-refresh-${kind}`;
        const first = await sign({ sub, expiresInSec: 3 });
        const c = cluster.track(await connect(kind, url, first.token));
        const ending = watchEnding(c);
        const [otherSub, badlySigned, expired, unsigned] = await Promise.all([
          tokenOnly({ sub: `someone-else-${kind}`, expiresInSec: 60 }),
          tokenOnly({ sub, expiresInSec: 60, key: hsKey('another-secret-0123456789abcdef') }),
          tokenOnly({ sub, expiresInSec: -60 }),
          Promise.resolve(algNoneToken(sub)),
        ]);
        const cases: [string, unknown, string][] = [
          ['token 5', { token: 5 }, 'VALIDATION_FAILED'],
          ['token missing', {}, 'VALIDATION_FAILED'],
          ['token null', { token: null }, 'VALIDATION_FAILED'],
          ['garbage', { token: 'not-a-jwt' }, 'UNAUTHORIZED'],
          ['badly signed', { token: badlySigned }, 'UNAUTHORIZED'],
          ['already expired', { token: expired }, 'UNAUTHORIZED'],
          ['alg none', { token: unsigned }, 'UNAUTHORIZED'],
          ['another sub', { token: otherSub }, 'UNAUTHORIZED'],
        ];
        for (const [label, data, code] of cases) {
          const r = await c.request('auth.refresh', data);
          assert.equal(r.ok, false, `${kind} ${label}: ${JSON.stringify(r)}`);
          assert.equal(r.error?.code, code, `${kind} ${label}: ${JSON.stringify(r)}`);
          if (code === 'VALIDATION_FAILED')
            assert.ok(r.error?.details?.fields?.includes('token'), `${kind} ${label}: ${JSON.stringify(r)}`);
          assert.equal(c.isOpen, true, `${kind} ${label}: connection kept`);
        }
        const still = await c.request('message.history', { roomId: `failed-refresh-${kind}` });
        assert.equal(still.ok, true, `${kind}: usable after failed refreshes`);
        assert.ok(Date.now() < first.exp * 1000, 'the failed refreshes ran before the old exp');
        // The old token still rules: disconnected at its exp, within the bound.
        assertExpiredInTime(kind, await within(ending, 5000, `${kind} expiry after failed refreshes`), first.exp);
      });
    }
  });

  describe('key sources and claims', () => {
    it('JWT_PUBLIC_KEY (RSA): accepts RS256 from the private key; refuses key confusion, other keys and other algorithms', async () => {
      const sub = 'rsa-user';
      await assertAccepted(rsaUrl, await tokenOnly({ sub, alg: 'RS256', key: rsa.privateKey }), sub, 'RS256');
      const refused: [string, string][] = [
        ['HS256 signed with the PEM text (key confusion)', await tokenOnly({ sub, alg: 'HS256', key: hsKey(rsaPem) })],
        ['RS256 from another RSA key', await tokenOnly({ sub, alg: 'RS256', key: otherRsa.privateKey })],
        ['HS256 with the default test secret', await tokenOnly({ sub })],
        ['ES256 from an EC key', await tokenOnly({ sub, alg: 'ES256', key: ec.privateKey })],
        ['expired RS256', await tokenOnly({ sub, alg: 'RS256', key: rsa.privateKey, expiresInSec: -60 })],
        ['alg none', algNoneToken(sub)],
      ];
      for (const [label, token] of refused) await assertRefused(rsaUrl, token, label);
    });

    it('JWT_PUBLIC_KEY (RSA): auth.refresh takes RS256 tokens and refuses the key-confused one', async () => {
      const sub = 'rsa-refresher';
      const c = await connect('ws', rsaUrl, await tokenOnly({ sub, alg: 'RS256', key: rsa.privateKey, expiresInSec: 60 }));
      try {
        const confused = await c.request('auth.refresh', { token: await tokenOnly({ sub, alg: 'HS256', key: hsKey(rsaPem) }) });
        assert.equal(confused.error?.code, 'UNAUTHORIZED', JSON.stringify(confused));
        const good = await sign({ sub, alg: 'RS256', key: rsa.privateKey, expiresInSec: 120 });
        const r = await c.request('auth.refresh', { token: good.token });
        assert.deepEqual(r.data, { userId: sub, expiresAt: new Date(good.exp * 1000).toISOString() });
      } finally {
        c.close();
      }
    });

    it('JWT_PUBLIC_KEY (P-256): accepts ES256 from the private key; refuses key confusion, other keys and other algorithms', async () => {
      const sub = 'ec-user';
      await assertAccepted(ecUrl, await tokenOnly({ sub, alg: 'ES256', key: ec.privateKey }), sub, 'ES256');
      const refused: [string, string][] = [
        ['HS256 signed with the PEM text (key confusion)', await tokenOnly({ sub, alg: 'HS256', key: hsKey(ecPem) })],
        ['ES256 from another P-256 key', await tokenOnly({ sub, alg: 'ES256', key: otherEc.privateKey })],
        ['HS256 with the default test secret', await tokenOnly({ sub })],
        ['RS256 from an RSA key', await tokenOnly({ sub, alg: 'RS256', key: rsa.privateKey })],
      ];
      for (const [label, token] of refused) await assertRefused(ecUrl, token, label);
    });

    it('JWKS_URL: accepts tokens whose kid is in the key set, refuses unknown keys', async () => {
      await assertAccepted(
        jwksUrl,
        await tokenOnly({ sub: 'jwks-rsa', alg: 'RS256', key: rsa.privateKey, kid: 'rsa-1' }),
        'jwks-rsa',
        'rsa-1',
      );
      await assertAccepted(jwksUrl, await tokenOnly({ sub: 'jwks-ec', alg: 'ES256', key: ec.privateKey, kid: 'ec-1' }), 'jwks-ec', 'ec-1');
      const sub = 'jwks-mallory';
      const refused: [string, string][] = [
        ['unknown kid, unknown key', await tokenOnly({ sub, alg: 'RS256', key: otherRsa.privateKey, kid: 'not-in-the-set' })],
        ['known kid, another key', await tokenOnly({ sub, alg: 'RS256', key: otherRsa.privateKey, kid: 'rsa-1' })],
        ['known EC kid, another key', await tokenOnly({ sub, alg: 'ES256', key: otherEc.privateKey, kid: 'ec-1' })],
        ['HS256 with the default test secret', await tokenOnly({ sub, kid: 'rsa-1' })],
      ];
      for (const [label, token] of refused) await assertRefused(jwksUrl, token, label);
    });

    it('JWT_ISSUER / JWT_AUDIENCE: refuses wrong or missing iss and aud, accepts the right ones', async () => {
      const sub = 'claims-user';
      await assertAccepted(claimsUrl, await tokenOnly({ sub, iss: ISSUER, aud: AUDIENCE }), sub, 'right iss and aud');
      await assertAccepted(claimsUrl, await tokenOnly({ sub, iss: ISSUER, aud: ['other-service', AUDIENCE] }), sub, 'aud list with ours');
      const refused: [string, string][] = [
        ['wrong iss', await tokenOnly({ sub, iss: 'https://elsewhere.example.test', aud: AUDIENCE })],
        ['missing iss', await tokenOnly({ sub, aud: AUDIENCE })],
        ['wrong aud', await tokenOnly({ sub, iss: ISSUER, aud: 'other-service' })],
        ['missing aud', await tokenOnly({ sub, iss: ISSUER })],
        ['neither', await tokenOnly({ sub })],
      ];
      for (const [label, token] of refused) await assertRefused(claimsUrl, token, label);
    });
  });
});
