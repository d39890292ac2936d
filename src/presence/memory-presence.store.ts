import { PresenceStore, type PresenceChange } from '../chat/chat.ports.js';

/**
 * Presence of a single instance (no Redis): every connection is local, so the counts are exact
 * and each change is decided, and reported, right here.
 */
export class MemoryPresenceStore extends PresenceStore {
  /** roomId → connectionId → userId. */
  private readonly rooms = new Map<string, Map<string, string>>();
  /** roomId → userId → number of that user's connections in the room. */
  private readonly counts = new Map<string, Map<string, number>>();
  private readonly listeners: ((change: PresenceChange) => void)[] = [];

  enter(roomId: string, userId: string, connectionId: string): void {
    let conns = this.rooms.get(roomId);
    if (!conns) this.rooms.set(roomId, (conns = new Map()));
    if (conns.has(connectionId)) return;
    conns.set(connectionId, userId);
    let users = this.counts.get(roomId);
    if (!users) this.counts.set(roomId, (users = new Map()));
    const n = (users.get(userId) ?? 0) + 1;
    users.set(userId, n);
    if (n === 1) this.emit({ kind: 'joined', roomId, userId });
  }

  exit(roomId: string, connectionId: string): void {
    const conns = this.rooms.get(roomId);
    const userId = conns?.get(connectionId);
    if (!conns || userId === undefined) return;
    conns.delete(connectionId);
    if (conns.size === 0) this.rooms.delete(roomId);
    const users = this.counts.get(roomId)!;
    const n = users.get(userId)! - 1;
    if (n > 0) return void users.set(userId, n);
    users.delete(userId);
    if (users.size === 0) this.counts.delete(roomId);
    this.emit({ kind: 'left', roomId, userId });
  }

  list(roomId: string): Promise<string[]> {
    return Promise.resolve([...(this.counts.get(roomId)?.keys() ?? [])].sort());
  }

  onChange(listener: (change: PresenceChange) => void): void {
    this.listeners.push(listener);
  }

  private emit(change: PresenceChange): void {
    for (const l of this.listeners) l(change);
  }
}
