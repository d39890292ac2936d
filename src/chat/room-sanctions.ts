import { Injectable } from '@nestjs/common';
import { ChatError } from './chat.errors.js';
import type { Sanction } from './chat.events.js';
import { ChatStore, type RoomSanctionList } from './chat.ports.js';

/**
 * How long an instance trusts what it read of a room's mutes and bans. Every change is relayed to
 * every instance before it is answered (RoomBroadcaster.moderated), so this only bounds how long
 * an instance that missed the relay (Redis away) can act on an old list.
 */
export const SANCTIONS_FRESH_MS = 30_000;
/** Rooms whose lists an instance keeps: the rooms in use, whatever passes through. */
const ROOMS_KEPT = 10_000;

interface ActiveSanctions {
  mutes: Map<string, Sanction>;
  bans: Map<string, Sanction>;
}

interface Entry {
  read: Promise<ActiveSanctions>;
  at: number;
}

/**
 * Mutes and bans as the request path checks them: one read of a room's list per instance every
 * SANCTIONS_FRESH_MS (a room nobody is sanctioned in reads as an empty list), so a message costs
 * Postgres nothing for them. A list is forgotten when a change is relayed here; a read begun
 * before that is not kept, so what this instance reads next includes the change.
 */
@Injectable()
export class RoomSanctions {
  /** Least recently used first. */
  private readonly rooms = new Map<string, Entry>();

  constructor(private readonly store: ChatStore) {}

  /** FORBIDDEN `{ reason: "banned", until }` while the user is banned from the room. */
  async assertNotBanned(roomId: string, userId: string): Promise<void> {
    const ban = inForce((await this.read(roomId)).bans, userId);
    if (ban) throw sanctioned('banned', roomId, ban);
  }

  /** For message.send, message.edit and reaction.add: a ban first, then FORBIDDEN `{ reason: "muted", until }`. */
  async assertMaySpeak(roomId: string, userId: string): Promise<void> {
    const active = await this.read(roomId);
    const ban = inForce(active.bans, userId);
    if (ban) throw sanctioned('banned', roomId, ban);
    const mute = inForce(active.mutes, userId);
    if (mute) throw sanctioned('muted', roomId, mute);
  }

  forget(roomId: string): void {
    this.rooms.delete(roomId);
  }

  /** After a gap in the relay, which may have lost some changes. */
  forgetAll(): void {
    this.rooms.clear();
  }

  private read(roomId: string): Promise<ActiveSanctions> {
    const kept = this.rooms.get(roomId);
    if (kept && Date.now() - kept.at < SANCTIONS_FRESH_MS) {
      this.rooms.delete(roomId);
      this.rooms.set(roomId, kept);
      return kept.read;
    }
    const entry: Entry = { read: this.store.sanctions(roomId).then(byUser), at: Date.now() };
    this.rooms.delete(roomId);
    if (this.rooms.size >= ROOMS_KEPT) this.rooms.delete(this.rooms.keys().next().value as string);
    this.rooms.set(roomId, entry);
    // A failed read is not kept: the next request reads again.
    entry.read.catch(() => {
      if (this.rooms.get(roomId) === entry) this.rooms.delete(roomId);
    });
    return entry.read;
  }
}

function byUser(list: RoomSanctionList | null): ActiveSanctions {
  return {
    mutes: new Map((list?.mutes ?? []).map((s) => [s.userId, s])),
    bans: new Map((list?.bans ?? []).map((s) => [s.userId, s])),
  };
}

/** The user's sanction unless it has expired since it was read. */
function inForce(sanctions: Map<string, Sanction>, userId: string): Sanction | null {
  const found = sanctions.get(userId);
  if (!found) return null;
  return found.until === null || Date.parse(found.until) > Date.now() ? found : null;
}

function sanctioned(reason: 'banned' | 'muted', roomId: string, sanction: Sanction): ChatError {
  const until = sanction.until ? ` until ${sanction.until}` : '';
  return new ChatError('FORBIDDEN', `${reason} in room ${roomId}${until}`, { reason, until: sanction.until });
}
