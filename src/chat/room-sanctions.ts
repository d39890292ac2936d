import { Injectable } from '@nestjs/common';
import DataLoader from 'dataloader';
import { randomUUID } from 'node:crypto';
import { ChatError } from './chat.errors.js';
import type { Sanction } from './chat.events.js';
import { ChatStore, SlowModeSlots, type RoomSanctionList } from './chat.ports.js';

/**
 * How long an instance trusts what it read of a room's mutes and bans. Every change is relayed to
 * every instance before it is answered (RoomBroadcaster.moderated), so this only bounds how long
 * an instance that missed the relay (Redis away) can act on an old list.
 */
export const SANCTIONS_FRESH_MS = 30_000;
/** Rooms whose lists an instance keeps: the rooms in use, whatever passes through. */
const ROOMS_KEPT = 10_000;
/** Rooms read in one statement at most. */
const READ_BATCH = 500;

interface ActiveSanctions {
  mutes: Map<string, Sanction>;
  bans: Map<string, Sanction>;
  slowModeMs: number;
  moderators: Set<string>;
}

interface Entry {
  read: Promise<ActiveSanctions>;
  at: number;
}

/**
 * Mutes, bans and slow mode as the request path checks them: one read of a room's list per
 * instance every SANCTIONS_FRESH_MS (a room nobody is sanctioned in reads as an empty list), so a
 * message costs Postgres nothing for them (slow mode costs one Redis command per message). The
 * rooms missed in one event-loop turn are read in one statement: a burst of first messages to a
 * thousand rooms costs a few queries, not a thousand (measured: one query per room made sends
 * across 1,000 new rooms stall). A list is forgotten when a change is relayed here; a read begun
 * before that is not kept, so what this instance reads next includes the change.
 */
@Injectable()
export class RoomSanctions {
  /** Least recently used first. */
  private readonly rooms = new Map<string, Entry>();
  /**
   * The rooms missed in one event-loop turn, read in one statement. Its own cache is off: `rooms`
   * is the cache, with the freshness bound and the forgetting that DataLoader's has not.
   */
  private readonly loader: DataLoader<string, RoomSanctionList | null>;

  constructor(
    private readonly store: ChatStore,
    private readonly slots: SlowModeSlots,
  ) {
    this.loader = new DataLoader(
      async (roomIds) => {
        const lists = await this.store.sanctions([...roomIds]);
        return roomIds.map((id) => lists.get(id) ?? null);
      },
      // A turn, not a tick: the first messages of a burst arrive in separate socket reads.
      { cache: false, maxBatchSize: READ_BATCH, batchScheduleFn: (run) => setImmediate(run) },
    );
  }

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

  /**
   * Slow mode, for message.send over a socket: takes the user's slot in the room, or RATE_LIMITED
   * with `retryAfterMs`. Owners and moderators are not slowed. The slot is held by the message's
   * clientMsgId, so a resend of the message that took it (its ack was lost) is not refused and
   * gets the stored message. Answers the function that frees the slot again when the message is
   * not stored after all (refused, failed, or a resend of an older one); null when none was taken.
   */
  async takeSlowModeSlot(roomId: string, userId: string, clientMsgId: string | null): Promise<(() => Promise<void>) | null> {
    const { slowModeMs, moderators } = await this.read(roomId);
    if (slowModeMs === 0 || moderators.has(userId)) return null;
    const holder = clientMsgId === null ? `t:${randomUUID()}` : `c:${clientMsgId}`;
    const answer = await this.slots.take(roomId, userId, slowModeMs, holder);
    if (answer === 'held') return null;
    if (answer !== 'taken')
      throw new ChatError('RATE_LIMITED', `slow mode: one message per ${slowModeMs} ms in room ${roomId}`, { retryAfterMs: answer });
    return () => this.slots.giveBack(roomId, userId, holder);
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
    const entry: Entry = { read: this.loader.load(roomId).then(byUser), at: Date.now() };
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
    slowModeMs: list?.slowModeMs ?? 0,
    moderators: new Set(list?.moderators ?? []),
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
