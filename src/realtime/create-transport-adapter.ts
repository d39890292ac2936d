import type { INestApplication } from '@nestjs/common';
import { TokenVerifier } from '../auth/token-verifier.js';
import type { AppConfig } from '../config/config.schema.js';
import { ShutdownGate } from '../lifecycle/shutdown-gate.js';
import { ChatMetrics } from '../metrics/chat-metrics.js';
import { RedisClients } from '../redis/redis-clients.js';
import { RedisUserMessageCounter } from '../redis/user-window-counter.js';
import { Admission } from './admission.js';
import { ConnectionSlots } from '../presence/connection-slots.js';
import { DualTransportAdapter } from './dual-transport.adapter.js';
import { HandshakeGuard } from './limits/handshake-guard.js';
import { RequestLimiter } from './limits/request-limiter.js';
import { LocalConnections } from './local-connections.js';
import { OriginPolicy } from './origin-policy.js';
import { RequestDispatcher } from './request-dispatcher.js';
import { Tracing } from '../tracing/tracing.js';
import { RoomFanout } from './room-fanout.js';
import { InstanceRelay } from './instance-relay.js';
import { TrustedProxies } from '../common/trusted-proxies.js';

/** Builds the one WebSocket adapter from the app's providers and the configuration. */
export function createTransportAdapter(app: INestApplication, config: AppConfig): DualTransportAdapter {
  const tokens = app.get(TokenVerifier);
  const gate = app.get(ShutdownGate);
  const connections = app.get(LocalConnections);
  const redis = app.get(RedisClients);
  const fanout = app.get(RoomFanout);
  const relay = app.get(InstanceRelay);
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
      slots: app.get(ConnectionSlots),
      maxConnectionsPerUser: config.limits.maxConnectionsPerUser,
      authenticate: (token) => tokens.verify(token),
    }),
    handshakes: new HandshakeGuard(config.handshakes, Date.now, new TrustedProxies(config.trustedProxies)),
    connectTimeoutMs: config.handshakes.connectTimeoutMs,
    dispatcher: new RequestDispatcher(
      gate,
      new RequestLimiter(config.rateLimits, app.get(RedisUserMessageCounter)),
      app.get(ChatMetrics),
      app.get(Tracing),
    ),
    connections,
    onServer: (io) => {
      if (!redis) return;
      io.adapter(redis.socketIoAdapter());
      relay.attach(io);
      fanout.relayThrough(redis);
    },
  });
}
