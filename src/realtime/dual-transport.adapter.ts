import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { INestApplicationContext } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { AbstractWsAdapter, type MessageMappingProperties } from '@nestjs/websockets';
import type { Observable } from 'rxjs';
import { Server, type ServerOptions } from 'socket.io';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Identity } from '../auth/identity.js';
import { clientAddress, type Refusal, type Admission } from './admission.js';
import type { ChatConnection } from './chat-connection.js';
import { IoConnection } from './io-connection.js';
import type { EngineSession, HandshakeGuard } from './limits/handshake-guard.js';
import { textOnlyParser } from './limits/text-only-parser.js';
import type { LocalConnections } from './local-connections.js';
import type { OriginPolicy } from './origin-policy.js';
import type { RequestDispatcher } from './request-dispatcher.js';
import { WsConnection } from './ws-connection.js';

export interface DualTransportOptions {
  /** Path of the raw WebSocket endpoint, e.g. `/ws`. */
  wsPath: string;
  /** Largest frame or packet accepted from a client, in bytes. */
  maxPayloadBytes: number;
  /** Rooms one connection may join. */
  maxRoomsPerConnection: number;
  /** socket.io's heartbeat; raw ws peers are pinged by the ConnectionSupervisor at the same interval. */
  heartbeat: { intervalMs: number; timeoutMs: number };
  /** Who may connect (draining, origin, token, connection cap), for both transports. */
  admission: Admission;
  /** Limits before authentication: handshakes per address, unauthenticated sessions. */
  handshakes: HandshakeGuard;
  /** How long a new engine.io session may take to complete its socket.io CONNECT. */
  connectTimeoutMs: number;
  /** CORS headers for socket.io's polling transport follow the same origin policy. */
  origins: OriginPolicy;
  /** The request path shared by both transports. */
  dispatcher: RequestDispatcher;
  connections: LocalConnections;
  /** Called once with the socket.io server, before any client connects. */
  onServer(io: Server): void;
}

const IO_PATH = '/socket.io';
/** How long shutdown waits for clients to take their close; within the 2 s main.ts leaves for closing. */
const CLOSE_GRACE_MS = 1500;

/**
 * One Nest WebSocket adapter for two transports on the app's HTTP port: socket.io at
 * `/socket.io` (polling and websocket) and raw WebSocket at `/ws`. Both hand the gateway a
 * ChatConnection, admit clients through one Admission and dispatch through one
 * RequestDispatcher. (Nest allows one adapter per app, and its stock WsAdapter destroys upgrades
 * on paths it does not own, which breaks socket.io's websocket transport.)
 */
