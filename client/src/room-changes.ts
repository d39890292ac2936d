import type { Message } from './types.js';

/**
 * One joined room's change bookkeeping (protocol "Message changes").
 *
 * `upTo` is the modSeq up to which every change of the room has been applied: the cursor the
 * rejoin sends as sinceModSeq. modSeq is gap-free per room and every change is pushed, so a value
 * seen above a missing one waits in `ahead` until the missing one arrives or a catch-up read to
 * the end covers it; jumping to the highest value seen would skip a lost push for good.
 *
 * `held` keeps, per seq, the highest modSeq the client has delivered, so a state that arrives
 * after a newer one (pushes and catch-up may overlap in any order) is dropped.
 */
export class RoomChanges {
  /** Unknown until the first join answered. */
  upTo: number | null = null;
  private readonly ahead = new Set<number>();
  private readonly held = new Map<number, number>();

  /** Records that change `modSeq` was seen: its state was applied, or a newer one of the same message was. */
  note(modSeq: number): void {
    if (this.upTo !== null && modSeq <= this.upTo) return;
    this.ahead.add(modSeq);
    this.advance();
  }

  /** Every change up to `modSeq` is applied: the first join's starting point, or the end of a catch-up read. */
  reach(modSeq: number): void {
    if (this.upTo !== null && modSeq <= this.upTo) return;
    this.upTo = modSeq;
    for (const v of this.ahead) if (v <= modSeq) this.ahead.delete(v);
    this.advance();
  }

  /** True while changes were seen above a missing modSeq. */
  get hasGap(): boolean {
    return this.upTo !== null && this.ahead.size > 0;
  }

  /** True when `m` is newer than the state held for its seq, which it then becomes. */
  take(m: Message): boolean {
    const held = this.held.get(m.seq);
    if (held !== undefined && held >= m.modSeq) return false;
    this.held.set(m.seq, m.modSeq);
    return true;
  }

  private advance(): void {
    if (this.upTo === null) return;
    while (this.ahead.delete(this.upTo + 1)) this.upTo++;
  }
}
