import { Injectable } from '@nestjs/common';
import type { DefaultEventsMap, Server } from 'socket.io';
import type { RemovalReason, ServerEvent, ServerEventMap } from '../chat/chat.events.js';
import type { Eviction } from './room-channels.js';

/** A banned or kicked user, taken out of a room on every instance. */
export type Removal = { userId: string; reason: RemovalReason };

/**
 * Everything one instance tells the others, by the socket.io adapter's serverSideEmit, and what
 * each carries. The names are on the wire between replicas: a rolling update runs two versions
 * side by side, so a name is added beside an old one, never renamed.
 */
export interface InstanceEvents {
  /** A push for the room's members (RoomFanout; on a Redis Cluster the room's channel carries it instead). */
  'chat:room-event': (roomId: string, event: ServerEvent, data: ServerEventMap[ServerEvent]) => void;
  /** The same, skipping one user's connections (typing). */
  'chat:room-event-to-others': (roomId: string, event: ServerEvent, data: ServerEventMap[ServerEvent], exceptUserId: string) => void;
  'chat:room-evict': (roomId: string, who: Eviction) => void;
  /** Asks every instance to re-read membership: sent after evictions that left while Redis was away. */
  'chat:membership-reconcile': () => void;
  /**
   * A room's mutes or bans changed (and who leaves it, for a ban or a kick). By serverSideEmit on
   * a cluster too: the one event every instance acknowledges, which the moderator's answer waits for.
   */
  'chat:room-moderated': (roomId: string, removal: Removal | null, confirm: () => void) => void;
  /** Close every connection of the user (POST /v1/users/{userId}/disconnect). */
  'chat:user-disconnect': (userId: string) => void;
}

type EventName = keyof InstanceEvents;
/** The events whose listeners confirm (their last argument). */
type ConfirmedEvent = { [E in EventName]: Parameters<InstanceEvents[E]> extends [...unknown[], () => void] ? E : never }[EventName];
type ArgsBeforeConfirm<E extends EventName> = Parameters<InstanceEvents[E]> extends [...infer A, () => void] ? A : never;
type InstanceServer = Server<DefaultEventsMap, DefaultEventsMap, InstanceEvents>;
/** What serverSideEmit takes once `send` and `sendConfirmed` have typed the arguments. */
type Emit = (event: EventName, ...args: unknown[]) => boolean;

/**
 * The one way instances talk to each other outside a room's pushes: the socket.io adapter over
 * Redis. Off (sends nothing, hears nothing) until the transport adapter attaches a server whose
 * adapter spans instances; listeners registered before that are added then.
 */
@Injectable()
export class InstanceRelay {
  private io: InstanceServer | null = null;
  private readonly pending: [EventName, InstanceEvents[EventName]][] = [];

  /** Only with an adapter that spans instances (Redis): the in-process one would send to nobody. */
  attach(io: Server): void {
    this.io = io as unknown as InstanceServer;
    for (const [event, listener] of this.pending.splice(0)) this.io.on(event, listener);
  }

  get attached(): boolean {
    return this.io !== null;
  }

  on<E extends EventName>(event: E, listener: InstanceEvents[E]): void {
    if (this.io) this.io.on(event, listener as never);
    else this.pending.push([event, listener]);
  }

  /** Fire and forget: while Redis is away the others miss it. */
  send<E extends Exclude<EventName, ConfirmedEvent>>(event: E, ...args: Parameters<InstanceEvents[E]>): void {
    if (this.io) (this.io.serverSideEmit as Emit).call(this.io, event, ...args);
  }

  /**
   * Sends an event that every other instance confirms and waits for them: null once they all did
   * (or when there is nobody to tell), otherwise why not, after `timeoutMs` at most. The adapter
   * drops the callback when it cannot even count the instances (Redis down): hence our own bound.
   */
  sendConfirmed<E extends ConfirmedEvent>(event: E, args: ArgsBeforeConfirm<E>, timeoutMs: number): Promise<string | null> {
    const io = this.io;
    if (!io) return Promise.resolve(null);
    return new Promise((resolve) => {
      const bound = setTimeout(() => resolve(`no confirmation within ${timeoutMs} ms`), timeoutMs);
      const confirmed = (err: Error | null) => {
        clearTimeout(bound);
        resolve(err ? err.message : null);
      };
      (io.serverSideEmit as Emit).call(io, event, ...args, confirmed);
    });
  }
}
