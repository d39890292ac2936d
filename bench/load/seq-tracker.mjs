// What one member has received of its room, by seq, in bounded memory for any length of soak.
// Seqs are gap-free per room and every stored message reaches every joined member (live or
// recovered), so a member's seqs are mostly contiguous: `upTo` is the highest seq up to which it
// has them all, `ahead` the few received above it. A seq missing for good would make `ahead`
// grow without bound: past AHEAD_LIMIT the missing seqs below the lowest one ahead are written
// down as holes and `upTo` moves past them.
const AHEAD_LIMIT = 20_000;

export class SeqTracker {
  constructor(upTo = 0) {
    this.upTo = upTo;
    this.ahead = new Set();
    this.holes = [];
  }

  mark(seq) {
    if (seq <= this.upTo || this.ahead.has(seq)) return;
    if (seq !== this.upTo + 1) {
      this.ahead.add(seq);
      if (this.ahead.size > AHEAD_LIMIT) this.skipHoles();
      return;
    }
    this.upTo = seq;
    this.advance();
  }

  advance() {
    while (this.ahead.delete(this.upTo + 1)) this.upTo++;
  }

  skipHoles() {
    let lowest = Infinity;
    for (const s of this.ahead) if (s < lowest) lowest = s;
    for (let s = this.upTo + 1; s < lowest; s++) this.holes.push(s);
    this.upTo = lowest - 1;
    this.advance();
  }

  has(seq) {
    return seq <= this.upTo ? !this.holes.includes(seq) : this.ahead.has(seq);
  }

  /** Every seq above this one may be missing: the acked seqs a check needs to see. */
  floor() {
    return this.holes.length ? Math.min(this.upTo, this.holes[0] - 1) : this.upTo;
  }
}

/** A growable list of unsigned seqs (the acked ones of a room): 4 bytes each. */
export class SeqList {
  constructor() {
    this.data = new Uint32Array(1024);
    this.length = 0;
  }

  push(seq) {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = seq;
  }

  above(floor) {
    const out = [];
    for (let i = 0; i < this.length; i++) if (this.data[i] > floor) out.push(this.data[i]);
    return out;
  }
}
