import { Module } from '@nestjs/common';
import { ChatModule } from '../chat.module.js';
import { CommandsController } from './commands.controller.js';

/**
 * Commands in over Nest's Redis transport (chat.message.send, chat.room.upsert, chat.member.add,
 * chat.member.remove). Loaded only with REDIS_URL; main.ts connects the ClaimingRedisServer that
 * delivers them.
 */
@Module({
  imports: [ChatModule],
  controllers: [CommandsController],
})
export class CommandsModule {}
