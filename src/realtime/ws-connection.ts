import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import type { Identity } from '../auth/identity.js';
import type { Reply, ServerEvent, ServerEventMap } from '../chat/chat.events.js';
import { ChatConnection, type CloseReason, type RequestListener } from './chat-connection.js';

/** Where raw ws room membership lives (LocalConnections; named here so the two modules do not import each other). */
export interface WsRoomMembers {
  joinWs(roomId: string, conn: WsConnection): void;
  leaveWs(roomId: string, conn: WsConnection): void;
}

/**
 * 1012 "service restart" makes clients reconnect; 4001 is the contract's code for an expired token;
 * 4003 tells a client that a backend service ended its session on purpose.
 */
const WS_CLOSE: Record<CloseReason, [number, string]> = {
  restart: [1012, 'service restart'],
  expired: [4001, 'token expired'],
  abuse: [1008, 'rate limit exceeded'],
  disconnected: [4003, 'disconnected by the service'],
};

interface Frame {
  event?: unknown;
  data?: unknown;
  id?: unknown;
}

/**
 * A raw WebSocket client speaking JSON frames: requests `{event, data, id?}`, replies
 * `{id, ok, ...}`, pushes `{event, data}`.
 */
export class WsConnection extends ChatConnection {
  private answeredLastPing = true;

  constructor(
    readonly ws: WebSocket,
    user: Identity,
    private readonly local: WsRoomMembers,
    maxRooms: number,
  ) {
    super(randomUUID(), 'ws', user, maxRooms);
    // ws reports protocol violations (oversized or invalid UTF-8 frames) as 'error' and then
    // closes with the matching code (1009, 1007); without a listener the error would crash the process.
    ws.on('error', () => undefined);
    ws.on('pong', () => (this.answeredLastPing = true));
    ws.once('close', (code) => {
      for (const roomId of this.rooms) local.leaveWs(roomId, this);
      this.notifyClosed(`close ${code}`);
    });
  }

  push<E extends ServerEvent>(event: E, data: ServerEventMap[E]): void {
    this.sendFrame(JSON.stringify({ event, data }));
  }

  /** Sends an already serialised frame; broadcasts serialise once for all ws members. */
  sendFrame(frame: string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(frame);
  }

  bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  terminate(): void {
    this.ws.terminate();
  }

  close(reason: CloseReason): void {
    const [code, text] = WS_CLOSE[reason];
    this.ws.close(code, text);
  }

  /** One heartbeat tick: a peer that did not answer the previous ping is dead and dropped; returns whether it lives. */
  heartbeat(): boolean {
    if (!this.answeredLastPing) {
      this.ws.terminate();
      return false;
    }
    this.answeredLastPing = false;
    this.ws.ping();
    return true;
  }

  protected subscribe(roomId: string): void {
    this.local.joinWs(roomId, this);
  }

  protected unsubscribe(roomId: string): void {
    this.local.leaveWs(roomId, this);
  }

  onRequest(listener: RequestListener): void {
    this.ws.on('message', (raw: WebSocket.RawData, isBinary: boolean) => {
      const frame = isBinary ? undefined : parseFrame(raw.toString());
      const id = typeof frame?.id === 'string' ? frame.id : undefined;
      if (!frame || typeof frame.event !== 'string') {
        const reason = isBinary ? 'binary frames are not supported' : 'a frame must be a JSON object with a string "event"';
        listener('', undefined, (r) => this.respondTo(id, r), { ok: false, error: { code: 'BAD_REQUEST', message: reason } });
        return;
      }
      const reply = id === undefined ? undefined : (r: Reply) => this.sendFrame(JSON.stringify({ id, ...r }));
      listener(frame.event, frame.data, this.responder(frame.event, reply));
    });
  }

  /** Answers a frame that is not a request: to its string id if it has one, else as an `error` push without an event name. */
  private respondTo(id: string | undefined, r: Reply): void {
    if (id !== undefined) this.sendFrame(JSON.stringify({ id, ...r }));
    else if (!r.ok) this.push('error', r.error);
  }
}

function parseFrame(text: string): Frame | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Frame) : undefined;
  } catch {
    return undefined;
  }
}
