// Scenario c, idle connections: N clients over 2 instances, each joined to one room (rooms of 50);
// resident memory and heap per connection, after a forced GC, against the baseline. The instances
// of the measured side are restarted first (fresh processes on the same ports). Baselines
// GC through GET /stats; the service through the bench's preloaded SIGUSR2 hook (src/ untouched);
// the service's own /metrics figures (no forced GC) are recorded too.
import { nowUs } from '../lib/hist.mjs';
import { fmt, noisyNote, probeFor, QUIET_MS, quietBefore, summarizeCpu, validity } from '../lib/measure.mjs';
import { memoryAfterGc, serviceMetrics } from '../lib/infra.mjs';
import { CpuProbe, rssBytes } from '../lib/procs.mjs';
import { instancesOf, setupGroup, sideOrder, sleep, teardownGroup, TRANSPORT_NAME } from './common.mjs';

async function snapshot(side, instances) {
  const per = [];
  for (const inst of instances) {
    const mem = await memoryAfterGc(inst, side);
    per.push({
      rss: rssBytes(inst.pid),
      heapUsed: mem.heapUsed,
      external: mem.external,
      asIs: side === 'service' ? await serviceMetrics(inst) : null,
    });
  }
  const total = (f) => per.reduce((a, p) => a + (f(p) ?? 0), 0);
  return {
    rss: total((p) => p.rss),
    heapUsed: total((p) => p.heapUsed),
    external: total((p) => p.external),
    asIsRss: side === 'service' ? total((p) => p.asIs.rss) : null,
    asIsHeapUsed: side === 'service' ? total((p) => p.asIs.heapUsed) : null,
    per,
  };
}

/**
 * The service instances' own CPU with no client at all (timers, relay polling, heartbeats), over
 * `seconds`, before any scenario ran: % of one core per instance; instanceCpuPct is the larger.
 */
export async function idleInstancesCpu(ctx, seconds) {
  const groups = Object.fromEntries(ctx.services.map((inst) => [inst.name, () => [inst.pid]]));
  const probe = new CpuProbe({ ...groups, pgBench: ctx.pgBenchPids });
  const a = probe.sample();
  await sleep(seconds * 1000);
  const d = probe.diff(a, probe.sample());
  const perInstance = ctx.services.map((inst) => ({ name: inst.name, pct: d[inst.name].pct }));
  return {
    seconds: Math.round(d.seconds * 10) / 10,
    perInstance,
    instanceCpuPct: Math.max(...perInstance.map((p) => p.pct)),
    pgBenchPct: d.pgBench.pct,
    hostBusyPct: d.host.busyPct,
  };
}

export async function idle(ctx) {
  const cfg = ctx.sizes.idle;
  const out = { config: { ...cfg }, runs: [] };
  for (let repeat = 1; repeat <= ctx.repeats; repeat++) {
    for (const transport of ['io', 'ws']) {
      for (const side of sideOrder(repeat)) {
        if (ctx.outOfTime()) return { ...out, truncated: true };
        const instances = instancesOf(ctx, side, transport);
        // Fresh processes, so memory freed by earlier scenarios does not hide the growth.
        await Promise.all(instances.map((i) => i.restart()));
        // The quiet sample is the end of the settling time, so it costs the run no time.
        await sleep(Math.max(0, cfg.settleMs - QUIET_MS));
        const quiet = await quietBefore(ctx, nowUs() + QUIET_MS * 1000);
        const before = await snapshot(side, instances);
        const urls = instances.map((i) => i.url);
        const specs = Array.from({ length: cfg.connections }, (_, i) => ({
          worker: i,
          userId: `id-${side}-${transport}-r${repeat}-u${i}`,
          url: urls[i % urls.length],
          room: `id-${transport}-r${repeat}-${ctx.runId}-${Math.floor(i / cfg.roomSize)}`,
        }));
        const group = `id-${side}-${transport}-${repeat}`;
        const probe = probeFor(
          ctx,
          instances.map((i) => i.pid),
        );
        const c0 = probe.sample();
        const setup = await setupGroup(ctx, { group, kind: transport, specs, concurrency: cfg.concurrency });
        const c1 = probe.sample();
        await sleep(cfg.settleMs);
        const after = await snapshot(side, instances);
        const c2 = probe.sample();
        const connectCpu = summarizeCpu(ctx, probe.diff(c0, c1));
        const cpu = summarizeCpu(ctx, probe.diff(c1, c2));
        const n = setup.connected;
        const per = (f) => (n > 0 && after[f] !== null && before[f] !== null ? Math.round((after[f] - before[f]) / n) : null);
        const rec = {
          side,
          transport,
          repeat,
          connections: n,
          failed: setup.failed,
          setupErrors: setup.errors,
          connectAndJoinMs: setup.ms,
          rssPerConn: per('rss'),
          heapPerConn: per('heapUsed'),
          externalPerConn: per('external'),
          asIsRssPerConn: side === 'service' ? per('asIsRss') : null,
          asIsHeapPerConn: side === 'service' ? per('asIsHeapUsed') : null,
          before,
          after,
          connectCpu,
          cpu,
          ...quiet,
          ...validity(cpu),
        };
        out.runs.push(rec);
        ctx.log(
          `idle    ${TRANSPORT_NAME[transport].padEnd(9)} r${repeat} ${side.padEnd(8)} ${n} connections (${setup.failed} failed) in ${(setup.ms / 1000).toFixed(1)} s  ` +
            `RSS ${fmt.kb(rec.rssPerConn)}/conn  heap ${fmt.kb(rec.heapPerConn)}/conn` +
            (side === 'service' ? `  (as-is /metrics: RSS ${fmt.kb(rec.asIsRssPerConn)}, heap ${fmt.kb(rec.asIsHeapPerConn)})` : '') +
            `  connecting: instances ${fmt.pct(connectCpu.targetPct)} gen ${fmt.pct(connectCpu.genMaxWorkerPct)}/proc pg ${fmt.pct(connectCpu.pgPct)} (bench db ${fmt.n1(connectCpu.pgBenchPct)}%) host ${fmt.pct(connectCpu.hostBusyPct)}${noisyNote(rec)}${rec.valid ? '' : '  INVALID'}`,
        );
        await teardownGroup(ctx, group);
        await sleep(cfg.settleMs);
      }
    }
  }
  return out;
}
