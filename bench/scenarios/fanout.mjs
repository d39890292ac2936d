// Scenario a, fan-out: clients over the instances (2, or --instances N) in rooms of `roomSize`, `senders` of them sending;
// rising steps of delivered messages/s until p99 passes 100 ms. For the service every message is
// persisted and acked; the baseline of the same transport does the same broadcast without storage.
import { Histogram, nowUs } from '../lib/hist.mjs';
import { formatBatches, warmMetrics } from '../lib/batches.mjs';
import { fmt, noisyNote, pgUsPerMessage, QUIET_MS, validity } from '../lib/measure.mjs';
import { instancesOf, measureStep, mergeCounts, setupGroup, sideOrder, teardownGroup, TRANSPORT_NAME } from './common.mjs';

export const P99_LIMIT_MS = 100;

/**
 * Each room spread over 2 instances, so half of every delivery crosses Redis: with 2 instances
 * over both (every other member on each), with more over a pair of them (room r on 2r and 2r + 1,
 * modulo the count), so that the load per instance and per room stays the same as instances are
 * added, and an instance has members in only some of the rooms (--instances N).
 */
function instanceOf(room, slot, count) {
  return (2 * room + (slot % 2)) % count;
}

function specsFor(ctx, side, transport, repeat, cfg) {
  const urls = instancesOf(ctx, side, transport).map((i) => i.url);
  const rooms = Math.max(1, Math.floor(cfg.clients / cfg.roomSize));
  const W = ctx.pool.workers.length;
  const senderOf = new Map();
  for (let j = 0; j < cfg.senders; j++) {
    const r = j % rooms;
    const member = Math.floor(j / rooms);
    senderOf.set(r * cfg.roomSize + member, j);
  }
  const specs = [];
  for (let i = 0; i < rooms * cfg.roomSize; i++) {
    const j = senderOf.get(i);
    const r = Math.floor(i / cfg.roomSize);
    specs.push({
      worker: j !== undefined ? j % W : i % W,
      userId: `fo-${side}-${transport}-r${repeat}-u${i}`,
      url: urls[instanceOf(r, j ?? i, urls.length)],
      room: `fo-${transport}-r${repeat}-${ctx.runId}-${r}`,
      sender: j !== undefined,
    });
  }
  return { specs, rooms };
}

function relayCopies(batches, stored) {
  if (typeof batches?.relaysReceived !== 'number' || stored === 0) return null;
  return Math.round((batches.relaysReceived / stored) * 100) / 100;
}

