// A log-bucketed latency histogram (about 1% relative precision, HDR-like), mergeable across
// processes. Values are microseconds. Percentiles report the upper bound of the bucket.
const RATIO = 1.01;
const LN = Math.log(RATIO);
const SIZE = 2200; // 1.01^2200 µs ≈ 3e9 µs: far beyond any bounded step

export class Histogram {
  constructor() {
    this.counts = new Uint32Array(SIZE);
    this.n = 0;
    this.max = 0;
    this.sum = 0;
  }

  record(us) {
    const v = us < 1 ? 1 : us;
    let i = Math.ceil(Math.log(v) / LN);
    if (i >= SIZE) i = SIZE - 1;
    this.counts[i]++;
    this.n++;
    this.sum += v;
    if (v > this.max) this.max = v;
  }

  /** Sparse form for IPC: [[index, count], …]. */
  toJSON() {
    const buckets = [];
    for (let i = 0; i < SIZE; i++) if (this.counts[i]) buckets.push([i, this.counts[i]]);
    return { buckets, n: this.n, max: this.max, sum: this.sum };
  }

  static fromJSON(j) {
    const h = new Histogram();
    if (j) h.add(j);
    return h;
  }

  add(j) {
    for (const [i, c] of j.buckets) this.counts[i] += c;
    this.n += j.n;
    this.sum += j.sum;
    if (j.max > this.max) this.max = j.max;
    return this;
  }

  /** p in [0, 100]; milliseconds, or null without samples. */
  percentileMs(p) {
    if (this.n === 0) return null;
    const rank = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(RATIO ** i, this.max) / 1000;
    }
    return this.max / 1000;
  }

  summary() {
    if (this.n === 0) return { n: 0, p50: null, p95: null, p99: null, max: null, mean: null };
    const r = (x) => Math.round(x * 1000) / 1000;
    return {
      n: this.n,
      p50: r(this.percentileMs(50)),
      p95: r(this.percentileMs(95)),
      p99: r(this.percentileMs(99)),
      max: r(this.max / 1000),
      mean: r(this.sum / this.n / 1000),
    };
  }
}

/** Microseconds on CLOCK_MONOTONIC: one clock for every process on this machine. */
export const nowUs = () => Number(process.hrtime.bigint() / 1000n);
