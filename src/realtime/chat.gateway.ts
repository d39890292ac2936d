import { UseFilters } from '@nestjs/common';
import { ConnectedSocket, MessageBody, SubscribeMessage, WebSocketGateway, type OnGatewayConnection } from '@nestjs/websockets';
import { CLIENT_EVENTS, SERVER_EVENTS } from '../chat/chat.events.js';
import { ChatService } from '../chat/chat.service.js';
import { ChatConnection } from './chat-connection.js';
import { ReplyExceptionFilter } from './reply-exception.filter.js';

/** The one gateway for socket.io and raw WebSocket clients; each handler delegates to ChatService. */
@WebSocketGateway()
@UseFilters(ReplyExceptionFilter)
export class ChatGateway implements OnGatewayConnection {
  constructor(private readonly chat: ChatService) {}

  handleConnection(conn: ChatConnection): void {
    conn.push(SERVER_EVENTS.session, { userId: conn.user.userId, connectionId: conn.id });
  }

  @SubscribeMessage(CLIENT_EVENTS.roomJoin)
  join(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown) {
    return this.chat.join(data, (roomId) => conn.join(roomId));
  }

  @SubscribeMessage(CLIENT_EVENTS.roomLeave)
  leave(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown) {
    return this.chat.leave(data, (roomId) => conn.leave(roomId));
  }

  @SubscribeMessage(CLIENT_EVENTS.messageSend)
  send(@ConnectedSocket() conn: ChatConnection, @MessageBody() data: unknown) {
    return this.chat.send(conn.user.userId, data);
  }

  @SubscribeMessage(CLIENT_EVENTS.messageHistory)
  history(@MessageBody() data: unknown) {
    return this.chat.history(data);
  }
}
