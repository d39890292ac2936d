import { Module } from '@nestjs/common';
import { FanoutModule } from '../realtime/fanout.module.js';
import { ApiKeyGuard } from './api-key.guard.js';
import { MessageChangesController } from './message-changes.controller.js';
import { MessagesController } from './messages.controller.js';
import { RoomsController } from './rooms.controller.js';
import { UsersController } from './users.controller.js';

/** The HTTP API under /v1 for other backend services (X-API-Key): the global chat, and the fan-out to disconnect a user's sockets. */
@Module({
  imports: [FanoutModule],
  controllers: [RoomsController, MessagesController, MessageChangesController, UsersController],
  providers: [ApiKeyGuard],
})
export class HttpApiModule {}
