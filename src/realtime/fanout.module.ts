import { Module } from '@nestjs/common';
import { RoomBroadcaster } from '../chat/chat.ports.js';
import { RoomSanctionsModule } from '../chat/room-sanctions.module.js';
import { ConnectionSlots, OpenConnections } from '../presence/connection-slots.js';
import { connectionSlotsProvider } from '../presence/connection-slots.provider.js';
import { PresenceModule } from '../presence/presence.module.js';
import { InstanceRelay } from './instance-relay.js';
import { LocalConnections } from './local-connections.js';
import { RoomAccessReconciler } from './room-access-reconciler.js';
import { RoomFanout } from './room-fanout.js';
import { UserDisconnector } from './user-disconnector.js';

/**
 * This instance's connections and the fan-out to them, on this instance and through the relay between
 * instances; it implements the chat's RoomBroadcaster and OpenConnections ports, whatever transport a
 * connection came in on.
 */
@Module({
  imports: [RoomSanctionsModule, PresenceModule],
  providers: [
    LocalConnections,
    InstanceRelay,
    RoomFanout,
    RoomAccessReconciler,
    UserDisconnector,
    connectionSlotsProvider,
    { provide: RoomBroadcaster, useExisting: RoomFanout },
    { provide: OpenConnections, useExisting: LocalConnections },
  ],
  exports: [LocalConnections, InstanceRelay, RoomFanout, UserDisconnector, ConnectionSlots, RoomBroadcaster, OpenConnections],
})
export class FanoutModule {}
