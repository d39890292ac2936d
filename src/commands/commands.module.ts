import { Module } from '@nestjs/common';
import { CommandsController } from './commands.controller.js';

/**
 * Commands in over Nest's Redis transport (`<REDIS_PREFIX>.message.send`, `.room.upsert`,
 * `.member.add`, `.member.remove`; `chat.*` with the default prefix). Loaded only with REDIS_URL;
 * main.ts connects the ClaimingRedisServer that delivers them. ChatService comes from the global ChatModule.
 */
@Module({
  controllers: [CommandsController],
})
export class CommandsModule {}
