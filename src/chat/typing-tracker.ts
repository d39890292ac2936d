/** How long a typing.start lasts without a renewal or a typing.stop. */
export const TYPING_TTL_MS = 5000;

export type TypingChange = (roomId: string, userId: string, typing: boolean) => void;

interface Typing {
  userId: string;
  expiry: NodeJS.Timeout;
}

/**
 * Who is typing where, on this instance. State is per connection and room: each typing.start sets
 * (or renews) that connection's expiry, each stop, expiry, leave or close ends it. A user counts as
 * typing in a room while at least one of their connections here does, so `changed` fires once
 * when the first starts and once when the last ends, and a renewal fires nothing.
 */
export class TypingTracker<C extends object> {
  private readonly byConnection = new Map<C, Map<string, Typing>>();
  /** roomId + NUL + userId → how many of the user's connections are typing there. */
  private readonly typers = new Map<string, number>();

  constructor(
    private readonly changed: TypingChange,
    private readonly ttlMs = TYPING_TTL_MS,
  ) {}

  isTyping(conn: C, roomId: string): boolean {
    return this.byConnection.get(conn)?.has(roomId) ?? false;
  }

  start(conn: C, userId: string, roomId: string): void {
    let rooms = this.byConnection.get(conn);
    const current = rooms?.get(roomId);
    if (current) {
      clearTimeout(current.expiry);
      current.expiry = this.expireLater(conn, roomId);
      return;
    }
    if (!rooms) this.byConnection.set(conn, (rooms = new Map()));
    rooms.set(roomId, { userId, expiry: this.expireLater(conn, roomId) });
    const key = typerKey(roomId, userId);
    const count = (this.typers.get(key) ?? 0) + 1;
    this.typers.set(key, count);
    if (count === 1) this.changed(roomId, userId, true);
  }

  stop(conn: C, roomId: string): void {
    const rooms = this.byConnection.get(conn);
    const typing = rooms?.get(roomId);
    if (!rooms || !typing) return;
    clearTimeout(typing.expiry);
    rooms.delete(roomId);
    if (rooms.size === 0) this.byConnection.delete(conn);
    const key = typerKey(roomId, typing.userId);
    const count = (this.typers.get(key) ?? 1) - 1;
    if (count > 0) return void this.typers.set(key, count);
    this.typers.delete(key);
    this.changed(roomId, typing.userId, false);
  }

  /** The connection closed: it stops typing everywhere. */
  drop(conn: C): void {
    for (const roomId of [...(this.byConnection.get(conn)?.keys() ?? [])]) this.stop(conn, roomId);
  }

  private expireLater(conn: C, roomId: string): NodeJS.Timeout {
    // unref: a pending expiry must not keep a shutting-down process alive.
    return setTimeout(() => this.stop(conn, roomId), this.ttlMs).unref();
  }
}

function typerKey(roomId: string, userId: string): string {
  return `${roomId}\u0000${userId}`;
}