export class DualTransportAdapter extends AbstractWsAdapter {
  private readonly logger = new Logger('Connections');
  private wss: WebSocketServer | null = null;
  /** engine.io's own upgrade listeners, called by handleUpgrade once admission let a socket.io upgrade through. */
  private engineUpgrade: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void)[] = [];

  constructor(
    app: INestApplicationContext,
    private readonly options: DualTransportOptions,
  ) {
    super(app);
  }

  create(_port: number, gatewayOptions?: Partial<ServerOptions>): Server {
    const { admission, origins, handshakes } = this.options;
    const before = new Set(this.httpServer.listeners('upgrade'));
    const io = new Server(this.httpServer, {
      ...gatewayOptions,
      path: IO_PATH,
      serveClient: false,
      parser: textOnlyParser,
      maxHttpBufferSize: this.options.maxPayloadBytes,
      perMessageDeflate: false,
      httpCompression: false,
      // The /ws upgrade handler below answers every other path; engine.io must not destroy them.
      destroyUpgrade: false,
      pingInterval: this.options.heartbeat.intervalMs,
      pingTimeout: this.options.heartbeat.timeoutMs,
      connectTimeout: this.options.connectTimeoutMs,
      cors: { origin: (origin, callback) => callback(null, origin !== undefined && origins.allowsCrossOrigin(origin)), credentials: true },
      // Only handshakes reach allowRequest; a refusal is an HTTP 403, which socket.io-client
      // treats as a transport error and retries (through a load balancer, elsewhere).
      allowRequest: (req, callback) => {
        const refusal = admission.precheck(req, 'socket.io');
        callback(refusal ? refusal.message : null, !refusal);
      },
    });
    // New polling sessions are limited here (websocket ones in handleUpgrade), where the HTTP
    // status can still say why; allowRequest could only answer 403.
    io.engine.use((req: IncomingMessage & { _query: Record<string, string> }, res: unknown, next: (err?: Error) => void) => {
      if (req._query.sid || !(res instanceof ServerResponse)) return next();
      const refusal = handshakes.admitNew(req, 'socket.io');
      if (!refusal) return next();
      // Answered here, so engine.io's chain never goes on (and never answers a second time).
      res.writeHead(refusal.status, { 'Content-Type': 'application/json' }).end(refusalBody(refusal.code, refusal.message));
    });
    io.engine.on('connection', (session: EngineSession & { once(event: 'close', listener: () => void): void }) => {
      handshakes.opened(session);
      session.once('close', () => handshakes.settled(session));
    });
    io.use((socket, next) => {
      const auth = socket.handshake.auth as Record<string, unknown> | undefined;
      admission.admit(socket.request, 'socket.io', auth?.token).then(
        (user) => {
          socket.data.user = user;
          handshakes.settled(socket.conn);
          next();
        },
        (refusal: Refusal) => {
          next(Object.assign(new Error(refusal.code), { data: { code: refusal.code, message: refusal.message } }));
          // A refused session is closed, so it cannot try again and again; socket.io writes the
          // CONNECT_ERROR on the next tick, and engine.io flushes it before it closes.
          setImmediate(() => socket.conn.close());
        },
      );
    });
    // engine.io answers a refused websocket upgrade with 400; taking its listener over lets the
    // admission's status (403 for a foreign origin, 503 while draining) reach the client.
    this.engineUpgrade = this.httpServer.listeners('upgrade').filter((l: unknown) => !before.has(l));
    for (const listener of this.engineUpgrade) this.httpServer.off('upgrade', listener);
    this.options.connections.attach(io);
    this.options.onServer(io);

    this.wss = new WebSocketServer({ noServer: true, maxPayload: this.options.maxPayloadBytes, perMessageDeflate: false });
    this.httpServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.handleUpgrade(req, socket, head));
    return io;
  }

  override bindClientConnect(io: Server, callback: (conn: ChatConnection) => void): void {
    const { maxRoomsPerConnection: maxRooms, connections } = this.options;
    const accept = (conn: ChatConnection, req: IncomingMessage) => {
      connections.add(conn);
      const fields = { connectionId: conn.id, userId: conn.user.userId, transport: conn.transport, ...clientAddress(req) };
      this.logger.log({ msg: 'connection opened', ...fields });
      conn.onClose((reason) => this.logger.log({ msg: 'connection closed', reason, ...fields }));
      callback(conn);
    };
    io.on('connection', (socket) => accept(new IoConnection(socket, socket.data.user as Identity, maxRooms), socket.request));
    this.wss?.on('connection', (ws: WebSocket, req: IncomingMessage, user: Identity) =>
      accept(new WsConnection(ws, user, connections, maxRooms), req),
    );
  }

  override bindClientDisconnect(conn: ChatConnection, callback: (reason: string) => void): void {
    conn.onClose(callback);
  }

  bindMessageHandlers(conn: ChatConnection, handlers: MessageMappingProperties[], transform: (data: unknown) => Observable<unknown>): void {
    this.options.dispatcher.bind(conn, handlers, transform);
  }

  /**
   * Nest's app.close(): every client is told to reconnect elsewhere before the server stops. A
   * polling client gets its close packet only with its next poll, and io.close() would discard
   * the session before that (the client then sees "transport error"), so closing waits for the
   * connections to close, at most CLOSE_GRACE_MS.
   */
  override async close(io: Server): Promise<void> {
    const open = [...this.options.connections.all()];
    const closed = Promise.all(open.map((conn) => new Promise((resolve) => conn.onClose(resolve))));
    for (const conn of open) conn.close('restart');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)))]);
    clearTimeout(timer);
    this.wss?.close();
    await super.close(io);
  }

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', destroySocket);
    const url = URL.parse(req.url ?? '/', 'http://localhost');
    if (!url) return refuseUpgrade(socket, 400, 'BAD_REQUEST', 'malformed request target');
    const { admission } = this.options;
    if (url.pathname.startsWith(`${IO_PATH}/`)) {
      const newSession = !url.searchParams.has('sid');
      const refusal = admission.precheck(req, 'socket.io') ?? (newSession ? this.options.handshakes.admitNew(req, 'socket.io') : null);
      if (refusal) return refuseUpgrade(socket, refusal.status, refusal.code, refusal.message);
      for (const listener of this.engineUpgrade) listener(req, socket, head);
      return;
    }
    if (url.pathname !== this.options.wsPath) return refuseUpgrade(socket, 404, 'NOT_FOUND', 'no WebSocket endpoint at this path');
    const early = admission.precheck(req, 'ws') ?? this.options.handshakes.admitNew(req, 'ws');
    if (early) return refuseUpgrade(socket, early.status, early.code, early.message);
    const token = bearerToken(req.headers.authorization) ?? url.searchParams.get('access_token');
    admission.admit(req, 'ws', token).then(
      (user) => {
        const wss = this.wss;
        if (socket.destroyed || !wss) return;
        wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req, user));
      },
      (refusal: Refusal) => refuseUpgrade(socket, refusal.status, refusal.code, refusal.message),
    );
  }
}

/**
 * A module-level listener: it stays on the socket for the connection's life, and a closure made
 * in handleUpgrade would keep that call's request (headers, URL with its token) alive as long.
 */
function destroySocket(this: Duplex): void {
  this.destroy();
}

function bearerToken(header: string | undefined): string | undefined {
  const match = header?.match(/^Bearer\s+(\S+)$/i);
  return match?.[1];
}

const STATUS_TEXT = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

function refusalBody(code: string, message: string): string {
  return JSON.stringify({ ok: false, error: { code, message } });
}

function refuseUpgrade(socket: Duplex, status: keyof typeof STATUS_TEXT, code: string, message: string): void {
  const body = refusalBody(code, message);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
