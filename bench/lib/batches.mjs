// The group commit's batch sizes in a measured window: chat_append_batch_size (a Prometheus
// histogram, messages per append transaction) from GET /metrics of every service instance, read
// just before and just after the window, summed over the instances; from the same scrapes, the
// pub/sub messages the instances' Redis subscribers received (chat_relay_messages_received_total).
import { metricValue, scrapeMetrics } from './infra.mjs';
import { nowUs } from './hist.mjs';
import { until } from './measure.mjs';

export const BATCH_METRIC = 'chat_append_batch_size';
export const RELAY_METRIC = 'chat_relay_messages_received_total';
// The scrape before the window starts this early, so serving it (a few ms) stays outside the window.
const LEAD_US = 30_000;
const AFTER_US = 5_000;
/** After the quiet sample before a step ends (at t0). */
export const PRIME_US = 10_000;

/** { buckets: { le: cumulative count }, sum, count } of one histogram in Prometheus text, or null. */
export function parseHistogram(text, name) {
  const buckets = {};
  let sum = null;
  let count = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const bucket = line.match(/^\S+_bucket\{le="([^"]+)"\} (\S+)$/);
    if (bucket && line.startsWith(`${name}_bucket`)) buckets[bucket[1]] = Number(bucket[2]);
    else if (line.startsWith(`${name}_sum `)) sum = Number(line.slice(name.length + 5));
    else if (line.startsWith(`${name}_count `)) count = Number(line.slice(name.length + 7));
  }
  return count === null ? null : { buckets, sum, count };
}

const leOf = (cum, total, q) => {
  if (total === 0) return null;
  for (const [le, c] of cum) if (c >= q * total) return le === '+Inf' ? le : Number(le);
  return '+Inf';
};

/**
 * The window's transactions, messages, mean messages per transaction, the bucket (upper bound)
 * holding the median, the 90th percentile and the largest transaction, and the count per bucket.
 */
export function batchSummary(before, after) {
  if (before.some((h) => !h) || after.some((h) => !h)) return { error: `${BATCH_METRIC} not exported` };
  const les = Object.keys(after[0].buckets);
  const total = (list, f) => list.reduce((a, h) => a + f(h), 0);
  const cum = les.map((le) => [le, total(after, (h) => h.buckets[le] ?? 0) - total(before, (h) => h.buckets[le] ?? 0)]);
  const transactions = total(after, (h) => h.count) - total(before, (h) => h.count);
  const messages = total(after, (h) => h.sum) - total(before, (h) => h.sum);
  const counts = {};
  cum.forEach(([le, c], i) => {
    const n = c - (i > 0 ? cum[i - 1][1] : 0);
    if (n) counts[le] = n;
  });
  return {
    transactions,
    messages,
    perTx: transactions > 0 ? Math.round((messages / transactions) * 10) / 10 : null,
    p50: leOf(cum, transactions, 0.5),
    p90: leOf(cum, transactions, 0.9),
    max: leOf(cum, transactions, 1),
    counts,
  };
}

async function read(instances) {
  return Promise.all(
    instances.map(async (inst) => {
      const text = await scrapeMetrics(inst);
      return { hist: parseHistogram(text, BATCH_METRIC), relays: metricValue(text, RELAY_METRIC) };
    }),
  );
}

/** Pub/sub messages the instances' subscribers received in the window, all instances together, or null. */
function relaysReceived(before, after) {
  if ([...before, ...after].some((r) => r.relays === null)) return null;
  return after.reduce((a, r) => a + r.relays, 0) - before.reduce((a, r) => a + r.relays, 0);
}

/**
 * One scrape of each instance, outside any window: an instance's first /metrics request is slow
 * (lazy set-up), and a late answer would move the window's start.
 */
export async function warmMetrics(instances) {
  await Promise.all(instances.map((inst) => scrapeMetrics(inst).catch(() => undefined)));
}

/**
 * Scrapes before startUs and after endUs (hrtime µs); scrapeMs is how long each read took (the
 * window it measures is off by up to that). A first scrape at primeUs, at the start of the
 * warm-up, makes the instances read their database-backed gauge (the outbox backlog, shared for
 * 5 s after a read) then, so that the read before the window does not query Postgres inside it.
 * A failed scrape is recorded, the step goes on.
 */
export async function batchWindow(instances, primeUs, startUs, endUs) {
  try {
    await until(primeUs);
    await warmMetrics(instances);
    await until(startUs - LEAD_US);
    const t0 = nowUs();
    const before = await read(instances);
    const t1 = nowUs();
    await until(endUs + AFTER_US);
    const t2 = nowUs();
    const after = await read(instances);
    const scrapeMs = [Math.round((t1 - t0) / 1000), Math.round((nowUs() - t2) / 1000)];
    const batches = batchSummary(
      before.map((r) => r.hist),
      after.map((r) => r.hist),
    );
    return { ...batches, relaysReceived: relaysReceived(before, after), scrapeMs };
  } catch (err) {
    return { error: String(err.message ?? err) };
  }
}

/** "412 tx, 12.1 msg/tx, p50 ≤16 p90 ≤32 max ≤64" */
export function formatBatches(b) {
  if (!b) return '–';
  if (b.error) return `(${b.error})`;
  if (!b.transactions) return '0 tx';
  return `${b.transactions} tx, ${b.perTx} msg/tx, p50 ≤${b.p50} p90 ≤${b.p90} max ≤${b.max}`;
}
