import { Module } from '@nestjs/common';
import { TokenVerifier } from '../auth/token-verifier.js';
import { ChatGateway } from './chat.gateway.js';
import { ConnectionSupervisor } from './connection-supervisor.js';
import { FanoutModule } from './fanout.module.js';
import { TransportAdapterFactory } from './transport-adapter.factory.js';

/**
 * The chat over sockets: one gateway for socket.io and raw WebSocket, the adapter that serves both on the
 * HTTP server's port (main.ts installs it through TransportAdapterFactory), and the supervisor of idle sockets.
 */
@Module({
  imports: [FanoutModule],
  providers: [ChatGateway, ConnectionSupervisor, TransportAdapterFactory, TokenVerifier],
})
export class RealtimeModule {}