async function step(ctx, { side, transport, group, k, rate, cfg, repeat }) {
  const sendRate = rate / cfg.roomSize; // every message reaches the roomSize members of its room
  const perSenderRate = sendRate / cfg.senders;
  // The workers get the step at once and wait for t0: until then the bench is quiet (see quietBefore).
  const t0 = nowUs() + QUIET_MS * 1000;
  const winStart = t0 + cfg.warmMs * 1000;
  const winEnd = winStart + cfg.measureMs * 1000;
  const instances = instancesOf(ctx, side, transport);
  const [res, [cpu, quiet, batches]] = await Promise.all([
    ctx.pool.all(
      'fanoutStep',
      { group, step: `${repeat}${side[0]}${k}`, perSenderRate, t0, warmMs: cfg.warmMs, measureMs: cfg.measureMs },
      120_000,
    ),
    measureStep(ctx, side, instances, t0, winStart, winEnd),
  ]);
  const lat = new Histogram();
  const ack = new Histogram();
  for (const r of res) {
    lat.add(r.lat);
    ack.add(r.ackLat);
  }
  const sum = (f) => res.reduce((a, r) => a + r[f], 0);
  const delivered = sum('delivered');
  const expected = sum('ackedInWin') * cfg.roomSize;
  const seconds = cfg.measureMs / 1000;
  const skipped = sum('skipped');
  const sent = sum('sent');
  const extra = [];
  if (skipped > 0.01 * (sent + skipped)) extra.push(`load generator could not keep the send pace (${skipped} sends skipped)`);
  const rec = {
    side,
    transport,
    repeat,
    step: k,
    offeredPerSec: rate,
    sendsPerSec: sendRate,
    deliveredPerSec: Math.round(delivered / seconds),
    delivered,
    expected,
    lost: Math.max(0, expected - delivered),
    sendErrors: mergeCounts(res.map((r) => r.errors)),
    lat: lat.summary(),
    ack: ack.summary(),
    cpu,
    usPerDelivery: delivered > 0 ? Math.round(((cpu.targetCpuMs * 1000) / delivered) * 100) / 100 : null,
    // Every message sent in the window is stored (the service's; the baseline stores nothing).
    pgCpuUsPerMessage: side === 'service' ? pgUsPerMessage(cpu, sum('sentInWin')) : null,
    batches,
    // Copies of each stored message the instances' Redis subscribers received (own echoes included):
    // on one Redis it grows with the instance count, on a cluster with the instances a room spans.
    relayCopiesPerMessage: relayCopies(batches, sum('sentInWin')),
    ...quiet,
    ...validity(cpu, extra),
  };
  ctx.log(
    `fanout ${TRANSPORT_NAME[transport].padEnd(9)} r${repeat} ${fmt.k(rate).padStart(5)}/s ${side.padEnd(8)} ` +
      `delivered ${fmt.k(rec.deliveredPerSec).padStart(6)}/s  p50 ${fmt.ms(rec.lat.p50)} p95 ${fmt.ms(rec.lat.p95)} p99 ${fmt.ms(rec.lat.p99)} ms  ` +
      `${fmt.n1(rec.usPerDelivery)} µs/delivery  gen ${fmt.pct(cpu.genMaxWorkerPct)}/proc pg ${fmt.pct(cpu.pgPct)} redis ${fmt.pct(cpu.redisPct)} host ${fmt.pct(cpu.hostBusyPct)}` +
      (side === 'service'
        ? `  pg ${fmt.us(rec.pgCpuUsPerMessage)} µs/msg  batches ${formatBatches(batches)}  redis copies/msg ${fmt.n1(rec.relayCopiesPerMessage)}`
        : '') +
      `${rec.lost ? `  lost ${rec.lost}` : ''}${noisyNote(rec)}${rec.valid ? '' : '  INVALID'}`,
  );
  return rec;
}

export async function fanout(ctx) {
  const cfg = ctx.sizes.fanout;
  const out = { config: { ...cfg, instances: ctx.services.length, redisCluster: ctx.redisCluster }, steps: [], setups: [] };
  await warmMetrics(ctx.services);
  for (let repeat = 1; repeat <= ctx.repeats; repeat++) {
    for (const transport of ['io', 'ws']) {
      if (ctx.outOfTime()) return { ...out, truncated: true };
      const groups = {};
      for (const side of ['service', 'baseline']) {
        const group = `fo-${side}-${transport}-${repeat}`;
        const { specs } = specsFor(ctx, side, transport, repeat, cfg);
        const s = await setupGroup(ctx, { group, kind: transport, specs });
        out.setups.push({ side, transport, repeat, ...s });
        if (s.failed) ctx.log(`fanout setup ${side} ${transport}: ${s.failed} clients failed: ${JSON.stringify(s.errors)}`);
        groups[side] = group;
      }
      const active = { service: true, baseline: true };
      const over = { service: 0, baseline: 0 };
      for (let k = 0; k < cfg.steps.length && (active.service || active.baseline); k++) {
        if (ctx.outOfTime()) break;
        for (const side of sideOrder(repeat + k)) {
          if (!active[side]) continue;
          const rec = await step(ctx, { side, transport, group: groups[side], k, rate: cfg.steps[k], cfg, repeat });
          out.steps.push(rec);
          // A side stops after two steps in a row over the p99 limit (one isolated spike on a shared
          // host does not end it), or at once when it delivers well under the offered rate.
          over[side] = rec.lat.p99 === null || rec.lat.p99 > P99_LIMIT_MS ? over[side] + 1 : 0;
          if (over[side] >= 2 || rec.deliveredPerSec < 0.5 * cfg.steps[k]) active[side] = false;
        }
      }
      for (const side of ['service', 'baseline']) await teardownGroup(ctx, groups[side]);
    }
  }
  return out;
}
