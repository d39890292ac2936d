import type { Message } from './types.js';

/**
 * One joined room's delivery order. `upTo` is the highest seq up to which every message has been
 * delivered; messages beyond a gap wait in `early` until the gap is filled (from later pushes or
 * the history), so listeners see each message once and in seq order.
 */
export class RoomStream {
  /** Unknown until the first join answered: messages seen before that are buffered. */
  upTo: number | null = null;
  private readonly early = new Map<number, Message>();

  constructor(
    readonly roomId: string,
    private readonly deliver: (m: Message) => void,
  ) {}

  /**
   * Takes a message from any source (push, send reply, missed, history or changes page). Of two
   * states of one waiting message the one with the higher modSeq is kept: it is delivered once, in
   * the newest state known when its turn comes.
   */
  accept(m: Message): void {
    if (this.upTo !== null && m.seq <= this.upTo) return;
    const waiting = this.early.get(m.seq);
    if (!waiting || waiting.modSeq < m.modSeq) this.early.set(m.seq, m);
    this.drain();
  }

  /** Sets the starting point of a first join: messages up to `lastSeq` are the room's past, not news. */
  start(lastSeq: number): void {
    if (this.upTo !== null) return;
    this.upTo = lastSeq;
    for (const seq of this.early.keys()) if (seq <= lastSeq) this.early.delete(seq);
    this.drain();
  }

  /** Gives up on the messages up to `seq` (a rejoin too far behind): delivery goes on after it. */
  skipTo(seq: number): void {
    if (this.upTo === null || seq <= this.upTo) return;
    this.upTo = seq;
    for (const s of this.early.keys()) if (s <= seq) this.early.delete(s);
    this.drain();
  }

  /** True while messages wait behind a missing seq. */
  get hasGap(): boolean {
    return this.early.size > 0;
  }

  private drain(): void {
    if (this.upTo === null) return;
    for (let next = this.early.get(this.upTo + 1); next; next = this.early.get(this.upTo + 1)) {
      this.early.delete(next.seq);
      this.upTo = next.seq;
      this.deliver(next);
    }
  }
}
