/** A connection as the connection cap sees it: whose it is, and when it closes. */
export interface SlotHolder {
  readonly user: { readonly userId: string };
  onClose(listener: () => void): void;
}

/**
 * This instance's open connections, as the cap needs them. The realtime layer provides it
 * (LocalConnections): presence sits below the transports and must not import them.
 */
export abstract class OpenConnections {
  abstract countForUser(userId: string): number;
  /** Every connection this instance opens, once it is open. */
  abstract onAdded(listener: (conn: SlotHolder) => void): void;
}

/**
 * The count behind MAX_CONNECTIONS_PER_USER. Admission calls `reserve` once a token is valid. A
 * count shared between instances (RedisConnectionSlots) keeps the reserved slot for the next
 * connection of that user this instance opens, and frees it when that connection closes.
 */
export abstract class ConnectionSlots {
  /** Takes one of the user's `max` slots; false when all are taken. */
  abstract reserve(userId: string, max: number): Promise<boolean>;
}

/** Without Redis the service is one instance: its own open connections are all the user has. */
export class LocalConnectionSlots extends ConnectionSlots {
  constructor(private readonly connections: OpenConnections) {
    super();
  }

  reserve(userId: string, max: number): Promise<boolean> {
    return Promise.resolve(this.connections.countForUser(userId) < max);
  }
}
