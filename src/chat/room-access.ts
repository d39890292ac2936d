import { ChatError } from './chat.errors.js';
import type { ChatStore, RoomAccess } from './chat.ports.js';

/** The access a user was given, or FORBIDDEN for a non-member of a private room. */
export function allow(access: RoomAccess | null): RoomAccess {
  if (!access) throw new ChatError('UNAVAILABLE', 'room vanished, try again');
  if (access.visibility === 'private' && !access.isMember) throw forbidden();
  return access;
}

/**
 * For requests that need no join (history, typing, presence): FORBIDDEN for a non-member of a
 * private room; a room that does not exist yet acts as an empty public room.
 */
export async function checkAccess(store: ChatStore, roomId: string, userId: string): Promise<void> {
  const access = await store.roomAccess(roomId, userId);
  if (access?.visibility === 'private' && !access.isMember) throw forbidden(roomId);
}

export function forbidden(roomId?: string): ChatError {
  return new ChatError('FORBIDDEN', roomId ? `not a member of private room ${roomId}` : 'not a member of this private room');
}

export function notFound(roomId: string): never {
  throw new ChatError('NOT_FOUND', `room ${roomId} does not exist`);
}
