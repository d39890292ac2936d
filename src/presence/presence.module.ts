import { Module } from '@nestjs/common';
import { PresenceStore } from '../chat/chat.ports.js';
import { presenceStoreProvider } from './presence-store.provider.js';

/** Who is in which room, over every instance: the PresenceStore port for the chat and the connection cap. */
@Module({ providers: [presenceStoreProvider], exports: [PresenceStore] })
export class PresenceModule {}
