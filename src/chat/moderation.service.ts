import { Injectable } from '@nestjs/common';
import type { ModerationList, RemovalReason } from './chat.events.js';
import { ChatError } from './chat.errors.js';
import { ChatLimits, ChatStore, RoomBroadcaster, type ModerationAction } from './chat.ports.js';
import { createSchemas, parseInput, type ChatSchemas } from './chat.schemas.js';
import { notFound } from './room-access.js';
import { RoomSanctions } from './room-sanctions.js';

export type ModerationKind = ModerationAction['kind'];

/** `by` in the events of actions taken over HTTP. */
export const API_ACTOR = 'api';

const REMOVALS: Partial<Record<ModerationKind, RemovalReason>> = { ban: 'banned', kick: 'kicked' };

/**
 * Mute, unmute, ban, unban and kick: by a moderator (owner or moderator) of the room over a
 * socket, or by a trusted service over HTTP. Each is stored with its event out, then relayed to
 * every instance (which forget the room's cached sanctions and, for a ban or kick, take the
 * user's connections out of the room) before it is answered. ChatService enforces them. The same
 * two callers read the lists of the mutes and bans in force.
 */
@Injectable()
export class ModerationService {
  private readonly schemas: ChatSchemas;

  constructor(
    private readonly store: ChatStore,
    private readonly broadcaster: RoomBroadcaster,
    private readonly sanctions: RoomSanctions,
    limits: ChatLimits,
  ) {
    this.schemas = createSchemas(limits);
  }

  /** `actor`: the moderator's userId, or null for a trusted service. */
  async act(actor: string | null, kind: ModerationKind, data: unknown): Promise<{ roomId: string; userId: string }> {
    const action = this.parse(kind, data, actor ?? API_ACTOR);
    const { roomId } = action;
    if (actor !== null) await this.assertMayModerate(roomId, actor, action);
    // Nothing stored carries a kick to the other instances later, as the reconcile does for bans.
    if (kind === 'kick' && !this.broadcaster.relayReachable())
      throw new ChatError('UNAVAILABLE', 'the other instances cannot be reached right now: nobody was kicked, try again');
    if (!(await this.store.moderate(roomId, action))) notFound(roomId);
    const reason = REMOVALS[kind];
    await this.broadcaster.moderated(roomId, reason ? { userId: action.userId, reason } : null);
    return { roomId, userId: action.userId };
  }

  /**
   * The room's mutes and bans in force, by userId: moderation.list for a moderator of the room
   * (`actor`), or GET …/mutes and …/bans for a trusted service (null). Read from the store, not
   * from RoomSanctions' copy, so the answer includes what another instance did a moment ago.
   */
  async list(actor: string | null, data: unknown): Promise<ModerationList> {
    const { roomId } = parseInput(this.schemas.roomRef, data);
    if (actor !== null) await this.assertModerator(roomId, actor, 'list its mutes and bans');
    const { mutes, bans } = (await this.store.sanctions([roomId])).get(roomId) ?? notFound(roomId);
    return { roomId, mutes, bans };
  }

  private parse(kind: ModerationKind, data: unknown, by: string): ModerationAction & { roomId: string } {
    if (kind === 'mute' || kind === 'ban') {
      const input: { roomId: string; userId: string; durationMs?: number; reason?: string | null } = parseInput(
        kind === 'mute' ? this.schemas.mute : this.schemas.ban,
        data,
      );
      const until = input.durationMs === undefined ? null : new Date(Date.now() + input.durationMs);
      return { kind, roomId: input.roomId, userId: input.userId, until, reason: input.reason ?? null, by };
    }
    const { roomId, userId } = parseInput(this.schemas.moderationTarget, data);
    return { kind, roomId, userId, by };
  }

  /** As assertModerator; and an owner cannot be muted, banned or kicked. */
  private async assertMayModerate(roomId: string, actor: string, action: ModerationAction): Promise<void> {
    const [, theirs] = await Promise.all([
      this.assertModerator(roomId, actor, `${action.kind} its users`),
      this.store.roomAccess(roomId, action.userId),
    ]);
    if (theirs?.role === 'owner' && (action.kind === 'mute' || action.kind === 'ban' || action.kind === 'kick'))
      throw new ChatError('FORBIDDEN', `an owner of room ${roomId} cannot be muted, banned or kicked`);
  }

  /**
   * FORBIDDEN unless the actor is an owner or moderator of the room who is not banned from it (a
   * room that does not exist has no moderators); `what` ends the refusal's message.
   */
  private async assertModerator(roomId: string, actor: string, what: string): Promise<void> {
    await this.sanctions.assertNotBanned(roomId, actor);
    const mine = await this.store.roomAccess(roomId, actor);
    if (mine?.role !== 'owner' && mine?.role !== 'moderator')
      throw new ChatError('FORBIDDEN', `only an owner or moderator of room ${roomId} may ${what}`);
  }
}
