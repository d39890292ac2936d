// Scenario b, durable sends: acked sends/s and ack latency at rising offered rates, across many
// rooms and into one hot room. Senders have joined no room: this is the write path alone. The
// baseline of the same transport runs the same steps as a reference (it stores nothing).
import { Histogram, nowUs } from '../lib/hist.mjs';
import { formatBatches, warmMetrics } from '../lib/batches.mjs';
import { fmt, noisyNote, pgUsPerMessage, QUIET_MS, validity } from '../lib/measure.mjs';
import { instancesOf, measureStep, mergeCounts, setupGroup, sideOrder, teardownGroup, TRANSPORT_NAME } from './common.mjs';

async function step(ctx, { side, transport, group, mode, k, rate, rooms, cfg, repeat }) {
  const W = ctx.pool.workers.length;
  // The workers get the step at once and wait for t0: until then the bench is quiet (see quietBefore).
  const t0 = nowUs() + QUIET_MS * 1000;
  const winStart = t0 + cfg.warmMs * 1000;
  const winEnd = winStart + cfg.measureMs * 1000;
  const instances = instancesOf(ctx, side, transport);
  const [res, [cpu, quiet, batches]] = await Promise.all([
    ctx.pool.all(
      'durableStep',
      {
        group,
        rooms,
        rate: rate / W,
        t0,
        warmMs: cfg.warmMs,
        measureMs: cfg.measureMs,
        step: `${repeat}${side[0]}${mode[0]}${k}`,
        maxInflight: cfg.maxInflightPerWorker,
      },
      180_000,
    ),
    measureStep(ctx, side, instances, t0, winStart, winEnd),
  ]);
  const ack = new Histogram();
  for (const r of res) ack.add(r.ackLat);
  const sum = (f) => res.reduce((a, r) => a + r[f], 0);
  const seconds = cfg.measureMs / 1000;
  const skipped = sum('skipped');
  const sent = sum('sent');
  const extra = [];
  if (skipped > 0.01 * (sent + skipped)) extra.push(`load generator could not keep the send pace (${skipped} sends skipped)`);
  const acked = sum('ackedInWin');
  const rec = {
    side,
    transport,
    mode,
    repeat,
    step: k,
    offeredPerSec: rate,
    ackedPerSec: Math.round(acked / seconds),
    sentInWindow: sum('sentInWin'),
    shed: sum('shed'),
    unfinished: sum('unfinished'),
    errors: mergeCounts(res.map((r) => r.errors)),
    ack: ack.summary(),
    cpu,
    usPerSend: acked > 0 ? Math.round(((cpu.targetCpuMs * 1000) / acked) * 10) / 10 : null,
    // An ack comes after the COMMIT: the acks in the window are the messages stored in it.
    pgCpuUsPerMessage: side === 'service' ? pgUsPerMessage(cpu, acked) : null,
    batches,
    ...quiet,
    ...validity(cpu, extra),
  };
  const errs = Object.values(rec.errors).reduce((a, b) => a + b, 0);
  ctx.log(
    `durable ${mode.padEnd(4)} ${TRANSPORT_NAME[transport].padEnd(9)} r${repeat} ${fmt.k(rate).padStart(5)}/s ${side.padEnd(8)} ` +
      `acked ${fmt.k(rec.ackedPerSec).padStart(6)}/s  ack p50 ${fmt.ms(rec.ack.p50)} p99 ${fmt.ms(rec.ack.p99)} ms  ` +
      `svc ${fmt.pct(cpu.targetPct)} pg ${fmt.pct(cpu.pgPct)} redis ${fmt.pct(cpu.redisPct)} gen ${fmt.pct(cpu.genMaxWorkerPct)}/proc host ${fmt.pct(cpu.hostBusyPct)}` +
      (side === 'service' ? `  pg ${fmt.us(rec.pgCpuUsPerMessage)} µs/msg  batches ${formatBatches(batches)}` : '') +
      `${rec.shed ? `  shed ${rec.shed}` : ''}${errs ? `  errors ${JSON.stringify(rec.errors)}` : ''}${noisyNote(rec)}${rec.valid ? '' : '  INVALID'}`,
  );
  return rec;
}

export async function durable(ctx) {
  const cfg = ctx.sizes.durable;
  const out = { config: { ...cfg }, steps: [], setups: [] };
  await warmMetrics(ctx.services);
  for (let repeat = 1; repeat <= ctx.repeats; repeat++) {
    for (const transport of ['io', 'ws']) {
      if (ctx.outOfTime()) return { ...out, truncated: true };
      const groups = {};
      for (const side of ['service', 'baseline']) {
        const urls = instancesOf(ctx, side, transport).map((i) => i.url);
        const specs = Array.from({ length: cfg.connections }, (_, i) => ({
          worker: i,
          userId: `du-${side}-${transport}-r${repeat}-u${i}`,
          url: urls[i % urls.length],
        }));
        const group = `du-${side}-${transport}-${repeat}`;
        const s = await setupGroup(ctx, { group, kind: transport, specs });
        out.setups.push({ side, transport, repeat, ...s });
        groups[side] = group;
      }
      for (const mode of ['many', 'hot']) {
        const rooms =
          mode === 'many'
            ? Array.from({ length: cfg.rooms }, (_, i) => `du-${transport}-r${repeat}-${ctx.runId}-${i}`)
            : [`du-hot-${transport}-r${repeat}-${ctx.runId}`];
        const rates = cfg[mode];
        // The baseline runs the steps the service runs (same offered rates), as a reference.
        let serviceActive = true;
        for (let k = 0; k < rates.length && serviceActive; k++) {
          if (ctx.outOfTime()) break;
          for (const side of sideOrder(repeat + k)) {
            const rec = await step(ctx, { side, transport, group: groups[side], mode, k, rate: rates[k], rooms, cfg, repeat });
            out.steps.push(rec);
            if (side === 'service' && (rec.ackedPerSec < 0.9 * rates[k] || rec.ack.p99 === null || rec.ack.p99 > 1000))
              serviceActive = false;
          }
        }
      }
      for (const side of ['service', 'baseline']) await teardownGroup(ctx, groups[side]);
    }
  }
  return out;
}
