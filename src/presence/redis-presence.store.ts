import { Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { ChatError } from '../chat/chat.errors.js';
import { PresenceStore, type PresenceChange } from '../chat/chat.ports.js';
import type { RedisClients } from '../redis/redis-clients.js';
import type { RedisConnection } from '../redis/redis-connection.js';
import { ENTER, EXIT, HEARTBEAT, SWEEP } from './presence-scripts.js';

/** How long presence.list waits for Redis before answering UNAVAILABLE. */
const LIST_TIMEOUT_MS = 1000;
/** How long startup waits for Redis before registering the lease anyway (it retries on every beat). */
const BOOT_READY_WAIT_MS = 5000;

type PresenceRedis = RedisConnection & {
  chatPresenceEnter(conns: string, users: string, set: string, instances: string, ...argv: string[]): Promise<number>;
  chatPresenceExit(conns: string, users: string, set: string, ...argv: string[]): Promise<string | null>;
  chatPresenceHeartbeat(instances: string, instanceId: string, leaseMs: number): Promise<number>;
  chatPresenceSweep(instances: string, base: string, ...instanceId: string[]): Promise<string[]>;
};

const member = (roomId: string, connectionId: string) => `${roomId}\n${connectionId}`;

/**
 * Presence shared by every instance through Redis (layout and atomicity: presence-scripts.ts).
 * Each instance renews a lease every leaseMs/3 and, on the same beat, drops the connections of
 * instances whose lease expired (a crash, a kill), reporting their users' `left`: so a dead
 * instance's users leave within about 4/3 of the lease.
 *
 * Redis trouble never fails a join: while Redis is unreachable nothing is written, and this
 * instance keeps its own connections' rooms in memory. After any failed write, or when its
 * lease was lost (swept while cut off, or Redis restarted empty), the next beat reconciles Redis
 * with that memory, entering what is missing and removing what is gone (with the pushes that
 * changes).
 */
export class RedisPresenceStore extends PresenceStore implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Presence');
  readonly instanceId = randomUUID();
  private readonly redis: PresenceRedis;
  /** Every presence key starts with this (RedisNames: hash-tagged on a cluster). */
  private readonly base: string;
  private readonly instances: string;
  private readonly ownSet: string;
  /** What this instance entered: "roomId\nconnectionId" → userId. The truth reconcile restores. */
  private readonly local = new Map<string, string>();
  private readonly listeners: ((change: PresenceChange) => void)[] = [];
  private readonly leaseListeners: ((regained: boolean) => Promise<void>)[] = [];
  private timer: NodeJS.Timeout | null = null;
  private beating: Promise<void> | null = null;
  private needsReconcile = false;

  constructor(
    private readonly clients: RedisClients,
    private readonly leaseMs: number,
  ) {
    super();
    this.redis = clients.pub as PresenceRedis;
    this.base = clients.names.presence;
    this.instances = `${this.base}:instances`;
    this.ownSet = `${this.base}:instance:${this.instanceId}`;
    this.redis.defineCommand('chatPresenceEnter', { numberOfKeys: 4, lua: ENTER });
    this.redis.defineCommand('chatPresenceExit', { numberOfKeys: 3, lua: EXIT });
    this.redis.defineCommand('chatPresenceHeartbeat', { numberOfKeys: 1, lua: HEARTBEAT });
    this.redis.defineCommand('chatPresenceSweep', { numberOfKeys: 1, lua: SWEEP });
  }

  async onApplicationBootstrap(): Promise<void> {
    // The first beat registers the lease that admissions and entries check; a beat on a client
    // that is not ready yet does nothing, so without this wait the service would listen with no
    // lease for a whole beat interval.
    await this.clients.whenReady(BOOT_READY_WAIT_MS);
    await this.beat();
    this.timer = setInterval(() => void this.beat(), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  /** Leaves at once instead of waiting for the lease to run out (connections may not close first). */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!this.clients.ready) return;
    const released = await withTimeout(this.redis.chatPresenceSweep(this.instances, this.base, this.instanceId), LIST_TIMEOUT_MS);
    if (released) this.reportLeft(released);
  }

  enter(roomId: string, userId: string, connectionId: string): void {
    const m = member(roomId, connectionId);
    if (this.local.has(m)) return;
    this.local.set(m, userId);
    this.write(m, userId);
  }

  exit(roomId: string, connectionId: string): void {
    const m = member(roomId, connectionId);
    if (!this.local.delete(m)) return;
    this.remove(m);
  }

  async list(roomId: string): Promise<string[]> {
    const users = this.clients.ready ? await withTimeout(this.redis.hkeys(this.usersKey(roomId)), LIST_TIMEOUT_MS) : null;
    if (!users) throw new ChatError('UNAVAILABLE', 'presence is unavailable for now, try again');
    return users.sort();
  }

  onChange(listener: (change: PresenceChange) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Called on every beat once the lease is renewed, before the sweep; `regained` when the instance
   * had none (swept while cut off, Redis emptied). For others that keep entries under this lease
   * (the connection cap's slots) and restore them then.
   */
  onLeaseRenewed(listener: (regained: boolean) => Promise<void>): void {
    this.leaseListeners.push(listener);
  }

  /** Renews the lease, reconciles when needed, and drops instances whose lease expired. Never overlaps itself. */
  beat(): Promise<void> {
    this.beating ??= this.renewAndSweep()
      .catch((err: Error) => {
        this.needsReconcile = true;
        this.logger.warn(`presence heartbeat failed: ${err.message}`);
      })
      .finally(() => (this.beating = null));
    return this.beating;
  }

  private async renewAndSweep(): Promise<void> {
    if (!this.clients.ready) {
      this.needsReconcile = true;
      return;
    }
    const fresh = await this.redis.chatPresenceHeartbeat(this.instances, this.instanceId, this.leaseMs);
    if (fresh === 1 || this.needsReconcile) await this.reconcile();
    for (const listener of this.leaseListeners) await listener(fresh === 1);
    this.reportLeft(await this.redis.chatPresenceSweep(this.instances, this.base));
  }

  /** Makes this instance's entries in Redis match `local`. */
  private async reconcile(): Promise<void> {
    this.needsReconcile = false;
    const stored = new Set(await this.redis.smembers(this.ownSet));
    for (const [m, userId] of this.local) if (!stored.has(m)) this.write(m, userId);
    for (const m of stored) if (!this.local.has(m)) this.remove(m);
  }

  private write(m: string, userId: string): void {
    if (!this.clients.ready) return void (this.needsReconcile = true);
    const [roomId, connectionId] = split(m);
    this.redis
      .chatPresenceEnter(
        this.connsKey(roomId),
        this.usersKey(roomId),
        this.ownSet,
        this.instances,
        connectionId,
        userId,
        m,
        this.instanceId,
      )
      .then((outcome) => {
        if (outcome === 1) this.emit({ kind: 'joined', roomId, userId });
        if (outcome === -1) {
          // The lease is gone: the next beat re-registers and reconciles; do it now, not in leaseMs/3.
          this.needsReconcile = true;
          void this.beat();
        }
      })
      .catch((err: Error) => this.failed(err));
  }

  private remove(m: string): void {
    if (!this.clients.ready) return void (this.needsReconcile = true);
    const [roomId, connectionId] = split(m);
    this.redis
      .chatPresenceExit(this.connsKey(roomId), this.usersKey(roomId), this.ownSet, connectionId, m)
      .then((userId) => {
        if (userId !== null) this.emit({ kind: 'left', roomId, userId });
      })
      .catch((err: Error) => this.failed(err));
  }

  private failed(err: Error): void {
    if (!this.needsReconcile) this.logger.warn(`presence update failed, reconciling on the next heartbeat: ${err.message}`);
    this.needsReconcile = true;
  }

  private reportLeft(flat: string[]): void {
    for (let i = 0; i + 1 < flat.length; i += 2) this.emit({ kind: 'left', roomId: flat[i], userId: flat[i + 1] });
  }

  private emit(change: PresenceChange): void {
    for (const l of this.listeners) l(change);
  }

  private connsKey(roomId: string): string {
    return `${this.base}:conns:${roomId}`;
  }

  private usersKey(roomId: string): string {
    return `${this.base}:users:${roomId}`;
  }
}

function split(m: string): [string, string] {
  const sep = m.indexOf('\n');
  return [m.slice(0, sep), m.slice(sep + 1)];
}

/** The promise's value, or null when it fails or takes longer than `ms`. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  try {
    return await Promise.race([promise.catch(() => null), late]);
  } finally {
    clearTimeout(timer);
  }
}
