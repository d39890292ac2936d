import { Emitter } from './emitter.js';
import type {
  BanOptions,
  ChangesPage,
  ChatClient,
  HistoryOptions,
  Message,
  ModerationList,
  RoomEvents,
  RoomHandle,
  RoomInfo,
  SendOptions,
} from './types.js';

/** client.room(roomId): forwards each request with the room's id; the client feeds `events` with that room's events. */
export class RoomHandleImpl implements RoomHandle {
  readonly events = new Emitter<RoomEvents>();

  constructor(
    private readonly client: ChatClient,
    readonly roomId: string,
  ) {}

  on<K extends keyof RoomEvents>(event: K, fn: (payload: RoomEvents[K]) => void): () => void {
    return this.events.on(event, fn);
  }

  join(): Promise<RoomInfo> {
    return this.client.join(this.roomId);
  }

  leave(): Promise<void> {
    return this.client.leave(this.roomId);
  }

  send(body: string, opts?: SendOptions): Promise<Message> {
    return this.client.send(this.roomId, body, opts);
  }

  history(opts?: HistoryOptions): Promise<{ messages: Message[]; hasMore: boolean }> {
    return this.client.history(this.roomId, opts);
  }

  changes(opts: { afterModSeq: number; limit?: number }): Promise<ChangesPage> {
    return this.client.changes(this.roomId, opts);
  }

  edit(seq: number, body: string, opts?: { mentions?: string[]; expectedVersion?: number }): Promise<Message> {
    return this.client.edit(this.roomId, seq, body, opts);
  }

  delete(seq: number): Promise<Message> {
    return this.client.delete(this.roomId, seq);
  }

  react(seq: number, key: string): Promise<Message> {
    return this.client.react(this.roomId, seq, key);
  }

  unreact(seq: number, key: string): Promise<Message> {
    return this.client.unreact(this.roomId, seq, key);
  }

  presence(): Promise<string[]> {
    return this.client.presence(this.roomId);
  }

  typing(typing: boolean): Promise<void> {
    return this.client.typing(this.roomId, typing);
  }

  markRead(seq: number): Promise<number> {
    return this.client.markRead(this.roomId, seq);
  }

  lastModSeq(): number | null {
    return this.client.lastModSeq(this.roomId);
  }

  mute(userId: string, opts?: { durationMs?: number }): Promise<void> {
    return this.client.mute(this.roomId, userId, opts);
  }

  unmute(userId: string): Promise<void> {
    return this.client.unmute(this.roomId, userId);
  }

  ban(userId: string, opts?: BanOptions): Promise<void> {
    return this.client.ban(this.roomId, userId, opts);
  }

  unban(userId: string): Promise<void> {
    return this.client.unban(this.roomId, userId);
  }

  kick(userId: string): Promise<void> {
    return this.client.kick(this.roomId, userId);
  }

  sanctions(): Promise<ModerationList> {
    return this.client.sanctions(this.roomId);
  }
}
