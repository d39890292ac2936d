import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { INestApplicationContext } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { AbstractWsAdapter, type MessageMappingProperties } from '@nestjs/websockets';
import { defer, filter, finalize, type Observable } from 'rxjs';
import { Server, type ServerOptions } from 'socket.io';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Identity } from '../auth/identity.js';
import type { Reply } from '../chat/chat.events.js';
import type { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import type { ChatConnection } from './chat-connection.js';
import { IoConnection } from './io-connection.js';
import type { LocalConnections } from './local-connections.js';
import { WsConnection } from './ws-connection.js';

export interface DualTransportOptions {
  /** Path of the raw WebSocket endpoint, e.g. `/ws`. */
  wsPath: string;
  /** Largest frame or packet accepted from a client, in bytes. */
  maxPayloadBytes: number;
  /** Browsers may use socket.io's polling transport from any origin (development only). */
  corsAnyOrigin: boolean;
  /** socket.io's heartbeat; raw ws peers are pinged by the ConnectionSupervisor at the same interval. */
  heartbeat: { intervalMs: number; timeoutMs: number };
  /** Refuses handshakes and requests once the instance drains, and counts requests in flight. */
  gate: ShutdownGate;
  authenticate(token: unknown): Promise<Identity>;
  connections: LocalConnections;
  /** Called once with the socket.io server, before any client connects. */
  onServer(io: Server): void;
}

const IO_PATH = '/socket.io';

/**
 * One Nest WebSocket adapter for two transports on the app's HTTP port: socket.io at
 * `/socket.io` (polling and websocket) and raw WebSocket at `/ws`. Both hand the gateway a
 * ChatConnection and share one dispatch: a fixed event table, one reply shape, UNKNOWN_EVENT for
 * names without a handler. (Nest allows one adapter per app, and its stock WsAdapter destroys
 * upgrades on paths it does not own, which breaks socket.io's websocket transport.)
 */
export class DualTransportAdapter extends AbstractWsAdapter {
  private readonly transportLogger = new Logger('Transport');
  private wss: WebSocketServer | null = null;

  constructor(
    app: INestApplicationContext,
    private readonly options: DualTransportOptions,
  ) {
    super(app);
  }

  create(_port: number, gatewayOptions?: Partial<ServerOptions>): Server {
    const io = new Server(this.httpServer, {
      ...gatewayOptions,
      path: IO_PATH,
      serveClient: false,
      maxHttpBufferSize: this.options.maxPayloadBytes,
      perMessageDeflate: false,
      // The /ws upgrade handler below answers every other path; engine.io must not destroy them.
      destroyUpgrade: false,
      pingInterval: this.options.heartbeat.intervalMs,
      pingTimeout: this.options.heartbeat.timeoutMs,
      // Only handshakes reach allowRequest; a refused one is a transport error, which the client retries.
      allowRequest: (_req, callback) => {
        const draining = this.options.gate.draining;
        callback(draining ? 'server is shutting down' : null, !draining);
      },
      ...(this.options.corsAnyOrigin ? { cors: { origin: true, credentials: true } } : {}),
    });
    io.use((socket, next) => {
      const auth = socket.handshake.auth as Record<string, unknown> | undefined;
      this.options.authenticate(auth?.token).then(
        (user) => {
          socket.data.user = user;
          next();
        },
        () => next(Object.assign(new Error('UNAUTHORIZED'), { data: { code: 'UNAUTHORIZED' } })),
      );
    });
    this.options.connections.attach(io);
    this.options.onServer(io);

    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.options.maxPayloadBytes, perMessageDeflate: false });
    this.httpServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.handleUpgrade(req, socket, head));
    return io;
  }

  override bindClientConnect(io: Server, callback: (conn: ChatConnection) => void): void {
    const accept = (conn: ChatConnection) => {
      this.options.connections.add(conn);
      callback(conn);
    };
    io.on('connection', (socket) => accept(new IoConnection(socket, socket.data.user as Identity)));
    this.wss?.on('connection', (ws: WebSocket, user: Identity) => accept(new WsConnection(ws, user, this.options.connections)));
  }

  override bindClientDisconnect(conn: ChatConnection, callback: (reason: string) => void): void {
    conn.onClose(callback);
  }

  bindMessageHandlers(conn: ChatConnection, handlers: MessageMappingProperties[], transform: (data: unknown) => Observable<unknown>): void {
    const table = new Map(handlers.map((h) => [String(h.message), h.callback]));
    const { gate } = this.options;
    conn.onRequest((event, data, respond) => {
      const handler = table.get(event);
      if (!handler) {
        respond({ ok: false, error: { code: 'UNKNOWN_EVENT', message: 'no such event' } });
        return;
      }
      if (!gate.enter()) {
        respond({ ok: false, error: { code: 'UNAVAILABLE', message: 'server is shutting down, reconnect and retry' } });
        return;
      }
      // The handler's own failures are answered by the gateway's exception filter through
      // `respond` (passed as the ack argument) and yield no result here.
      defer(() => transform(handler(data, respond)))
        .pipe(
          filter((result) => result !== undefined && result !== null),
          finalize(() => gate.leave()),
        )
        .subscribe({
          next: (result) => respond({ ok: true, data: result } satisfies Reply),
          error: (err: unknown) => {
            this.transportLogger.error(`unhandled failure in ${event}: ${String(err)}`);
            respond({ ok: false, error: { code: 'INTERNAL', message: 'internal error' } });
          },
        });
    });
  }

  /** Nest's app.close(): every client is told to reconnect elsewhere before the server stops. */
  override async close(io: Server): Promise<void> {
    for (const conn of [...this.options.connections.all()]) conn.closeForRestart();
    this.wss?.close();
    await super.close(io);
  }

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname.startsWith(`${IO_PATH}/`)) return; // engine.io's own upgrade listener takes it
    socket.on('error', () => socket.destroy());
    if (url.pathname !== this.options.wsPath) {
      refuseUpgrade(socket, 404, 'NOT_FOUND', 'no WebSocket endpoint at this path');
      return;
    }
    if (this.options.gate.draining) {
      refuseUpgrade(socket, 503, 'UNAVAILABLE', 'server is shutting down');
      return;
    }
    const token = bearerToken(req.headers.authorization) ?? url.searchParams.get('access_token');
    this.options.authenticate(token).then(
      (user) => {
        if (socket.destroyed || !this.wss) return;
        const wss = this.wss;
        wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, user));
      },
      () => refuseUpgrade(socket, 401, 'UNAUTHORIZED', 'a valid token is required'),
    );
  }
}

function bearerToken(header: string | undefined): string | undefined {
  const match = header?.match(/^Bearer\s+(\S+)$/i);
  return match?.[1];
}

function refuseUpgrade(socket: Duplex, status: 401 | 404 | 503, code: string, message: string): void {
  const body = JSON.stringify({ ok: false, error: { code, message } });
  const reason = { 401: 'Unauthorized', 404: 'Not Found', 503: 'Service Unavailable' }[status] ?? 'Error';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
