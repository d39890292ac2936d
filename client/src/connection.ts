import { ChatRequestError } from './errors.js';
import { clearTimer, setTimer, type TimerHandle } from './host.js';

/** The reply object both transports carry (protocol section 3.1). */
export type Reply = { ok: true; data: unknown } | { ok: false; error: { code: string; message: string; details?: unknown } };

/**
 * Why a connection ended, as far as reconnecting is concerned:
 * - LOST: anything transient (network, instance death, restart, refused handshake of unknown cause): reconnect;
 * - UNAUTHORIZED: the handshake refused the token: reconnect only with a new token;
 * - EXPIRED: the server disconnected at the token's expiry: reconnect only with a new token;
 * - KICKED: the server disconnected this client on purpose (ws 4003, socket.io server disconnect): stay closed.
 */
export type CloseKind = 'LOST' | 'UNAUTHORIZED' | 'EXPIRED' | 'KICKED';

export interface ConnectionHandlers {
  session(data: { userId: string; connectionId: string }): void;
  push(event: string, data: unknown): void;
  /** Called once, when the connection (or its handshake) is gone for good. */
  closed(kind: CloseKind, detail: string): void;
}

/** One connection attempt to one URL; it never reconnects by itself. */
export interface Connection {
  request(event: string, data: unknown, timeoutMs: number): Promise<Reply>;
  close(): void;
}

/** Requests waiting for their replies; all of them fail with DISCONNECTED when the connection ends. */
export class PendingReplies {
  private readonly pending = new Map<string, { resolve(r: Reply): void; reject(e: Error): void; timer: TimerHandle }>();
  private next = 0;

  add(timeoutMs: number): { id: string; reply: Promise<Reply> } {
    const id = `c${++this.next}`;
    const reply = new Promise<Reply>((resolve, reject) => {
      const timer = setTimer(() => {
        this.pending.delete(id);
        reject(new ChatRequestError('TIMEOUT', `no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
    return { id, reply };
  }

  settle(id: string, reply: Reply): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimer(p.timer);
    p.resolve(reply);
  }

  failAll(): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimer(p.timer);
      p.reject(new ChatRequestError('DISCONNECTED', 'the connection closed before the reply'));
    }
  }
}

export function isReply(value: unknown): value is Reply {
  return typeof value === 'object' && value !== null && typeof (value as { ok?: unknown }).ok === 'boolean';
}
