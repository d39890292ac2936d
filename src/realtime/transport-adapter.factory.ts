import { Inject, Injectable, type INestApplication } from '@nestjs/common';
import { TokenVerifier } from '../auth/token-verifier.js';
import { UserMessageCounter } from '../chat/chat.ports.js';
import { TrustedProxies } from '../common/trusted-proxies.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { AppConfig } from '../config/config.schema.js';
import { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import { ChatMetrics } from '../metrics/chat-metrics.js';
import { ConnectionSlots } from '../presence/connection-slots.js';
import { RedisClients } from '../redis/redis-clients.js';
import { Tracing } from '../tracing/tracing.js';
import { Admission } from './admission.js';
import { ChatGateway } from './chat.gateway.js';
import { DualTransportAdapter } from './dual-transport.adapter.js';
import { InstanceRelay } from './instance-relay.js';
import { HandshakeGuard } from './limits/handshake-guard.js';
import { RequestLimiter } from './limits/request-limiter.js';
import { LocalConnections } from './local-connections.js';
import { OriginPolicy } from './origin-policy.js';
import { RequestDispatcher } from './request-dispatcher.js';
import { RoomFanout } from './room-fanout.js';
import { userMessageEvents } from './user-message.decorator.js';

/**
 * Builds the one WebSocket adapter from injected providers and the configuration. The adapter
 * itself is not a provider: Nest takes it through app.useWebSocketAdapter, before the gateway
 * is bound, and needs the app to do so.
 */
@Injectable()
export class TransportAdapterFactory {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly tokens: TokenVerifier,
    private readonly gate: ShutdownGate,
    private readonly connections: LocalConnections,
    private readonly slots: ConnectionSlots,
    private readonly messageCounter: UserMessageCounter,
    private readonly metrics: ChatMetrics,
    private readonly tracing: Tracing,
    private readonly fanout: RoomFanout,
    private readonly relay: InstanceRelay,
    /** Null on a single instance (no Redis configured): socket.io keeps its in-memory adapter. */
    @Inject(RedisClients) private readonly redis: RedisClients | null,
  ) {}

  create(app: INestApplication): DualTransportAdapter {
    const { config, gate, redis } = this;
    const origins = new OriginPolicy(config.allowedOrigins, config.env !== 'production');
    return new DualTransportAdapter(app, {
      wsPath: '/ws',
      maxPayloadBytes: config.limits.maxPayloadBytes,
      maxRoomsPerConnection: config.limits.maxRoomsPerConnection,
      heartbeat: config.heartbeat,
      origins,
      admission: new Admission({
        origins,
        gate,
        slots: this.slots,
        maxConnectionsPerUser: config.limits.maxConnectionsPerUser,
        authenticate: (token) => this.tokens.verify(token),
      }),
      handshakes: new HandshakeGuard(config.handshakes, Date.now, new TrustedProxies(config.trustedProxies)),
      connectTimeoutMs: config.handshakes.connectTimeoutMs,
      dispatcher: new RequestDispatcher(
        gate,
        new RequestLimiter(config.rateLimits, this.messageCounter),
        userMessageEvents(ChatGateway),
        this.metrics,
        this.tracing,
      ),
      connections: this.connections,
      onServer: (io) => {
        if (!redis) return;
        io.adapter(redis.socketIoAdapter());
        this.relay.attach(io);
        this.fanout.relayThrough(redis);
      },
    });
  }
}
