import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { RedisClients } from '../redis/redis-clients.js';
import type { RedisConnection } from '../redis/redis-connection.js';
import { ConnectionSlots, type OpenConnections, type SlotHolder } from './connection-slots.js';
import { FREE_SLOT, PUT_SLOT, TAKE_SLOT } from './presence-scripts.js';
import type { RedisPresenceStore } from './redis-presence.store.js';

/**
 * How long a handshake waits for Redis to decide. While Redis is dying a command can sit in
 * ioredis's queue until a reconnect (on a cluster, up to 8 s of failover retries). Long enough
 * that a merely busy Redis (or a busy host) still decides: a shorter wait let a third connection
 * through on a loaded CI machine, since the fallback counts this instance's slots alone.
 */
const DECIDE_TIMEOUT_MS = 1000;
/**
 * A reserved slot no connection took this long after admission is freed: the client went away
 * between admission and the upgrade (or the socket.io CONNECT), which normally follow at once.
 */
const UNCLAIMED_MS = 5000;

type SlotsRedis = RedisConnection & {
  chatSlotTake(userConns: string, instanceConns: string, instances: string, ...argv: (string | number)[]): Promise<number>;
  chatSlotPut(userConns: string, instanceConns: string, instances: string, ...argv: string[]): Promise<number>;
  chatSlotFree(userConns: string, instanceConns: string, ...argv: string[]): Promise<number>;
};

const member = (slot: string, userId: string) => `${slot}\n${userId}`;

/** `promise`'s value, or null when it fails or has not settled by `deadline` (epoch ms). */
function byDeadline<T>(promise: Promise<T>, deadline: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), Math.max(0, deadline - Date.now()))));
  return Promise.race([promise.catch(() => null), late]).finally(() => clearTimeout(timer));
}

/**
 * MAX_CONNECTIONS_PER_USER over every instance sharing the Redis: each connection holds a slot
 * in the user's hash under the presence base, tagged with the instance that admitted it, and a
 * slot counts only while that instance's presence lease is live. So a killed instance's
 * connections stop counting when its lease runs out (PRESENCE_LEASE_MS), and the sweep removes
 * them. Layout and the atomic check-and-take: presence-scripts.ts.
 *
 * When Redis does not decide in DECIDE_TIMEOUT_MS (unreachable, slow, this instance's lease
 * lost) the handshake is decided on this instance's own slots, and that is logged once: the cap
 * loosens during an outage rather than refusing every user. Slots written meanwhile are put
 * right on the next lease beat, as presence entries are.
 */
export class RedisConnectionSlots extends ConnectionSlots {
  private readonly logger = new Logger('ConnectionCap');
  private readonly redis: SlotsRedis;
  private readonly base: string;
  private readonly instances: string;
  private readonly ownSet: string;
  /** This instance's slots, held by open connections or reserved: slot → userId. The truth reconcile restores. */
  private readonly local = new Map<string, string>();
  private readonly perUser = new Map<string, number>();
  /** Reserved slots no connection took yet, per user, oldest first: any of them fits the user's next connection. */
  private readonly unclaimed = new Map<string, { slot: string; timer: NodeJS.Timeout }[]>();
  /** Slots whose take is still on its way to Redis: reconcile leaves them alone. */
  private readonly inFlight = new Set<string>();
  private needsReconcile = false;
  private degraded = false;

  constructor(
    private readonly clients: RedisClients,
    private readonly lease: RedisPresenceStore,
    connections: OpenConnections,
  ) {
    super();
    this.redis = clients.pub as SlotsRedis;
    this.base = clients.names.presence;
    this.instances = `${this.base}:instances`;
    this.ownSet = `${this.base}:instance-conns:${lease.instanceId}`;
    this.redis.defineCommand('chatSlotTake', { numberOfKeys: 3, lua: TAKE_SLOT });
    this.redis.defineCommand('chatSlotPut', { numberOfKeys: 3, lua: PUT_SLOT });
    this.redis.defineCommand('chatSlotFree', { numberOfKeys: 2, lua: FREE_SLOT });
    connections.onAdded((conn) => this.claim(conn));
    lease.onLeaseRenewed((regained) => (regained || this.needsReconcile ? this.reconcile() : Promise.resolve()));
  }

  async reserve(userId: string, max: number): Promise<boolean> {
    const slot = randomUUID();
    const decided = this.clients.ready ? await this.take(slot, userId, max) : null;
    if (decided !== null) {
      if (this.degraded) this.logger.log('Redis decides the connection cap again');
      this.degraded = false;
      if (decided) this.hold(slot, userId);
      // Only now: until `local` has the slot, a reconcile must not take it for a stray one.
      this.inFlight.delete(slot);
      return decided;
    }
    if (!this.degraded) this.logger.warn('Redis did not decide the connection cap in time; counting per instance until it does');
    this.degraded = true;
    this.needsReconcile = true;
    if ((this.perUser.get(userId) ?? 0) >= max) return false;
    this.hold(slot, userId);
    return true;
  }

