import { UseFilters } from '@nestjs/common';
import {
  ConnectedSocket,
  MessageBody,
  SubscribeMessage,
  WebSocketGateway,
  type OnGatewayConnection,
  type OnGatewayDisconnect,
} from '@nestjs/websockets';
import { TokenVerifier } from '../auth/token-verifier.js';
import { CLIENT_EVENTS, SERVER_EVENTS, type ClientEvent, type ClientEventMap } from '../chat/chat.events.js';
import { ChatService } from '../chat/chat.service.js';
import { ModerationService } from '../chat/moderation.service.js';
import { PresenceService } from '../chat/presence.service.js';
import { ChatConnection } from './chat-connection.js';
import { ReplyExceptionFilter } from './reply-exception.filter.js';
import { SubscribeUserMessage } from './user-message.decorator.js';

/** What a handler of event E answers (the reply's data): the protocol's ClientEventMap says. */
type Answer<E extends ClientEvent> = Promise<ClientEventMap[E]['reply']>;

/** The one gateway for socket.io and raw WebSocket clients; each handler delegates. */
@WebSocketGateway()
@UseFilters(ReplyExceptionFilter)
export class ChatGateway implements OnGatewayConnection, OnGatewayDisconnect {
  constructor(
    private readonly chat: ChatService,
    private readonly tokens: TokenVerifier,
    private readonly presence: PresenceService,
    private readonly moderation: ModerationService,
  ) {}

  handleConnection(conn: ChatConnection): void {
    conn.push(SERVER_EVENTS.session, { userId: conn.user.userId, connectionId: conn.id });
    conn.onLeave((roomId) => this.presence.exit(roomId, conn.id));
  }

  handleDisconnect(conn: ChatConnection): void {
    for (const roomId of conn.rooms) this.presence.exit(roomId, conn.id);
  }

  /** Presence counts the connection only once the join succeeded, and not if it closed or was evicted meanwhile. */
  @SubscribeMessage(CLIENT_EVENTS.roomJoin)
  async join(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.roomJoin> {
    const result = await this.chat.join(conn.user.userId, data, conn);
    if (!conn.isClosed && conn.rooms.has(result.roomId)) this.presence.enter(result.roomId, conn.user.userId, conn.id);
    return result;
  }

  @SubscribeMessage(CLIENT_EVENTS.roomLeave)
  leave(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.roomLeave> {
    return this.chat.leave(conn.user.userId, data, conn);
  }

  @SubscribeUserMessage(CLIENT_EVENTS.messageSend)
  send(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.messageSend> {
    return this.chat.send(conn.user.userId, data);
  }

  @SubscribeMessage(CLIENT_EVENTS.messageHistory)
  history(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.messageHistory> {
    return this.chat.history(conn.user.userId, data);
  }

  @SubscribeMessage(CLIENT_EVENTS.messageEdit)
  edit(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.messageEdit> {
    return this.chat.edit(conn.user.userId, data);
  }

  @SubscribeMessage(CLIENT_EVENTS.messageDelete)
  deleteMessage(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.messageDelete> {
    return this.chat.deleteMessage(conn.user.userId, data);
  }

  @SubscribeMessage(CLIENT_EVENTS.reactionAdd)
  reactionAdd(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.reactionAdd> {
    return this.chat.react(conn.user.userId, data, true);
  }

  @SubscribeMessage(CLIENT_EVENTS.reactionRemove)
  reactionRemove(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.reactionRemove> {
    return this.chat.react(conn.user.userId, data, false);
  }

  @SubscribeMessage(CLIENT_EVENTS.messageChanges)
  changes(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.messageChanges> {
    return this.chat.changes(conn.user.userId, data);
  }

  @SubscribeMessage(CLIENT_EVENTS.typingStart)
  typingStart(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.typingStart> {
    return this.chat.typingStart(conn.user.userId, data, conn);
  }

  @SubscribeMessage(CLIENT_EVENTS.typingStop)
  typingStop(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.typingStop> {
    return this.chat.typingStop(conn.user.userId, data, conn);
  }

  @SubscribeMessage(CLIENT_EVENTS.messageRead)
  read(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.messageRead> {
    return this.chat.read(conn.user.userId, data);
  }

  @SubscribeMessage(CLIENT_EVENTS.roomsList)
  roomsList(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.roomsList> {
    return this.chat.listRooms(conn.user.userId, data);
  }

  @SubscribeMessage(CLIENT_EVENTS.presenceList)
  presenceList(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.presenceList> {
    return this.presence.list(conn.user.userId, data);
  }

  @SubscribeMessage(CLIENT_EVENTS.moderationMute)
  mute(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.moderationMute> {
    return this.moderation.act(conn.user.userId, 'mute', data);
  }

  @SubscribeMessage(CLIENT_EVENTS.moderationUnmute)
  unmute(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.moderationUnmute> {
    return this.moderation.act(conn.user.userId, 'unmute', data);
  }

  @SubscribeMessage(CLIENT_EVENTS.moderationBan)
  ban(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.moderationBan> {
    return this.moderation.act(conn.user.userId, 'ban', data);
  }

  @SubscribeMessage(CLIENT_EVENTS.moderationUnban)
  unban(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.moderationUnban> {
    return this.moderation.act(conn.user.userId, 'unban', data);
  }

  @SubscribeMessage(CLIENT_EVENTS.moderationKick)
  kick(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.moderationKick> {
    return this.moderation.act(conn.user.userId, 'kick', data);
  }

  @SubscribeMessage(CLIENT_EVENTS.moderationList)
  moderationList(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.moderationList> {
    return this.moderation.list(conn.user.userId, data);
  }

  @SubscribeMessage(CLIENT_EVENTS.authRefresh)
  async refresh(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown): Answer<typeof CLIENT_EVENTS.authRefresh> {
    const identity = await this.tokens.refresh(conn.user, data);
    conn.replaceIdentity(identity);
    return { userId: identity.userId, expiresAt: new Date(identity.expiresAt).toISOString() };
  }
}
