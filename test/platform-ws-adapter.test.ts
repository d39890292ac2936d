/**
 * Why the ws side of DualTransportAdapter is not Nest's own WsAdapter (docs/design.md, "Why not
 * @nestjs/platform-ws"). A small Nest app runs the stock WsAdapter of @nestjs/platform-ws with a
 * gateway on `/ws`, and socket.io on the same HTTP server (with destroyUpgrade off, so engine.io
 * leaves upgrades it does not own alone). Each test asserts the stock behaviour as it is today and
 * passes while the failure exists (nestjs/nest#5751). When one of them fails, platform-ws has
 * changed: check each reason in docs/design.md again, and if none is left, move the ws side of
 * the adapter onto WsAdapter, rewrite that section and delete the test that failed.
 */
import assert from 'node:assert/strict';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Module, type INestApplication, type LoggerService } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { WsAdapter } from '@nestjs/platform-ws';
import { MessageBody, SubscribeMessage, WebSocketGateway, WsException } from '@nestjs/websockets';
import { Server } from 'socket.io';
import { io as ioClient } from 'socket.io-client';
import WebSocket from 'ws';

const WAIT_MS = 5000;
const MAX_PAYLOAD_BYTES = 1024;

@WebSocketGateway({ path: '/ws', maxPayload: MAX_PAYLOAD_BYTES })
class EchoGateway {
  @SubscribeMessage('echo')
  echo(@MessageBody() data: unknown) {
    return { event: 'echo', data };
  }

  @SubscribeMessage('fail')
  fail(): never {
    throw new WsException('refused on purpose');
  }
}

@Module({ providers: [EchoGateway] })
class EchoModule {}

interface StockApp {
  app: INestApplication;
  io: Server;
  url: string;
  /** The upgrade listeners on the server before socket.io was attached: the stock adapter's. */
  stockListeners: ReturnType<HttpServer['listeners']>;
}

/** The stock WsAdapter for the app's gateway, socket.io attached to the same server the way #5751 does it. */
async function startStockApp(logger: LoggerService | false = false): Promise<StockApp> {
  const app = await NestFactory.create(EchoModule, { logger });
  app.useWebSocketAdapter(new WsAdapter(app));
  await app.listen(0, '127.0.0.1');
  const server = app.getHttpServer() as HttpServer;
  const stockListeners = server.listeners('upgrade');
  const io = new Server(server, { destroyUpgrade: false });
  io.on('connection', (socket) => socket.emit('hello'));
  const { port } = server.address() as AddressInfo;
  return { app, io, url: `http://127.0.0.1:${port}`, stockListeners };
}

async function stopStockApp({ app, io }: StockApp): Promise<void> {
  await io.close();
  await app.close();
}

function within<T>(promise: Promise<T>, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${label}`)), WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A raw WebSocket upgrade: 'open', `HTTP <status>` for an answered refusal, or 'hang up' when the socket is dropped unanswered. */
function upgrade(url: string, path: string): Promise<string> {
  return within(
    new Promise<string>((resolve) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${path}`);
      ws.on('open', () => {
        resolve('open');
        ws.terminate();
      });
      ws.on('unexpected-response', (_req, res) => {
        resolve(`HTTP ${res.statusCode}`);
        ws.terminate();
      });
      ws.on('error', () => resolve('hang up'));
    }),
    `the upgrade of ${path}`,
  );
}

/** How a socket.io-client limited to `transports` fares: 'connected' or its connect_error message. */
function ioOutcome(url: string, transports: ('polling' | 'websocket')[]): Promise<string> {
  const socket = ioClient(url, { transports, reconnection: false, forceNew: true });
  return within(
    new Promise<string>((resolve) => {
      socket.once('hello', () => resolve('connected'));
      socket.once('connect_error', (err) => resolve(err.message));
    }),
    `socket.io over ${transports.join('+')}`,
  ).finally(() => socket.close());
}

describe('the stock WsAdapter beside socket.io on one server', () => {
  let stock: StockApp;
  before(async () => (stock = await startStockApp()));
  after(() => stopStockApp(stock));

  it('serves its own path', async () => {
    assert.equal(await upgrade(stock.url, '/ws'), 'open');
  });

  it("destroys socket.io's websocket upgrades: socket.io-client on websocket cannot connect, on polling it can", async () => {
    assert.equal(await upgrade(stock.url, '/socket.io/?EIO=4&transport=websocket'), 'hang up');
    assert.equal(await ioOutcome(stock.url, ['websocket']), 'websocket error');
    assert.equal(await ioOutcome(stock.url, ['polling']), 'connected', 'socket.io itself works; only its upgrades are lost');
  });

  it('leaves a default socket.io-client on polling: its upgrade probe fails', async () => {
    const socket = ioClient(stock.url, { reconnection: false, forceNew: true });
    try {
      // The probe starts as soon as the engine.io session opens, and may fail before the CONNECT.
      const probeFailed = new Promise((resolve) => socket.io.on('open', () => socket.io.engine.once('upgradeError', resolve)));
      await within(Promise.all([probeFailed, new Promise((resolve) => socket.once('hello', resolve))]), 'the session and the failed probe');
      assert.equal(socket.io.engine.transport.name, 'polling');
    } finally {
      socket.close();
    }
  });

  it('drops an upgrade on any other path without an answer, where the protocol answers 404 NOT_FOUND', async () => {
    assert.equal(await upgrade(stock.url, '/elsewhere'), 'hang up');
  });
});

