import { Module } from '@nestjs/common';
import { RoomSanctions } from './room-sanctions.js';

/**
 * Mutes, bans and slow mode, on their own so that the fan-out can import them too: it drops a banned
 * user's pushes, while the chat it delivers for needs the fan-out — one module above both would be a cycle.
 */
@Module({ providers: [RoomSanctions], exports: [RoomSanctions] })
export class RoomSanctionsModule {}
