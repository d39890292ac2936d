import { ChatConnection, type CloseReason, type RequestListener } from './chat-connection.js';

let nextId = 0;

/** A connection for unit tests: pushes go nowhere, and closing or terminating it tells its close listeners. */
export class FakeConnection extends ChatConnection {
  constructor(userId: string) {
    super(`fake-${++nextId}`, 'ws', { userId, name: null, expiresAt: Date.now() + 3600e3 }, 10);
  }
  push(_event: string, _data: unknown): void {}
  protected subscribe(): void {}
  protected unsubscribe(): void {}
  onRequest(_listener: RequestListener): void {}
  bufferedBytes(): number {
    return 0;
  }
  terminate(): void {
    this.notifyClosed('terminated');
  }
  close(reason: CloseReason): void {
    this.notifyClosed(reason);
  }
}