describe('the same app with the stock upgrade listener taken off the server (the control)', () => {
  let stock: StockApp;
  before(async () => {
    stock = await startStockApp();
    assert.equal(stock.stockListeners.length, 1, "the stock adapter's one upgrade listener");
    const server = stock.app.getHttpServer() as HttpServer;
    for (const listener of stock.stockListeners) server.off('upgrade', listener as (...args: unknown[]) => void);
  });
  after(() => stopStockApp(stock));

  it('lets socket.io-client connect on websocket, so the failure above is the stock listener', async () => {
    assert.equal(await upgrade(stock.url, '/socket.io/?EIO=4&transport=websocket'), 'open');
    assert.equal(await ioOutcome(stock.url, ['websocket']), 'connected');
  });
});

describe("the stock WsAdapter's message binding against the protocol (docs/protocol.md)", () => {
  let stock: StockApp;
  let ws: WebSocket;
  const frames: unknown[] = [];
  let arrived: (() => void) | undefined;
  before(async () => {
    stock = await startStockApp();
    ws = new WebSocket(`${stock.url.replace(/^http/, 'ws')}/ws`);
    ws.on('message', (raw: WebSocket.RawData) => {
      frames.push(JSON.parse(raw.toString()));
      arrived?.();
    });
    await within(new Promise((resolve) => ws.once('open', resolve)), 'the /ws connection');
  });
  after(async () => {
    ws.terminate();
    await stopStockApp(stock);
  });

  /** Sends `frame` and resolves once `count` frames in all have arrived. */
  function sendAndAwait(frame: string, count: number): Promise<void> {
    ws.send(frame);
    return within(
      new Promise<void>((resolve) => {
        arrived = () => frames.length >= count && resolve();
        arrived();
      }),
      `frame ${count}`,
    );
  }

  it('answers a request with the bare handler result: no request id, no {ok} envelope', async () => {
    await sendAndAwait(JSON.stringify({ event: 'echo', data: { n: 1 }, id: 'r1' }), 1);
    // The protocol's answer would be {"id":"r1","ok":true,"data":...}.
    assert.deepEqual(frames, [{ event: 'echo', data: { n: 1 } }]);
  });

  it('answers nothing to a malformed frame or an unknown event', async () => {
    ws.send('not json');
    ws.send(JSON.stringify({ event: 'nope', id: 'r2' }));
    // The protocol answers BAD_REQUEST and UNKNOWN_EVENT; the stock adapter drops both, so the
    // next frames to arrive are the answers to the echoes sent after them.
    await sendAndAwait(JSON.stringify({ event: 'echo', data: { n: 2 }, id: 'r3' }), 2);
    await sendAndAwait(JSON.stringify({ event: 'echo', data: { n: 3 }, id: 'r4' }), 3);
    assert.deepEqual(frames.slice(1), [
      { event: 'echo', data: { n: 2 } },
      { event: 'echo', data: { n: 3 } },
    ]);
  });

  it("answers a handler's failure as an `exception` push that names no request", async () => {
    await sendAndAwait(JSON.stringify({ event: 'fail', id: 'r5' }), 4);
    // The protocol's answer would be {"id":"r5","ok":false,"error":{"code":...,"message":...}}.
    assert.deepEqual(frames[3], {
      event: 'exception',
      data: { status: 'error', message: 'refused on purpose', cause: { pattern: 'fail' } },
    });
  });
});

describe("the stock WsAdapter's error logging", () => {
  const errors: unknown[][] = [];
  let stock: StockApp;
  before(async () => (stock = await startStockApp({ log: () => undefined, warn: () => undefined, error: (...args) => errors.push(args) })));
  after(() => stopStockApp(stock));

  it("logs an error for every client's oversized frame, where WsConnection only lets ws close with 1009", async () => {
    for (let i = 0; i < 3; i++) {
      const ws = new WebSocket(`${stock.url.replace(/^http/, 'ws')}/ws`);
      await within(new Promise((resolve) => ws.once('open', resolve)), 'the /ws connection');
      ws.send('x'.repeat(MAX_PAYLOAD_BYTES + 1));
      assert.equal(await within(new Promise((resolve) => ws.once('close', resolve)), 'the close'), 1009);
    }
    // One line per hostile frame: a flood anyone can cause on a public socket.
    assert.equal(errors.filter((args) => args.at(-1) === 'WsAdapter').length, 3);
  });
});
