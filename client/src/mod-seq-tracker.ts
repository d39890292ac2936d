/**
 * How far one joined room's changes have been applied. `modSeq` is gap-free per room and every
 * value is pushed once (creations as `message.new`, every other change as `message.updated`), so
 * `upTo` is the highest modSeq up to which every change has been seen; values seen beyond a gap
 * wait in `ahead`. After a reconnect `upTo` is the `sinceModSeq` to catch up from.
 */
export class ModSeqTracker {
  /** Unknown until the first join answered. */
  upTo: number | null = null;
  private readonly ahead = new Set<number>();

  /** The first join's `lastModSeq`: everything up to it is the room's past, read with the history. */
  start(lastModSeq: number): void {
    if (this.upTo === null) this.advanceTo(lastModSeq);
  }

  /** A change seen live. */
  see(modSeq: number): void {
    if (this.upTo !== null && modSeq <= this.upTo) return;
    this.ahead.add(modSeq);
    this.drain();
  }

  /** Everything up to `modSeq` has been applied from `message.changes` (or a join's `changes`). */
  advanceTo(modSeq: number): void {
    this.upTo = Math.max(this.upTo ?? 0, modSeq);
    for (const v of this.ahead) if (v <= this.upTo) this.ahead.delete(v);
    this.drain();
  }

  /** True while changes wait behind a missing modSeq. */
  get hasGap(): boolean {
    return this.ahead.size > 0;
  }

  private drain(): void {
    if (this.upTo === null) return;
    while (this.ahead.delete(this.upTo + 1)) this.upTo++;
  }
}
