/**
 * The socket.io room that carries a chat room's pushes. socket.io puts every socket in a room named
 * by its own id, so a chat room used as is could be named like another connection's socket id
 * and get that socket's personal emits (or that socket the room's pushes). Socket ids never
 * contain ':', so the prefix keeps the two name spaces apart.
 */
export function ioRoom(roomId: string): string {
  return `room:${roomId}`;
}
