// DualTransportAdapter origin checks when ALLOWED_ORIGINS is set, or in production without it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { OriginPolicy } from './origin-policy.js';
import { pollingHandshake, TestServer, wsRefusal, type WireError } from './dual-transport.test-support.js';

describe('DualTransportAdapter origin checks (ALLOWED_ORIGINS set, or production without it)', () => {
  const ALLOWED = 'https://app.example.com';

  for (const [label, origins, allowed] of [
    ['ALLOWED_ORIGINS set', new OriginPolicy([ALLOWED], true), ALLOWED],
    ['production without ALLOWED_ORIGINS', new OriginPolicy(null, false), null],
  ] as const) {
    describe(label, () => {
      let srv: TestServer;
      let ownOrigin: string;
      before(async () => {
        srv = await TestServer.start({ origins });
        ownOrigin = `http://127.0.0.1:${srv.port}`;
      });
      after(() => srv.stop());

      for (const foreign of ['https://evil.example', `${ALLOWED}.evil.example`, 'null', 'http://localhost']) {
        it(`answers a ws upgrade from Origin ${foreign} with HTTP 403 FORBIDDEN, even with a valid token`, async () => {
          const before = srv.connections.count('ws');
          const res = await wsRefusal(srv.wsUrl, { Authorization: 'Bearer good-foreign', Origin: foreign });
          assert.equal(res.status, 403);
          assert.equal((JSON.parse(res.body) as { error: WireError }).error.code, 'FORBIDDEN');
          assert.equal(srv.connections.count('ws'), before);
        });

        it(`answers a socket.io polling handshake from Origin ${foreign} with HTTP 403 and no CORS grant`, async () => {
          const res = await pollingHandshake(srv.port, { Origin: foreign });
          assert.equal(res.status, 403);
          assert.notEqual(res.headers['access-control-allow-origin'], foreign);
        });
      }

      it('answers a socket.io websocket-transport upgrade from a foreign Origin with HTTP 403', async () => {
        const res = await wsRefusal(`ws://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=websocket`, { Origin: 'https://evil.example' });
        assert.equal(res.status, 403);
      });

      it('allows requests without Origin (not a browser) on both transports', async () => {
        const ws = await srv.connectWs('no-origin-ws');
        assert.equal(ws.ws.readyState, WebSocket.OPEN);
        const sio = await srv.connectIo('no-origin-io', 'polling');
        assert.deepEqual(await sio.request('echo', 1), { ok: true, data: { echo: 1 } });
        assert.equal((await pollingHandshake(srv.port)).status, 200);
      });

      it('allows the same origin (Origin = http://<Host>) on both transports', async () => {
        const ws = await srv.connectWs('same-origin', 'header', { Origin: ownOrigin });
        assert.equal(ws.ws.readyState, WebSocket.OPEN);
        const res = await pollingHandshake(srv.port, { Origin: ownOrigin });
        assert.equal(res.status, 200);
        assert.match(res.body, /^0\{"sid"/);
      });

      if (allowed) {
        it('allows a listed origin on both transports, with CORS headers for it', async () => {
          const ws = await srv.connectWs('listed-origin', 'header', { Origin: allowed });
          assert.equal(ws.ws.readyState, WebSocket.OPEN);
          const res = await pollingHandshake(srv.port, { Origin: allowed });
          assert.equal(res.status, 200);
          assert.equal(res.headers['access-control-allow-origin'], allowed);
          assert.equal(res.headers['access-control-allow-credentials'], 'true');
        });
      }
    });
  }
});
