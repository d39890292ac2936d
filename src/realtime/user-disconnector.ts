import { Injectable, Logger } from '@nestjs/common';
import { InstanceRelay } from './instance-relay.js';
import { LocalConnections } from './local-connections.js';

/**
 * Closes every connection of a user on every instance, for POST /v1/users/{userId}/disconnect:
 * this instance's at once, the others' through the InstanceRelay. Connections close with the `disconnected` reason: socket.io clients get a
 * server-side disconnect and do not reconnect by themselves; raw ws clients get close code 4003.
 * Nothing stops the user from connecting again with a valid token; that is what token lifetimes are for.
 */
@Injectable()
export class UserDisconnector {
  private readonly logger = new Logger('Connections');

  constructor(
    private readonly local: LocalConnections,
    private readonly relay: InstanceRelay,
  ) {
    relay.on('chat:user-disconnect', (userId: unknown) => {
      if (typeof userId === 'string') this.disconnectLocally(userId);
    });
  }

  /** Fire and forget: while Redis is down, the other instances miss it (the HTTP answer is 202 Accepted). */
  disconnect(userId: string): void {
    this.disconnectLocally(userId);
    this.relay.send('chat:user-disconnect', userId);
  }

  private disconnectLocally(userId: string): void {
    // A copy: closing removes connections from the set being walked.
    const doomed = [...this.local.all()].filter((conn) => conn.user.userId === userId);
    for (const conn of doomed) conn.close('disconnected');
    if (doomed.length) this.logger.log(`disconnected ${doomed.length} connection(s) of user ${userId} on request of a service`);
  }
}