  /** true taken, false refused, null when Redis did not decide in time (or this instance has no lease). */
  private async take(slot: string, userId: string, max: number): Promise<boolean | null> {
    this.inFlight.add(slot);
    const deadline = Date.now() + DECIDE_TIMEOUT_MS;
    let outcome = await this.ask(slot, userId, max, deadline);
    if (outcome === -1) {
      // No lease: lost, or not registered yet (a cluster client is ready only once it has loaded
      // the slot map, and a beat skips an unready client). Deciding locally would let a user's
      // connections on other instances go uncounted, so register it and ask again in the same wait.
      await byDeadline(this.lease.beat(), deadline);
      outcome = await this.ask(slot, userId, max, deadline);
    }
    if (outcome === 0 || outcome === 1) return outcome === 1;
    // Re-registers the lease; the reconcile that follows restores this instance's slots.
    if (outcome === -1) void this.lease.beat();
    return null;
  }

  /** One check-and-take: 1, 0, -1 as TAKE_SLOT answers, or null when it fails or has not answered by `deadline`. */
  private async ask(slot: string, userId: string, max: number, deadline: number): Promise<number | null> {
    const taking = this.redis.chatSlotTake(
      this.userKey(userId),
      this.ownSet,
      this.instances,
      slot,
      this.lease.instanceId,
      max,
      member(slot, userId),
    );
    const outcome = await byDeadline(taking, deadline);
    if (outcome === null) {
      // A take that lands after the deadline may leave a slot this instance does not hold: reconcile removes it.
      const settled = () => {
        this.inFlight.delete(slot);
        this.needsReconcile = true;
      };
      void taking.then(settled, settled);
    }
    return outcome;
  }

  /** Keeps a reserved slot until the user's next connection here takes it, or UNCLAIMED_MS pass. */
  private hold(slot: string, userId: string): void {
    this.local.set(slot, userId);
    this.perUser.set(userId, (this.perUser.get(userId) ?? 0) + 1);
    let queue = this.unclaimed.get(userId);
    if (!queue) this.unclaimed.set(userId, (queue = []));
    const timer = setTimeout(() => {
      const q = this.unclaimed.get(userId);
      const i = q?.findIndex((u) => u.slot === slot) ?? -1;
      if (i < 0) return;
      q!.splice(i, 1);
      if (!q!.length) this.unclaimed.delete(userId);
      this.free(slot, userId);
    }, UNCLAIMED_MS);
    timer.unref();
    queue.push({ slot, timer });
  }

  /** An opened connection takes its user's oldest reserved slot and frees it when it closes. */
  private claim(conn: SlotHolder): void {
    const userId = conn.user.userId;
    const queue = this.unclaimed.get(userId);
    const reserved = queue?.shift();
    if (queue && !queue.length) this.unclaimed.delete(userId);
    let slot: string;
    if (reserved) {
      clearTimeout(reserved.timer);
      slot = reserved.slot;
    } else {
      // Its reservation ran out before the connection opened (a very slow CONNECT): it is open, so it counts.
      slot = randomUUID();
      this.local.set(slot, userId);
      this.perUser.set(userId, (this.perUser.get(userId) ?? 0) + 1);
      this.put(slot, userId);
    }
    conn.onClose(() => this.free(slot, userId));
  }

  private put(slot: string, userId: string): void {
    if (!this.clients.ready) return void (this.needsReconcile = true);
    this.redis
      .chatSlotPut(this.userKey(userId), this.ownSet, this.instances, slot, this.lease.instanceId, member(slot, userId))
      .then((outcome) => {
        if (outcome === -1) this.needsReconcile = true;
      })
      .catch((err: Error) => this.failed(err));
  }

  private free(slot: string, userId: string): void {
    if (!this.local.delete(slot)) return;
    const left = (this.perUser.get(userId) ?? 1) - 1;
    if (left > 0) this.perUser.set(userId, left);
    else this.perUser.delete(userId);
    this.remove(slot, userId);
  }

  private remove(slot: string, userId: string): void {
    if (!this.clients.ready) return void (this.needsReconcile = true);
    this.redis
      .chatSlotFree(this.userKey(userId), this.ownSet, slot, this.lease.instanceId, member(slot, userId))
      .catch((err: Error) => this.failed(err));
  }

  /** Makes this instance's slots in Redis match `local` (called on a lease beat, so the lease is there). */
  private async reconcile(): Promise<void> {
    const members = await this.redis.smembers(this.ownSet);
    this.needsReconcile = false;
    const stored = new Map<string, string>();
    for (const m of members) {
      const sep = m.indexOf('\n');
      stored.set(m.slice(0, sep), m.slice(sep + 1));
    }
    for (const [slot, userId] of this.local) if (!stored.has(slot) && !this.inFlight.has(slot)) this.put(slot, userId);
    for (const [slot, userId] of stored) if (!this.local.has(slot) && !this.inFlight.has(slot)) this.remove(slot, userId);
  }

  private failed(err: Error): void {
    if (!this.needsReconcile) this.logger.warn(`connection cap update failed, reconciling on the next heartbeat: ${err.message}`);
    this.needsReconcile = true;
  }

  private userKey(userId: string): string {
    return `${this.base}:user-conns:${userId}`;
  }
}
